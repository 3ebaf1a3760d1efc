"""Training CAASL from a preset: ``caasl train --config <preset>``.

A preset is a YAML file in ``caasl_agent/configs/`` (or any path) with the env id and kwargs,
the number of envs, the :class:`~caasl_agent.CAASL` arguments (``algorithm``), the policy
kwargs, the evaluation settings and optionally ``normalize_reward: true`` (SB3's
``VecNormalize`` on the rewards only). :func:`train` writes into the output folder:

* ``checkpoints/`` (periodic ``CAASL.save`` files, resumable with ``--resume``),
* ``best_model.zip``: the best policy so far by periodic evaluation on a fixed set of envs,
* ``final_model.zip``, ``evaluations.csv``, ``learning_curve.png``, ``tb/`` (TensorBoard),
* ``results.json``: the best policy (sampled, the headline, and deterministic) and the
  harness's ``random`` baseline on held-out envs (other seeds than the periodic evaluation):
  final expected correct entries, mean and standard error, and the paired difference with its
  95% t-interval, as the benchmark harness reports them.

Every evaluation runs through the harness's runner
(:func:`caasl_agent.bench.runner.run_setting`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

import caasl_envs
from caasl_agent._argtypes import positive_int
from caasl_agent.bench.reports import mean_sem, paired_interval
from caasl_agent.bench.runner import run_setting
from caasl_agent.bench.suites import Setting
from caasl_agent.caasl import CAASL
from caasl_agent.interrupts import StopOnInterrupt
from caasl_agent.outputs import (
    check_output_dir,
    read_csv_rows,
    refuse_existing,
    replacing,
    write_atomic,
    write_csv_atomic,
)
from caasl_agent.safe_yaml import load_yaml
from caasl_agent.train_logging import CSV_LOG, log_to_csv_without_tensorboard
from caasl_envs.checks import check_int
from caasl_envs.core import resolve_device

CONFIG_DIR = Path(__file__).parent / "configs"
#: what :func:`train` writes into its output folder
TRAIN_OUTPUTS = (
    "checkpoints",
    "best_model.zip",
    "final_model.zip",
    "evaluations.csv",
    "learning_curve.png",
    "results.json",
    "config.yaml",
    "tb",
    CSV_LOG,
)
#: reward models tried, in order, for ``reward_model: auto``
AUTO_REWARD_MODELS = ("avici-linear-v1", "avici-linear-v0", "exact-linear-gaussian")


def available_presets() -> list[str]:
    """Names accepted by :func:`load_config` besides paths."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path) -> dict[str, Any]:
    """A preset by name (see :func:`available_presets`) or a YAML file by path.

    A file is merged over a preset, ``base: NAME`` (default ``cpu-quick``; a preset of its own
    is merged only when it names a ``base``): it needs to hold
    only what it changes (nested sections are merged key by key). A key the preset does not
    have (besides ``normalize_reward``) and an ``algorithm`` key :class:`CAASL` does not take
    are a ``ValueError`` naming them, as is a file that is not YAML.
    """
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown config {str(name_or_path)!r}: not a file and not one of {available_presets()}"
        )
    config = _read_yaml(path)
    if path.parent == CONFIG_DIR and "base" not in config:
        return config
    base = config.pop("base", "cpu-quick")
    if base not in available_presets():
        raise ValueError(f"{path}: base must be one of {available_presets()}, got {base!r}")
    merged = _merged(load_config(base), config, str(path))
    unknown = set(merged["algorithm"]) - set(inspect.signature(CAASL.__init__).parameters)
    if unknown:
        raise ValueError(f"{path}: CAASL takes no algorithm setting(s) {sorted(unknown)}")
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        config = load_yaml(path.read_text(), str(path))  # alias bombs: one-line error
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ValueError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a mapping of settings, got {type(config).__name__}")
    return config


#: settings a config file may add to its base preset
OPTIONAL_SETTINGS = ("normalize_reward", "imitation")


def _merged(
    base: dict[str, Any], override: dict[str, Any], where: str, free: bool = False
) -> dict[str, Any]:
    """``override`` merged over ``base`` key by key; ``ValueError`` naming a key ``base`` does
    not have, except in the ``free`` (free-form) sections: ``algorithm``, ``policy_kwargs``,
    ``env_kwargs``."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if not free and key not in base and key not in OPTIONAL_SETTINGS:
            known = sorted({*base, *OPTIONAL_SETTINGS})
            raise ValueError(f"{where}: unknown setting {key!r}; expected one of {known}")
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            section_free = free or key in ("algorithm", "policy_kwargs", "env_kwargs", "imitation")
            merged[key] = _merged(base[key], value, f"{where}: {key}", section_free)
        else:
            merged[key] = value
    return merged


def resolve_reward_model(name: str) -> str:
    """``"auto"`` -> the first registered of :data:`AUTO_REWARD_MODELS`; other names unchanged."""
    if name != "auto":
        return name
    registered = caasl_envs.available_reward_models()
    for candidate in AUTO_REWARD_MODELS:
        if candidate in registered:
            return candidate
    raise ValueError(
        f"reward_model 'auto' needs one of {AUTO_REWARD_MODELS}; registered: {registered}"
    )


def env_kwargs_of(config: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(config.get("env_kwargs") or {})
    if "reward_model" in kwargs:
        kwargs["reward_model"] = resolve_reward_model(kwargs["reward_model"])
    return kwargs


@contextlib.contextmanager
def global_generators_restored() -> Iterator[None]:
    """Restore torch's, numpy's and ``random``'s global generators on exit: the runner seeds
    them, and training draws from them (SB3 samples its replay buffer with numpy's)."""
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    with torch.random.fork_rng():
        try:
            yield
        finally:
            np.random.set_state(numpy_state)  # noqa: NPY002
            random.setstate(python_state)


def evaluate_agent(
    agent: Any,
    env_id: str,
    env_kwargs: dict[str, Any],
    n_envs: int,
    seed: int,
    deterministic: bool = False,
) -> dict[str, np.ndarray]:
    """One episode on each of ``n_envs`` fixed envs (seeds ``seed .. seed + n_envs - 1``), run
    by the benchmark harness's :func:`~caasl_agent.bench.runner.run_setting`.

    :param agent: a model with SB3's ``predict`` or a harness baseline name (``"random"``).
    :param seed: the env seeds' start and the agent's seed; the global generators the runner
        seeds with it are restored afterwards, so evaluations are reproducible and do not
        disturb training.
    :return: ``"final_expected_correct_entries"`` and ``"return"``, each ``(n_envs,)``.
    """
    setting = Setting("training", env_id, env_kwargs)
    with global_generators_restored():
        out = run_setting(
            agent,
            setting,
            range(seed, seed + n_envs),
            deterministic,
            agent_seed=seed,
            device=str(env_kwargs.get("device", "cpu")),
        )
    final = out["metrics"]
    return {
        "final_expected_correct_entries": final["expected_correct_entries"][:, -1],
        "return": final["return"][:, -1],
    }


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, standard error and count, as the harness's ``summary.csv``."""
    mean, sem, n = mean_sem(values)
    return {"mean": mean, "sem": sem, "n": n}


def summarize_paired(difference: np.ndarray) -> dict[str, float]:
    """Mean paired difference and its 95% t-interval, as the harness's ``comparison.csv``."""
    mean, low, high, n = paired_interval(difference)
    return {"mean_diff": mean, "ci95_low": low, "ci95_high": high, "n": n}


class DesignEvalCallback(BaseCallback):
    """Every ``every_steps`` env steps, evaluate the policy on fixed envs; keep the best one
    (mean final expected correct entries) in ``best_model.zip``. ``deterministic=False``
    samples the policy (an equivariant deterministic policy gives every variable with similar
    data the same target decision, so it tends to intervene on all or none). ``at_start``
    also evaluates the starting policy (``caasl train --resume``, ``caasl imitate rl``)."""

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict,
        n_envs: int,
        seed: int,
        every_steps: int,
        output_dir: Path,
        deterministic: bool = False,
        at_start: bool = False,
    ):
        super().__init__()
        self.at_start = at_start
        self.deterministic = deterministic
        self.env_id, self.env_kwargs, self.n_envs, self.seed = env_id, env_kwargs, n_envs, seed
        self.every_steps, self.output_dir = every_steps, output_dir
        # a resumed run continues its evaluations.csv; best_model.zip stays unless beaten
        self.history = read_csv_rows(output_dir / "evaluations.csv")
        self.best = max((row["final_ece_mean"] for row in self.history), default=-np.inf)
        self._next = every_steps
        self.random_mean = float("nan")

    def _on_training_start(self) -> None:
        # A resumed model starts at its saved step count: evaluate every_steps from there.
        self._next = self.num_timesteps + self.every_steps
        self.history = [row for row in self.history if row["timesteps"] <= self.num_timesteps]
        baseline = evaluate_agent("random", self.env_id, self.env_kwargs, self.n_envs, self.seed)
        self.random_mean = float(baseline["final_expected_correct_entries"].mean())
        if self.at_start and not any(r["timesteps"] == self.num_timesteps for r in self.history):
            self.evaluate()  # the starting policy (e.g. an imitated one) competes for best

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every_steps
            self.evaluate()
        return True

    def evaluate(self) -> None:
        result = evaluate_agent(
            self.model, self.env_id, self.env_kwargs, self.n_envs, self.seed, self.deterministic
        )
        final = summarize(result["final_expected_correct_entries"])
        row = {"timesteps": self.num_timesteps, **{f"final_ece_{k}": v for k, v in final.items()}}
        row["return_mean"] = float(result["return"].mean())
        row["random_final_ece_mean"] = self.random_mean
        self.history.append(row)
        self.logger.record("eval/final_expected_correct_entries", final["mean"])
        self.logger.record("eval/return", row["return_mean"])
        if final["mean"] > self.best:
            self.best = final["mean"]
            self.model.save(self.output_dir / "best_model")
        write_csv_atomic(self.output_dir / "evaluations.csv", self.history)


def plot_learning_curve(history: list[dict[str, float]], random_mean: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([row["timesteps"] for row in history])
    mean = np.array([row["final_ece_mean"] for row in history])
    err = np.array([row["final_ece_sem"] for row in history])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(steps, mean, marker="o", label="CAASL")
    ax.fill_between(steps, mean - err, mean + err, alpha=0.3)
    ax.axhline(random_mean, color="gray", linestyle="--", label="random interventions")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("final E[# correct entries]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def model_from_config(
    config: dict[str, Any], env, tensorboard_log: str | None = None, verbose: int = 0
) -> CAASL:
    """A new :class:`CAASL` on ``env`` with the preset's algorithm and policy settings."""
    algorithm = dict(config.get("algorithm") or {})
    if isinstance(algorithm.get("train_freq"), list):
        algorithm["train_freq"] = tuple(algorithm["train_freq"])
    return CAASL(
        env,
        seed=config["seed"],
        device=config.get("device", "auto"),
        tensorboard_log=tensorboard_log,
        policy_kwargs=config.get("policy_kwargs"),
        verbose=verbose,
        **algorithm,
    )


def train(
    config: dict[str, Any],
    output_dir: str | Path,
    device: str | None = None,
    n_envs: int | None = None,
    total_timesteps: int | None = None,
    seed: int | None = None,
    resume: str | Path | None = None,
    progress_bar: bool = False,
    verbose: int = 1,
    trust_pickles: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train CAASL as ``config`` says (arguments that are not ``None`` override it).

    :param resume: a checkpoint zip, loaded safely unless ``trust_pickles``
        (:meth:`CAASL.load <caasl_agent.CAASL.load>`).
    :param overwrite: replace the outputs of an earlier run in ``output_dir`` (without it, and
        without ``resume``, such a folder is a ``ValueError`` before any work).
    :return: the content of ``results.json``.
    """
    config = with_overrides(
        config, device=device, n_envs=n_envs, total_timesteps=total_timesteps, seed=seed
    )
    # before the output folder is made; config.yaml records the device that runs, not "auto"
    config["device"] = str(resolve_device(config.get("device", "auto")))
    if resume is not None:  # a crafted or corrupt zip fails before anything is written
        CAASL.load(resume, device="cpu", trust_pickles=trust_pickles)
    output = check_output_dir(output_dir)
    if resume is None and not overwrite:
        refuse_existing(output, TRAIN_OUTPUTS, "--overwrite (overwrite=True)")
    # the earlier outputs stay until the new run has a result; a failed run leaves nothing
    aside = overwrite and not _inside(resume, output)  # --resume into its run: kept
    with replacing(output, TRAIN_OUTPUTS, aside, lambda: has_result(output)):
        return _train(config, output, resume, progress_bar, verbose, trust_pickles)


def has_result(output: Path) -> bool:
    """Whether the run in ``output`` has a result to keep: an evaluation or a checkpoint."""
    return (output / "evaluations.csv").exists() or any(output.glob("checkpoints/*.zip"))


def _inside(resume: str | Path | None, output: Path) -> bool:
    return resume is not None and Path(resume).resolve().is_relative_to(output.resolve())


def _train(
    config: dict[str, Any],
    output: Path,
    resume: str | Path | None,
    progress_bar: bool,
    verbose: int,
    trust_pickles: bool,
) -> dict[str, Any]:
    """:func:`train` into the checked ``output`` folder."""
    env_kwargs = prepare_output(config, output)
    model = make_model(config, env_kwargs, output, resume, verbose, trust_pickles)
    eval_callback = DesignEvalCallback(
        config["env_id"],
        env_kwargs,
        config["evaluation"]["n_envs"],
        config["evaluation"]["seed"],
        config["evaluation"]["every_steps"],
        output,
        deterministic=config["evaluation"].get("deterministic", False),
        at_start=resume is not None,
    )
    train_seconds = learn(model, config, output, eval_callback, resume is None, progress_bar)
    model.save(output / "final_model")
    if not eval_callback.history or eval_callback.history[-1]["timesteps"] != model.num_timesteps:
        eval_callback.evaluate()
    best = CAASL.load(output / "best_model", device=config.get("device", "auto"))
    results = {
        "env_id": config["env_id"],
        "env_kwargs": env_kwargs,
        "timesteps": int(model.num_timesteps),
        "train_seconds": round(train_seconds, 1),
        **heldout_results(best, config, env_kwargs),
    }
    write_atomic(output / "results.json", json.dumps(results, indent=2))
    plot_learning_curve(
        eval_callback.history, eval_callback.random_mean, output / "learning_curve.png"
    )
    model.get_env().close()
    return results


def with_overrides(config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A copy of ``config`` with the overrides that are not ``None``; checks the sizes."""
    config = copy.deepcopy(config)
    config.update({key: value for key, value in overrides.items() if value is not None})
    for key, low in (("total_timesteps", 1), ("n_envs", 1), ("seed", 0)):
        config[key] = check_int(key, config[key], low)
    return config


def prepare_output(config: dict[str, Any], output: Path) -> dict[str, Any]:
    """Make ``output/checkpoints`` and write ``config.yaml`` (with the resolved reward model);
    returns the env kwargs."""
    (output / "checkpoints").mkdir(parents=True, exist_ok=True)
    env_kwargs = env_kwargs_of(config)
    with (output / "config.yaml").open("w") as f:
        yaml.safe_dump({**config, "env_kwargs": env_kwargs}, f, sort_keys=False)
    return env_kwargs


def make_model(
    config: dict[str, Any],
    env_kwargs: dict[str, Any],
    output: Path,
    resume: str | Path | None = None,
    verbose: int = 1,
    trust_pickles: bool = False,
) -> CAASL:
    """A new (or, with ``resume``, a loaded) :class:`CAASL` on the preset's training envs.

    With ``normalize_reward``, the envs are wrapped in SB3's ``VecNormalize`` on the rewards
    only, with the model's own discount, so that its running return matches the return the
    critics learn.
    """
    env: VecEnv = caasl_envs.make_sb3_vec_env(
        config["env_id"], n_envs=config["n_envs"], seed=config["seed"], **env_kwargs
    )
    if resume is not None:
        model = CAASL.load(
            resume, env=env, device=config.get("device", "auto"), trust_pickles=trust_pickles
        )
        model.tensorboard_log = str(output / "tb")
    else:
        model = model_from_config(config, env, tensorboard_log=str(output / "tb"), verbose=verbose)
    log_to_csv_without_tensorboard(model, output, verbose)
    if config.get("normalize_reward", False):
        # One set of SAC settings (entropy coefficient, learning rates) then fits reward models
        # whose per-step rewards differ by orders of magnitude (SERGIO's are ~0.01). The buffer
        # keeps the raw rewards; SB3 rescales them when it samples. The running statistics
        # restart on --resume.
        model.set_env(VecNormalize(env, norm_obs=False, norm_reward=True, gamma=model.gamma))
    return model


def learn(
    model: CAASL,
    config: dict[str, Any],
    output: Path,
    eval_callback: DesignEvalCallback,
    fresh: bool,
    progress_bar: bool = False,
) -> float:
    """``model.learn`` for the preset's steps with periodic checkpoints and evaluations;
    returns the wall-clock seconds."""
    n = config["n_envs"]
    checkpoints = CheckpointCallback(
        max(config["checkpoint_every_steps"] // n, 1),
        str(output / "checkpoints"),
        name_prefix="caasl",
    )
    start = time.perf_counter()
    model.learn(
        config["total_timesteps"],
        callback=[checkpoints, eval_callback, StopOnInterrupt(output)],
        log_interval=10 * n,  # SB3 counts episodes; all n envs end together: every 10 rounds
        progress_bar=progress_bar,
        tb_log_name="CAASL",
        reset_num_timesteps=fresh,
    )
    return time.perf_counter() - start


def heldout_results(
    best: CAASL, config: dict[str, Any], env_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The best policy (sampled and deterministic) and the harness's ``random`` baseline on the
    held-out envs: summaries and the paired difference (sampled - random) of the final
    expected correct entries, and the returns."""
    evaluation = config["evaluation"]
    heldout = (evaluation["heldout_n_envs"], evaluation["heldout_seed"])
    run = {
        "caasl": evaluate_agent(best, config["env_id"], env_kwargs, *heldout),
        "caasl_deterministic": evaluate_agent(best, config["env_id"], env_kwargs, *heldout, True),
        "random": evaluate_agent("random", config["env_id"], env_kwargs, *heldout),
    }
    final = {name: r["final_expected_correct_entries"] for name, r in run.items()}
    return {
        "heldout_envs": {"n": heldout[0], "seed": heldout[1]},
        "best_model_selected_by": "deterministic"
        if evaluation.get("deterministic", False)
        else "sampled",
        "caasl_final_expected_correct_entries": summarize(final["caasl"]),
        "caasl_deterministic_final_expected_correct_entries": summarize(
            final["caasl_deterministic"]
        ),
        "random_final_expected_correct_entries": summarize(final["random"]),
        "paired_difference": summarize_paired(final["caasl"] - final["random"]),
        "caasl_return": summarize(run["caasl"]["return"]),
        "random_return": summarize(run["random"]["return"]),
    }


def _train_command(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    results = train(
        load_config(args.config),
        args.output_dir
        or f"runs/{Path(args.config).stem}-seed{args.seed if args.seed is not None else 0}",
        device=args.device,
        n_envs=args.n_envs,
        total_timesteps=args.total_timesteps,
        seed=args.seed,
        resume=args.resume,
        progress_bar=args.progress_bar,
        trust_pickles=args.trust_pickles,
        overwrite=args.overwrite,
    )
    print(json.dumps(results, indent=2))


def add_train_parser(subparsers) -> None:
    """Register ``caasl train`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("train", help="train CAASL from a preset (see caasl_agent/configs)")
    p.add_argument(
        "--config", default="cpu-quick", help=f"preset name {available_presets()} or YAML path"
    )
    p.add_argument("--output-dir", default=None, help="default: runs/<config>-seed<seed>")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, ... (default: the preset's)")
    p.add_argument(
        "--n-envs", type=positive_int, default=None, help="parallel envs (default: the preset's)"
    )
    p.add_argument(
        "--total-timesteps",
        type=positive_int,
        default=None,
        help="environment steps to train for (default: the preset's)",
    )
    p.add_argument("--seed", type=int, default=None, help="training seed (default: the preset's)")
    p.add_argument("--resume", default=None, help="a checkpoint .zip to continue training from")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier run in --output-dir (default: refuse them)",
    )
    p.add_argument(
        "--trust-pickles",
        action="store_true",
        help="unpickle the --resume zip as Stable-Baselines3 does (runs code a crafted file "
        "holds; default: only allow-listed objects)",
    )
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument(
        "--progress-bar",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar while training",
    )
    p.set_defaults(func=_train_command)
