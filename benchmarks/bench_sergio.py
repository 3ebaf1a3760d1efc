"""Speed of the batched SERGIO simulator on CPU (no reward model).

Times, for ``--envs`` networks of ``--d`` genes in the CAASL setting (10x-chromium-mini
technical noise, knockouts): drawing the networks, the initial observational dataset of
``--cells`` cells per network (simulation alone and with technical noise and counts), and one
interventional step of one cell per network with random knockout targets. Each figure is the
median of ``--repeats`` runs. The last line, ``seconds=<float>``, is the observational dataset
with technical noise and counts.

    python benchmarks/bench_sergio.py --envs 1000 --cells 50 --d 10
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import SergioPrior


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--burn-in-steps", type=int, default=SergioPrior.burn_in_steps)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    prior = SergioPrior(d=args.d, burn_in_steps=args.burn_in_steps)
    rng = BatchedRNG.from_seeds(range(args.envs))
    grn = prior.sample(rng)
    targets = torch.rand(args.envs, args.d, generator=torch.Generator().manual_seed(0)) > 0.5

    rows = [
        ("draw networks", median_seconds(lambda: prior.sample(rng), args.repeats)),
        (
            f"{args.cells} cells, simulation only",
            median_seconds(lambda: grn.expression(rng, args.cells), args.repeats),
        ),
        (
            f"{args.cells} cells, + technical noise + counts",
            median_seconds(lambda: grn.sample(rng, args.cells), args.repeats),
        ),
        (
            "1 cell, knockout step",
            median_seconds(lambda: grn.sample(rng, 1, targets), args.repeats),
        ),
    ]
    print(
        f"# SERGIO simulator: {args.envs} envs, d={args.d}, burn-in {args.burn_in_steps} steps, "
        f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}"
    )
    print(f"{'what':<40} {'seconds':>9}")
    for name, seconds in rows:
        print(f"{name:<40} {seconds:>9.3f}")
    print(f"seconds={rows[2][1]:.4f}")


if __name__ == "__main__":
    main()
