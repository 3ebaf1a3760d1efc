"""Tables of the ``nonlinear`` suite from the finished runs of one or more ``caasl bench`` folders.

``caasl bench`` writes its tables when every run has finished; on a machine too busy for that,
this reads the runs that did finish (``OUT/runs/<i>.npz``) and prints the harness's own
markdown tables (:class:`~caasl_agent.bench.reports.BenchmarkResults`) for every setting whose
agents all finished, with paired comparisons against ``--reference``.

    python benchmarks/nonlinear_suite_table.py runs/nonlinear/bench runs/nonlinear/bench-d15 \\
        --reference observational
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from caasl_agent.bench.reports import BenchmarkResults, RunRecord
from caasl_agent.bench.runner import scorer_for
from caasl_agent.bench.suites import get_suite


def finished_runs(folder: Path) -> list[tuple[RunRecord, float, dict]]:
    """``(record, seconds, task)`` of every finished run in ``folder/runs``."""
    tasks = json.loads((folder / "runs" / "tasks.json").read_text())
    out = []
    for index, task in enumerate(tasks):
        path = folder / "runs" / f"{index}.npz"
        if not path.exists():
            continue
        with np.load(path, allow_pickle=False) as npz:
            head = json.loads(str(npz["head"]))
            if head["skipped"] is not None:
                continue
            metrics = {name: npz[f"metric_{i}"] for i, name in enumerate(head["metrics"])}
            record = RunRecord(
                setting=head["setting"],
                agent=head["agent"],
                mode=head["mode"],
                seeds=tuple(head["seeds"]),
                metrics=metrics,
                probs=npz["probs"],
                graphs=npz["graphs"],
            )
        out.append((record, float(head["seconds"]), task))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--reference", default="observational")
    parser.add_argument("--suite", default="nonlinear")
    args = parser.parse_args(argv)
    runs = [run for folder in args.folders for run in finished_runs(folder)]
    agents = sorted({r.agent for r, _, _ in runs}, key=[r.agent for r, _, _ in runs].index)
    suite = get_suite(args.suite)
    complete = [
        s.name
        for s in suite.settings
        if {r.agent for r, _, _ in runs if r.setting == s.name} == set(agents)
    ]
    kept = [(r, sec, t) for r, sec, t in runs if r.setting in complete]
    settings = []
    for name in complete:
        task = next(t for r, _, t in kept if r.setting == name)
        settings.append(
            {
                "name": name,
                "env_id": task["env_id"],
                "env_kwargs": task["env_kwargs"],
                "reward_model": task["reward_model"],
                "scorer": scorer_for("auto", suite.setting(name)) or "reward",
            }
        )
    meta = {
        "format": "caasl-benchmark/1",
        "suite": suite.name,
        "suite_version": suite.version,
        "seed": 0,
        "episodes": len(kept[0][0].seeds) if kept else 0,
        "modes": ["deterministic"],
        "agents": agents,
        "reference": args.reference,
        "settings": settings,
        "skipped": [],
    }
    timings = [
        {"setting": r.setting, "agent": r.agent, "mode": r.mode, "seconds": sec}
        for r, sec, _ in kept
    ]
    print(f"settings with every agent finished: {complete}")
    results = BenchmarkResults(meta, [r for r, _, _ in kept], timings)
    print(results.to_markdown().replace("by scorer reward", "by scorer auto (exact-gp, d <= 10)"))


if __name__ == "__main__":
    main()
