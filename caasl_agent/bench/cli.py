"""The ``caasl bench`` and ``caasl demo`` subcommands (registered by :mod:`caasl_agent.cli`)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from caasl_agent._argtypes import positive_int
from caasl_agent.bench.backends import make_executor
from caasl_agent.bench.baselines import BASELINES, PLANNING_BASELINES
from caasl_agent.bench.loaders import load_sb3
from caasl_agent.bench.reports import REPORT_FILES
from caasl_agent.bench.runner import benchmark
from caasl_agent.bench.suites import Setting, Suite
from caasl_agent.outputs import check_output_dir, replacing
from caasl_agent.pretrained import available_policies
from caasl_envs import available_reward_models
from caasl_envs.registration import ENV_IDS
from caasl_envs.scm import SIMULATORS

DEFAULT_AGENTS = ",".join(name for name in BASELINES if name not in PLANNING_BASELINES)


def parse_reward_model(text: str | None) -> str | dict[str, str] | None:
    """``NAME`` or ``NAME,SETTING=NAME,...`` (per-setting overrides; a bare name is the default)."""
    if not text:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1 and "=" not in parts[0]:
        return parts[0]
    mapping: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if sep:
            mapping[key.strip()] = value.strip()
        else:
            mapping["*"] = key
    return mapping


def _modes(text: str) -> tuple[str, ...]:
    return ("deterministic", "stochastic") if text == "both" else (text,)


def _agent_specs(text: str, trust_pickles: bool) -> dict[str, object]:
    """``{label: spec}`` of ``--agents``; with ``trust_pickles`` the ``sb3:`` zips are loaded
    here with SB3's plain unpickling (the harness loads them safely)."""
    specs = [a.strip() for a in text.split(",") if a.strip()]
    return {
        spec: load_sb3(spec[4:], trust_pickles=True)
        if trust_pickles and spec.startswith("sb3:")
        else spec
        for spec in specs
    }


def output_folder(out: str | Path, overwrite: bool) -> Path:
    """The benchmark's output folder, checked before any run (:func:`check_output_dir`);
    nothing in it is changed here.

    Without ``overwrite`` a non-empty folder is refused unless it holds the runs of an
    interrupted benchmark (``runs/``, which the same command completes); with it, an earlier
    benchmark's reports and runs (:data:`BENCH_OUTPUTS`) are replaced only once a run of the new
    one has finished (:func:`~caasl_agent.outputs.replacing`).
    """
    folder = check_output_dir(out)
    if not overwrite and folder.is_dir() and any(folder.iterdir()):
        if not (folder / "runs").is_dir():
            raise ValueError(
                f"output folder {folder} is not empty; pass --overwrite to replace an earlier "
                "benchmark's results, or choose another folder"
            )
    return folder


#: what a benchmark writes into its output folder
BENCH_OUTPUTS = (*REPORT_FILES, "runs")


def _bench(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    out = output_folder(args.out, args.overwrite)  # checked before any run
    # the earlier results stay until a run of the new benchmark has finished
    with replacing(out, BENCH_OUTPUTS, args.overwrite, lambda: any(out.glob("runs/*.npz"))):
        results = _run_bench(args, out)
    results.print()
    print(
        f"results in {out}/ (table.md, steps.csv, results.json, plots/) after {time.perf_counter() - start:.0f} s"
    )


def _run_bench(args: argparse.Namespace, out: Path):
    return benchmark(
        _agent_specs(args.agents, args.trust_pickles),
        suite=args.suite,
        episodes=args.episodes,
        seed=args.seed,
        modes=_modes(args.mode),
        reward_model=parse_reward_model(args.reward_model),
        scorer=parse_reward_model(args.scorer),
        settings=args.settings.split(",") if args.settings else None,
        reference=args.reference,
        device=args.device,
        out=out,
        plots=not args.no_plots,
        executor=make_executor(args.backend, args.workers, args.address),
    )


def add_bench_parser(subparsers) -> None:
    """``caasl bench``: benchmark agents on a suite (tables, CSV/JSON, plots)."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark experimental-design agents on a suite of fixed environments",
        description="Agents: baseline names (" + ", ".join(BASELINES) + "), sb3:PATH.zip, "
        "caasl:NAME, caasl (the recommended shipped policy of each setting's family), "
        "module:attr (an agent class, object or callable obs -> action).",
    )
    p.add_argument(
        "--agents",
        default=DEFAULT_AGENTS,
        help="comma-separated agent specs (default: every baseline but the planning ones, "
        + ", ".join(PLANNING_BASELINES)
        + ")",
    )
    p.add_argument(
        "--trust-pickles",
        action="store_true",
        help="unpickle sb3: zips as Stable-Baselines3 does (runs code a crafted file holds; "
        "default: only allow-listed objects)",
    )
    p.add_argument("--suite", default="linear", help="suite name (linear, tiny, sergio, ...)")
    p.add_argument(
        "--settings", default=None, help="comma-separated subset of the suite's settings"
    )
    p.add_argument(
        "--episodes", type=positive_int, default=None, help="episodes per setting (suite default)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="suite seed: every agent sees the same environments"
    )
    p.add_argument(
        "--mode",
        choices=("deterministic", "stochastic", "both"),
        default="deterministic",
        help="how policies act: their deterministic action, a sampled one, or both",
    )
    p.add_argument(
        "--reward-model",
        default=None,
        help="NAME, or NAME,SETTING=NAME,... per setting (default: each setting's own)",
    )
    p.add_argument(
        "--scorer",
        default="auto",
        help="model whose edge probabilities give the metrics (all but return): auto (the exact "
        "posterior for linear settings with d <= 14, order MCMC on it for d <= 30, the reward "
        "model elsewhere), reward, NAME, "
        "or NAME,SETTING=NAME,... per setting",
    )
    p.add_argument(
        "--reference", default=None, help="agent for paired comparisons (default: first)"
    )
    p.add_argument(
        "--workers", type=positive_int, default=1, help="runs in parallel processes (local backend)"
    )
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: this process or --workers processes; ray: one Ray task per run "
        "(pip install 'caasl[ray]')",
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (auto, ray://HOST:PORT); default: start a local Ray instance",
    )
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads per process")
    p.add_argument("--device", default="cpu", help="torch device of the envs: cpu, cuda, auto")
    p.add_argument(
        "--out",
        default="results/bench",
        help="output folder; finished runs are kept in OUT/runs/ and the same command reruns "
        "only the missing ones",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier benchmark in --out (default: refuse them)",
    )
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.set_defaults(func=_bench)


def _shipped_caasl(simulator: str) -> list[str]:
    """``caasl:NAME`` specs of the shipped policies for a simulator family (their names say
    which: ``caasl_agent.available_policies()``)."""
    return [f"caasl:{name}" for name in available_policies() if simulator in name]


def _demo(args: argparse.Namespace) -> None:
    out = output_folder(args.out or tempfile.mkdtemp(prefix="caasl-demo-"), args.overwrite)
    if (out / "runs").is_dir():  # save() would replace that benchmark's reports
        raise ValueError(
            f"--out {out} holds a caasl bench run (runs/); a demo does not replace it: choose "
            "another folder"
        )
    torch.set_num_threads(args.threads)
    simulator = ENV_IDS[args.env].get("simulator", "linear")
    reward_model = args.reward_model
    if reward_model is None:
        default = SIMULATORS[simulator].default_reward_model
        # Until a trained reward model is registered, a training-free one stands in: the exact
        # posterior for linear-Gaussian data (d <= 14), partial correlations otherwise.
        fallback = "exact-linear-gaussian" if simulator == "linear" else "partial-correlation"
        reward_model = default if default in available_reward_models() else fallback
    suite = Suite("demo", 1, (Setting("default", args.env, {}, args.env),), episodes=args.episodes)
    agents = [*DEFAULT_AGENTS.split(","), *_shipped_caasl(simulator)]
    results = benchmark(
        agents,
        suite=suite,
        seed=args.seed,
        modes=_modes(args.mode),
        reward_model=reward_model,
        reference="random",
    )
    results.save(out)
    results.print()
    print(f"plots and tables in {out}/")


def add_demo_parser(subparsers) -> None:
    """``caasl demo``: a quick benchmark of the baselines (and shipped CAASL policies)."""
    p = subparsers.add_parser(
        "demo", help="a quick benchmark of the baselines on the default environment"
    )
    p.add_argument(
        "--env", default="caasl/LinearGaussian-v0", choices=list(ENV_IDS), help="environment id"
    )
    p.add_argument("--episodes", type=positive_int, default=50, help="episodes per agent")
    p.add_argument("--seed", type=int, default=0, help="seed of the environments")
    p.add_argument(
        "--reward-model", default=None, help="registered reward-model name (default: the env's)"
    )
    # Shipped CAASL policies were selected as sampled policies (their deterministic action is
    # poor, see the model cards); baselines do not depend on the mode.
    p.add_argument(
        "--mode",
        choices=("deterministic", "stochastic", "both"),
        default="stochastic",
        help="how policies act: their deterministic action, a sampled one, or both",
    )
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads")
    p.add_argument(
        "--out", default=None, help="output folder (default: a new temporary folder, printed)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier demo in --out"
    )
    p.set_defaults(func=_demo)
