"""Import cost of ``caasl_envs`` over ``import torch`` alone, in fresh interpreters.

    python benchmarks/bench_import.py               # median of 5 interpreters per statement
    python benchmarks/bench_import.py --runs 9 --module caasl_agent --profile 15

Each run is a new ``python -c`` that times its own import with ``time.perf_counter`` (the
interpreter's start-up is not counted); ``import torch`` and ``import MODULE`` runs alternate,
after one warm-up of each (file-system cache). The target of issue 31: the median of
``import caasl_envs`` at most 0.2 s above the median of ``import torch``. ``--profile N`` adds
the N slowest packages that ``MODULE`` imports after torch (``python -X importtime``,
cumulative seconds of the first module of each top-level package).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

TIMER = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"


def timed(statement: str) -> float:
    """Seconds ``statement`` takes in a fresh interpreter (one torch thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(statement)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def medians(module: str, runs: int) -> dict[str, list[float]]:
    """``{statement: [seconds, ...]}`` for ``import torch`` and ``import module``, alternated."""
    statements = ("import torch", f"import {module}")
    for statement in statements:  # warm-up
        timed(statement)
    times: dict[str, list[float]] = {s: [] for s in statements}
    for _ in range(runs):
        for statement in statements:
            times[statement].append(timed(statement))
    return times


def profile(module: str, top: int) -> list[tuple[float, str]]:
    """The ``top`` slowest top-level packages ``import module`` loads after torch: ``(seconds,
    first module)``, from ``python -X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import torch; import {module}"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stderr.splitlines()
    start = max(i for i, line in enumerate(lines) if line.rstrip().endswith("| torch"))
    seen: dict[str, tuple[float, str]] = {}
    for line in lines[start + 1 :]:
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            name = match.group(3)
            top_level = name.split(".")[0]
            seconds = int(match.group(1)) / 1e6
            if top_level not in seen or seconds > seen[top_level][0]:
                seen[top_level] = (seconds, name)
    return sorted(seen.values(), reverse=True)[:top]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="interpreters per statement")
    parser.add_argument("--module", default="caasl_envs", help="the package to import")
    parser.add_argument("--profile", type=int, default=0, help="list the N slowest packages")
    args = parser.parse_args(argv)
    times = medians(args.module, args.runs)
    rows = {s: statistics.median(t) for s, t in times.items()}
    print(f"| statement | median s ({args.runs} fresh interpreters) | min s | max s |")
    print("|---|---:|---:|---:|")
    for statement, values in times.items():
        print(f"| `{statement}` | {rows[statement]:.3f} | {min(values):.3f} | {max(values):.3f} |")
    extra = rows[f"import {args.module}"] - rows["import torch"]
    print(f"\n`import {args.module}` - `import torch`: {extra:+.3f} s (target <= 0.2 s)")
    if args.profile:
        print(f"\nslowest packages `import {args.module}` loads after torch (cumulative s):")
        for seconds, name in profile(args.module, args.profile):
            print(f"  {seconds:6.3f}  {name}")


if __name__ == "__main__":
    main()
