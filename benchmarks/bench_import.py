"""Import cost of ``caasl_envs`` over ``import torch`` alone, in fresh interpreters.

    python benchmarks/bench_import.py               # median of 5 interpreters per statement
    python benchmarks/bench_import.py --runs 9 --module caasl_agent --profile 15

Each run is a new ``python -c`` that times its own import with ``time.perf_counter`` (the
interpreter's start-up is not counted); ``import torch`` and ``import MODULE`` runs alternate,
after one warm-up of each (file-system cache, byte code). The target of issue 31: the median of
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
import tempfile

TIMER = (
    "import time; t, c = time.perf_counter(), time.process_time(); {}; "
    "print(time.perf_counter() - t, time.process_time() - c)"
)


#: byte code cached as an installed package has it (pip compiles on install), outside the tree
PYCACHE = os.path.join(tempfile.gettempdir(), "caasl-bench-import-pycache")


def timed(statement: str) -> tuple[float, float]:
    """Wall-clock and CPU seconds ``statement`` takes in a fresh interpreter (one torch
    thread, byte code cached in :data:`PYCACHE`); on a loaded machine the CPU seconds are the
    steadier of the two."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPYCACHEPREFIX": PYCACHE}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(statement)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def medians(module: str, runs: int) -> dict[str, list[tuple[float, float]]]:
    """``{statement: [(wall s, CPU s), ...]}`` for ``import torch`` and ``import module``,
    alternated."""
    statements = ("import torch", f"import {module}")
    for statement in statements:  # warm-up: file-system cache and byte code
        timed(statement)
    times: dict[str, list[tuple[float, float]]] = {s: [] for s in statements}
    for _ in range(runs):
        for statement in statements:
            times[statement].append(timed(statement))
    return times


def profile(module: str, top: int) -> list[tuple[float, str]]:
    """The ``top`` slowest top-level packages ``import module`` loads after torch: ``(seconds,
    first module)``, from ``python -X importtime``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPYCACHEPREFIX": PYCACHE}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import torch; import {module}"],
        env=env,
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
    wall = {s: [w for w, _ in t] for s, t in times.items()}
    cpu = {s: statistics.median(c for _, c in t) for s, t in times.items()}
    rows = {s: statistics.median(w) for s, w in wall.items()}
    print(f"| statement | median wall s ({args.runs} interpreters) | min | max | median CPU s |")
    print("|---|---:|---:|---:|---:|")
    for statement, values in wall.items():
        print(
            f"| `{statement}` | {rows[statement]:.3f} | {min(values):.3f} | {max(values):.3f} "
            f"| {cpu[statement]:.3f} |"
        )
    name = f"import {args.module}"
    extra, extra_cpu = rows[name] - rows["import torch"], cpu[name] - cpu["import torch"]
    print(
        f"\n`{name}` - `import torch`: {extra:+.3f} s wall, {extra_cpu:+.3f} s CPU (target <= 0.2 s)"
    )
    if args.profile:
        print(f"\nslowest packages `import {args.module}` loads after torch (cumulative s):")
        for seconds, name in profile(args.module, args.profile):
            print(f"  {seconds:6.3f}  {name}")


if __name__ == "__main__":
    main()
