"""One table of designers from several ``caasl bench`` folders, paired over shared environments.

Each ``caasl bench`` run fixes episode ``i`` of a setting by the suite's seed, so runs made in
separate invocations (a slow planner in one, a policy in another, each in the mode it is meant
for) meet the same environments and pair up. The baselines do not depend on the mode; a policy
run in both modes is labelled ``agent (mode)``. Runs of one agent and setting over different
environments (the suite and validation draws with other ``--seed`` s) are pooled, and pairs are
formed by environment seed. Prints, for one metric, mean ± s.e. per setting and agent, then
``agent - reference`` paired differences over the shared environments with 95 % t-intervals
(the harness's :func:`~caasl_agent.bench.reports.paired_interval`).

    python benchmarks/designer_table.py results/imitation/baselines results/imitation/policy \
        --agent caasl:caasl-linear-imitation-v0 --references eig-batch,eig,random
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from caasl_agent.bench.reports import BenchmarkResults, RunRecord, mean_sem, paired_interval


def labelled_runs(
    folders: list[str], mode_free: frozenset[str] = frozenset()
) -> dict[tuple[str, str], RunRecord]:
    """``{(setting, label): run}`` of every run in ``folders``, pooled by :func:`label_runs`."""
    runs = [run for folder in folders for run in BenchmarkResults.load(folder).runs]
    return label_runs(runs, mode_free)


def label_runs(
    runs: list[RunRecord], mode_free: frozenset[str] = frozenset()
) -> dict[tuple[str, str], RunRecord]:
    """``{(setting, label): run}``: the label is the agent, or ``agent (mode)`` for an agent
    run in several modes unless it is ``mode_free`` (a planner that ignores the mode); the runs
    of one label and setting are pooled (:func:`pool`)."""
    modes: dict[str, set[str]] = {}
    for run in runs:
        modes.setdefault(run.agent, set()).add("" if run.agent in mode_free else run.mode)
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    for run in runs:
        label = run.agent if len(modes[run.agent]) == 1 else f"{run.agent} ({run.mode})"
        grouped.setdefault((run.setting, label), []).append(run)
    return {key: pool(group) for key, group in grouped.items()}


def pool(runs: list[RunRecord]) -> RunRecord:
    """One run from runs of an agent and setting over different environments: their episodes
    in order, an environment seen twice kept once (it must have the same metrics)."""
    first: dict[int, tuple[RunRecord, int]] = {}
    for run in runs:
        for i, seed in enumerate(run.seeds):
            if seed not in first:
                first[seed] = (run, i)
                continue
            seen, j = first[seed]
            for name, values in run.metrics.items():
                if not np.array_equal(values[i], seen.metrics[name][j], equal_nan=True):
                    raise ValueError(
                        f"{run.setting} / {run.agent}: environment seed {seed} has two different "
                        f"results ({name})"
                    )
    picks = list(first.values())
    return dataclasses.replace(
        runs[0],
        seeds=tuple(first),
        metrics={
            name: np.stack([r.metrics[name][i] for r, i in picks]) for name in runs[0].metrics
        },
        probs=np.stack([r.probs[i] for r, i in picks]),
        graphs=np.stack([r.graphs[i] for r, i in picks]),
    )


def at(run: RunRecord, metric: str, experiments: int | None = None) -> np.ndarray:
    """``(episodes,)`` values of ``metric`` after ``experiments`` experiments (default: all)."""
    values = run.metrics[metric]
    if experiments is None:
        return values[:, -1]
    if not 0 <= experiments < values.shape[1]:
        raise ValueError(
            f"--experiments must be in [0, {values.shape[1] - 1}] for {run.setting}, "
            f"got {experiments}"
        )
    return values[:, experiments]


def paired_difference(
    mine: RunRecord, ref: RunRecord, metric: str, experiments: int | None = None
) -> np.ndarray:
    """``mine - ref`` of ``metric`` after ``experiments`` experiments (default: all) over the
    environments both ran, by seed."""
    where = {seed: i for i, seed in enumerate(ref.seeds)}
    shared = [(i, where[seed]) for i, seed in enumerate(mine.seeds) if seed in where]
    if not shared:
        raise ValueError(f"{mine.setting}: {mine.agent} and {ref.agent} share no environment")
    own, other = (np.array(index) for index in zip(*shared))
    return at(mine, metric, experiments)[own] - at(ref, metric, experiments)[other]


def tables(
    runs: dict[tuple[str, str], RunRecord],
    agent: str,
    references: list[str],
    metric: str,
    experiments: int | None = None,
) -> str:
    """Markdown: the summary table and the paired-difference table of ``metric`` after
    ``experiments`` experiments (default: all)."""
    settings = list(dict.fromkeys(s for s, _ in runs))
    agents = list(dict.fromkeys(a for _, a in runs))
    lines = ["| setting | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for setting in settings:
        cells = []
        for a in agents:
            run = runs.get((setting, a))
            cells.append(
                ""
                if run is None
                else "{:.2f} ± {:.2f}".format(*mean_sem(at(run, metric, experiments))[:2])
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
            mean, low, high, _ = paired_interval(paired_difference(mine, ref, metric, experiments))
            cells.append(f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders written by caasl bench")
    parser.add_argument("--agent", required=True, help="the agent compared with the references")
    parser.add_argument("--references", required=True, help="comma-separated agent labels")
    parser.add_argument("--metric", default="expected_correct_entries")
    parser.add_argument(
        "--mode-free",
        default="",
        help="comma-separated agents whose runs of every mode are one (planners such as eig-batch)",
    )
    parser.add_argument(
        "--experiments",
        type=int,
        default=None,
        help="compare after this many experiments (0: the observational data alone); default all",
    )
    args = parser.parse_args(argv)
    runs = labelled_runs(args.folders, frozenset(filter(None, args.mode_free.split(","))))
    print(tables(runs, args.agent, args.references.split(","), args.metric, args.experiments))


if __name__ == "__main__":
    main()
