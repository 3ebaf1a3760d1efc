"""Order-MCMC posterior: accuracy against the exact order DP, two-seed agreement, CPU time.

Held-out histories: ``caasl/LinearGaussian-v0`` with ``d`` overridden (its 50 initial
observations), then 10 random multi-target experiments (uniform actions: each variable a target
with probability 1/2, values uniform in the action range), environment seeds
``10_000 + i`` (disjoint from every training and benchmark seed range in the repository).

Three parts (``--parts``), each printing a markdown table and writing it to ``--out``:

* ``accuracy``: at each ``--accuracy-d`` (default 8, 10, 12, 14), the edge marginals of
  ``mcmc-linear-scm`` against ``exact-linear-scm`` (same prior, in-degree bound and local score)
  on ``--histories`` histories: mean and max absolute error, mean and max absolute difference of
  the expected correct entries (against the true graph), and the chains' own diagnostics.
* ``agreement``: at each ``--agreement-d`` (default 20, 30), two seeds on the same histories:
  mean and max absolute difference of the edge marginals and of the expected correct entries.
* ``time``: CPU time (``time.process_time``, one thread) per scored history at each ``--time-d``
  (default 10, 15, 20, 30) for batches of 1 and ``--batch`` (default 100) histories, local
  scores included, cold start; and the per-step cost of a warm-started episode.

    nice -n 19 python benchmarks/bench_mcmc.py --out results/bench_mcmc [--parts accuracy ...]

Every table is written as soon as it is complete (a rerun with ``--parts`` redoes only those).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import caasl_envs  # noqa: F401  (registers the environments)
from caasl_envs.metrics import expected_correct_entries
from caasl_envs.reward import ExactLinearGaussianPosterior
from caasl_envs.reward.mcmc import OrderMCMCPosterior
from caasl_envs.vector import CausalDesignVectorEnv

SEED = 10_000


def held_out(d: int, count: int, experiments: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` histories ``(count, 50 + experiments, d, 2)`` and their graphs ``(count, d, d)``
    (module docstring)."""
    kwargs = {**gym.spec("caasl/LinearGaussian-v0").kwargs, "d": d}
    env = CausalDesignVectorEnv(count, **kwargs, reward_model="constant-prior")
    env.reset(seed=[SEED + i for i in range(count)])
    rng = np.random.default_rng(SEED + d)
    for _ in range(experiments):
        env.step(rng.uniform(-1.0, 1.0, (count, env.core.action_dim)))
    n = env.core.n0 + experiments
    return env.core.history[:, :n].clone(), env.core.graph.clone()


def scorer(seed: int = 0, **kwargs) -> OrderMCMCPosterior:
    return OrderMCMCPosterior(local_score="linear-scm", seed=seed, **kwargs)


def accuracy_table(ds: list[int], count: int) -> str:
    rows = [
        "| d | histories | edge mean abs err | edge max abs err | ECE diff mean | ECE diff max "
        "| chain agreement (mean) | ESS (median) | MCMC CPU s/history |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in tqdm(ds, desc="accuracy"):
        x, graph = held_out(d, count)
        exact, _ = ExactLinearGaussianPosterior(local_score="linear-scm").posterior(x)
        exact = exact.clamp(0.0, 1.0)  # the DP's sums can pass 1 by a rounding error
        model = scorer()
        start = time.process_time()
        probs = model.edge_marginals(x)
        seconds = (time.process_time() - start) / count
        err = (probs - exact).abs().flatten(1)
        ece = (
            expected_correct_entries(probs, graph) - expected_correct_entries(exact, graph)
        ).abs()
        diag = model.last_diagnostics
        rows.append(
            f"| {d} | {count} | {err.mean():.4f} | {err.max():.3f} | {ece.mean():.3f} | "
            f"{ece.max():.3f} | {diag['chain_agreement'].mean():.3f} | "
            f"{diag['ess'].median():.0f} | {seconds:.2f} |"
        )
    return "\n".join(rows)


def agreement_table(ds: list[int], count: int) -> str:
    rows = [
        "| d | histories | edge mean abs diff | edge max abs diff (median over histories) | "
        "edge max abs diff (max) | histories within 0.05 | ECE diff mean | ECE diff max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in tqdm(ds, desc="agreement"):
        x, graph = held_out(d, count)
        first, second = (scorer(seed).edge_marginals(x) for seed in (0, 1))
        diff = (first - second).abs().flatten(1)
        per_history = diff.amax(1)
        ece = (
            expected_correct_entries(first, graph) - expected_correct_entries(second, graph)
        ).abs()
        rows.append(
            f"| {d} | {count} | {diff.mean():.4f} | {per_history.median():.3f} | "
            f"{per_history.max():.3f} | {int((per_history <= 0.05).sum())}/{count} | "
            f"{ece.mean():.3f} | {ece.max():.3f} |"
        )
    return "\n".join(rows)


def cpu_seconds(model: OrderMCMCPosterior, x: torch.Tensor) -> float:
    start = time.process_time()
    model.edge_marginals(x)
    return time.process_time() - start


def time_table(ds: list[int], batch: int) -> str:
    rows = [
        "| d | CPU s/history, batch 1 | CPU s/history, batch "
        f"{batch} | warm-started step, s/history (batch 1) |",
        "|---|---|---|---|",
    ]
    for d in tqdm(ds, desc="time"):
        x, _ = held_out(d, batch, experiments=11)
        scorer().local_weights(x[:1])  # builds the parent-set tables (cached per process)
        single = cpu_seconds(scorer(), x[:1, :-1])
        many = cpu_seconds(scorer(), x[:, :-1]) / batch
        model = scorer()
        model.edge_marginals(x[:1, :-1])
        warm = cpu_seconds(model, x[:1])  # one more row: warm-started
        rows.append(f"| {d} | {single:.2f} | {many:.2f} | {warm:.2f} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="+", default=["accuracy", "agreement", "time"])
    p.add_argument("--histories", type=int, default=10)
    p.add_argument("--accuracy-d", type=int, nargs="+", default=[8, 10, 12, 14])
    p.add_argument("--agreement-d", type=int, nargs="+", default=[20, 30])
    p.add_argument("--time-d", type=int, nargs="+", default=[10, 15, 20, 30])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--out", default="results/bench_mcmc")
    p.add_argument("--tag", default="", help="suffix of the table files (part-TAG.md)")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "accuracy": lambda: accuracy_table(args.accuracy_d, args.histories),
        "agreement": lambda: agreement_table(args.agreement_d, args.histories),
        "time": lambda: time_table(args.time_d, args.batch),
    }
    for part in args.parts:
        with torch.inference_mode():
            table = tables[part]()
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        text = f"{table}\n\nload average (1, 5, 15 min) at the end: {load}\n"
        (out / f"{part}{'-' + args.tag if args.tag else ''}.md").write_text(text)
        print(f"\n## {part}\n\n{text}", flush=True)


if __name__ == "__main__":
    main()
