"""Speed of the batched SERGIO simulator on CPU (no reward model).

Times, for ``--envs`` networks of ``--d`` genes in the CAASL setting (10x-chromium-mini
technical noise, knockouts): drawing the networks, the initial observational dataset of
``--cells`` cells per network (simulation alone and with technical noise and counts), and one
interventional step of one cell per network with random knockout targets. Each figure is the
median of ``--repeats`` runs, as wall-clock and as CPU time of the process. The last line,
``seconds=<float>``, is the wall-clock time of the observational dataset with technical noise
and counts.

    python benchmarks/bench_sergio.py --envs 1000 --cells 50 --d 10

``--accuracy`` instead compares cell draws with short burn-ins (linear-noise and SERGIO's
fixed-point start) against 1000-step runs of the same networks, gene by gene (about 2 min).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import SergioPrior


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of this process (CPU time is what an idle core would
    take for a one-thread run; wall time includes waiting for a busy machine)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def accuracy_table(d: int, networks: int = 20, cells: int = 4000) -> None:
    """Mean gaps (in reference sd) and variance ratios of short burn-ins vs 1000 steps."""
    prior = SergioPrior(d=d, technical_noise="clean", counts=False, cell_types=1)
    grn = prior.sample(BatchedRNG.from_seeds(range(networks)))

    def cells_after(start: str, steps: int, seed: int) -> torch.Tensor:
        run = dataclasses.replace(grn, start=start, burn_in_steps=steps)
        return run.expression(BatchedRNG.from_seeds(range(seed, seed + networks)), cells)

    reference = cells_after("linear-noise", 1000, seed=10_000)
    ref_mean, ref_var = reference.mean(1), reference.var(1)
    print(f"# {networks} networks, d={d}, one cell type, {cells} cells; reference: 1000 steps")
    print(
        f"{'start':<14} {'steps':>5} {'gap/sd avg':>10} {'max':>6} {'var ratio avg':>13} {'min':>5} {'max':>5}"
    )
    for start, steps in [("linear-noise", s) for s in (0, 50, 100, 300)] + [
        ("fixed-point", s) for s in (100, 300)
    ]:
        x = cells_after(start, steps, seed=20_000)
        gap = ((x.mean(1) - ref_mean) / ref_var.sqrt()).abs()
        ratio = x.var(1) / ref_var
        print(
            f"{start:<14} {steps:>5} {gap.mean():>10.3f} {gap.max():>6.3f} "
            f"{ratio.mean():>13.2f} {ratio.min():>5.2f} {ratio.max():>5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--burn-in-steps", type=int, default=SergioPrior.burn_in_steps)
    parser.add_argument("--accuracy", action="store_true", help="accuracy table instead of speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.accuracy:
        accuracy_table(args.d)
        return

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
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'what':<40} {'wall s':>9} {'cpu s':>9}")
    for name, (wall, cpu) in rows:
        print(f"{name:<40} {wall:>9.3f} {cpu:>9.3f}")
    print(f"seconds={rows[2][1][0]:.4f}")


if __name__ == "__main__":
    main()
