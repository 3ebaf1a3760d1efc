"""One table of designers from several ``caasl bench`` folders, paired over shared environments.

Each ``caasl bench`` run fixes episode ``i`` of a setting by the suite's seed, so runs made in
separate invocations (a slow planner in one, a policy in another, each in the mode it is meant
for) meet the same environments and pair up. The baselines do not depend on the mode; a policy
run in both modes is labelled ``agent (mode)``. Prints, for one metric, mean ± s.e. per setting
and agent, then ``agent - reference`` paired differences with 95 % t-intervals (the harness's
:func:`~caasl_agent.bench.reports.paired_interval`).

    python benchmarks/designer_table.py results/imitation/baselines results/imitation/policy \
        --agent caasl:caasl-linear-imitation-v0 --references eig-batch,eig,random
"""

from __future__ import annotations

import argparse

import numpy as np

from caasl_agent.bench.reports import BenchmarkResults, RunRecord, mean_sem, paired_interval


def labelled_runs(folders: list[str]) -> dict[tuple[str, str], RunRecord]:
    """``{(setting, label): run}`` of every run in ``folders``."""
    runs = [run for folder in folders for run in BenchmarkResults.load(folder).runs]
    modes: dict[str, set[str]] = {}
    for run in runs:
        modes.setdefault(run.agent, set()).add(run.mode)
    return {
        (run.setting, run.agent if len(modes[run.agent]) == 1 else f"{run.agent} ({run.mode})"): run
        for run in runs
    }


def final(run: RunRecord, metric: str) -> np.ndarray:
    return run.metrics[metric][:, -1]


def tables(runs: dict[tuple[str, str], RunRecord], agent: str, references: list[str], metric: str):
    """Markdown: the summary table and the paired-difference table."""
    settings = list(dict.fromkeys(s for s, _ in runs))
    agents = list(dict.fromkeys(a for _, a in runs))
    lines = ["| setting | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for setting in settings:
        cells = []
        for a in agents:
            run = runs.get((setting, a))
            cells.append(
                "" if run is None else "{:.2f} ± {:.2f}".format(*mean_sem(final(run, metric))[:2])
            )
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    lines += ["", "| setting | " + " | ".join(f"{agent} − {r}" for r in references) + " |"]
    lines.append("|---|" + "---|" * len(references))
    for setting in settings:
        cells = []
        for reference in references:
            mine, ref = runs.get((setting, agent)), runs.get((setting, reference))
            if mine is None or ref is None:
                cells.append("")
                continue
            if tuple(mine.seeds) != tuple(ref.seeds):
                raise ValueError(f"{setting}: {agent} and {reference} ran different environments")
            mean, low, high, _ = paired_interval(final(mine, metric) - final(ref, metric))
            cells.append(f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders written by caasl bench")
    parser.add_argument("--agent", required=True, help="the agent compared with the references")
    parser.add_argument("--references", required=True, help="comma-separated agent labels")
    parser.add_argument("--metric", default="expected_correct_entries")
    args = parser.parse_args(argv)
    runs = labelled_runs(args.folders)
    print(tables(runs, args.agent, args.references.split(","), args.metric))


if __name__ == "__main__":
    main()
