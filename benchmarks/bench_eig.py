"""The expected-information-gain designers (``eig``, ``eig-batch``): design quality and latency.

Subcommands:

* ``run SETTING AGENTS``: one setting of the ``linear`` suite (seed 0, exact posterior
  ``exact-linear-gaussian`` as reward model, sampled policies) for comma-separated agents into
  ``--out``; on the ``shift`` setting the EIG designers plan for shift interventions. Runs of
  the same setting with different agents meet the same environments (episode ``i`` is fixed by
  the suite), so several runs can be reported together.
* ``report FOLDER...``: final expected correct entries per setting and agent (mean ± s.e.) and
  paired differences (mean [95% t-interval] over the episodes both agents ran) against
  ``--reference``.
* ``latency``: milliseconds per design (one ``predict`` call over a batch: wall clock and
  process CPU time, which a shared machine inflates less; CPU per environment) at d = 10 and
  12, batch 1 and 100, on histories right after reset (n0 = 50 rows), for ``eig``,
  ``eig-batch``, ``uncertainty`` and ``random``.

    python benchmarks/bench_eig.py run in-distribution eig --episodes 100 --out results/eig/a
    python benchmarks/bench_eig.py report results/eig/* --reference eig
    python benchmarks/bench_eig.py latency --dims 10 --batches 1 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from caasl_agent.bench.baselines import make_baseline
from caasl_agent.bench.eig import EIGAgent, EIGBatchAgent
from caasl_agent.bench.runner import benchmark
from caasl_envs import CausalDesignVectorEnv

REWARD_MODEL = "exact-linear-gaussian"
SHIFT_DESIGNERS = {"eig": EIGAgent, "eig-batch": EIGBatchAgent}


def run(setting: str, agents: str, episodes: int, out: str) -> None:
    names = [a for a in agents.split(",") if a]
    specs = {
        name: SHIFT_DESIGNERS[name](REWARD_MODEL, intervention="shift")
        if setting == "shift" and name in SHIFT_DESIGNERS
        else name
        for name in names
    }
    start = time.perf_counter()
    results = benchmark(
        specs,
        suite="linear",
        settings=[setting],
        episodes=episodes,
        seed=0,
        modes=("stochastic",),
        reward_model=REWARD_MODEL,
        progress=False,
    )
    results.save(out, plots=False)
    print(f"{setting}: {names} x {episodes} episodes in {time.perf_counter() - start:.0f} s")


def report(folders: list[str], reference: str, metric: str) -> None:
    episodes = pd.concat([pd.read_csv(Path(f) / "episodes.csv") for f in folders])
    print(f"Final `{metric}`: mean ± s.e. (episodes)\n")
    print("| setting | agent | episodes | mean ± s.e. |\n|---|---|---:|---:|")
    for (setting, agent), rows in episodes.groupby(["setting", "agent"], sort=False):
        x = rows[metric].to_numpy()
        se = x.std(ddof=1) / np.sqrt(len(x))
        print(f"| {setting} | {agent} | {len(x)} | {x.mean():.2f} ± {se:.2f} |")
    print(f"\nPaired difference agent − `{reference}` (mean [95% t-interval], shared episodes)\n")
    print("| setting | agent | episodes | difference |\n|---|---|---:|---:|")
    for setting, rows in episodes.groupby("setting", sort=False):
        ref = rows[rows.agent == reference].set_index("episode")[metric]
        for agent, other in rows[rows.agent != reference].groupby("agent", sort=False):
            diff = (other.set_index("episode")[metric] - ref).dropna().to_numpy()
            if len(diff) < 2:
                continue
            half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
            mean = diff.mean()
            print(
                f"| {setting} | {agent} | {len(diff)} | "
                f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] |"
            )


def latency(dims: list[int], batches: list[int], agents: list[str], repeats: int) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {repeats}")
    print(
        "\n| designer | d | batch | ms per call (wall) | ms per call (CPU) | CPU ms per env |"
        "\n|---|---:|---:|---:|---:|---:|"
    )
    for d in dims:
        for batch in batches:
            vec = CausalDesignVectorEnv(batch, d=d, reward_model=REWARD_MODEL)
            obs, _ = vec.reset(seed=list(range(batch)))
            for name in agents:
                agent = make_baseline(name, seed=0, reward_model=vec.core.reward_model)
                wall, cpu = [], []
                for _ in range(repeats):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    agent.predict(obs)
                    wall.append(time.perf_counter() - start)
                    cpu.append(time.process_time() - start_cpu)
                ms, cpu_ms = 1000 * float(np.median(wall)), 1000 * float(np.median(cpu))
                print(
                    f"| {name} | {d} | {batch} | {ms:.1f} | {cpu_ms:.1f} | {cpu_ms / batch:.2f} |"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("setting")
    p.add_argument("agents")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("folders", nargs="+")
    p.add_argument("--reference", default="eig")
    p.add_argument("--metric", default="expected_correct_entries")
    p = sub.add_parser("latency")
    p.add_argument("--dims", type=int, nargs="+", default=[10, 12])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 100])
    p.add_argument("--agents", nargs="+", default=["eig", "eig-batch", "uncertainty", "random"])
    p.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "run":
        run(args.setting, args.agents, args.episodes, args.out)
    elif args.command == "report":
        report(args.folders, args.reference, args.metric)
    else:
        latency(args.dims, args.batches, args.agents, args.repeats)


if __name__ == "__main__":
    main()
