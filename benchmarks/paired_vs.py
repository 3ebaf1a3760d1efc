"""Paired differences between two agents of a saved benchmark run (any reference agent).

One table per evaluation mode (a ``--mode both`` run has deterministic and stochastic
episodes, never pooled); the intervals are the harness's
(:meth:`caasl_agent.bench.reports.BenchmarkResults.comparison`: mean and 95% t-interval of the
per-environment differences).

python benchmarks/paired_vs.py results/issue7-linear-exact caasl:caasl-linear-exact-v0 uncertainty
"""

from __future__ import annotations

import argparse

from caasl_agent.bench.reports import BenchmarkResults

METRICS = ("expected_correct_entries", "eshd", "auroc", "auprc", "f1")


def paired_tables(results: BenchmarkResults, agent: str, reference: str) -> str:
    """Markdown tables of ``agent - reference`` per setting and metric, one per mode."""
    frame = results.comparison(reference)
    frame = frame[(frame.agent == agent) & frame.metric.isin(METRICS)]
    if frame.empty:
        raise ValueError(f"no runs of {agent!r} paired with {reference!r} in these results")
    lines: list[str] = []
    for mode, rows in frame.groupby("mode", sort=False):
        lines += [
            f"Paired difference `{agent}` − `{reference}`, {mode} policies: mean "
            "[95% t-interval] over shared environments",
            "",
            "| setting | " + " | ".join(METRICS) + " |",
            "|---|" + "---:|" * len(METRICS),
        ]
        for setting, group in rows.groupby("setting", sort=False):
            by_metric = group.set_index("metric")
            cells = [
                f"{r.mean_diff:.3f} [{r.ci95_low:.3f}, {r.ci95_high:.3f}]"
                for r in (by_metric.loc[m] for m in METRICS)
            ]
            lines.append(f"| {setting} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder written by caasl bench (BenchmarkResults.save)")
    parser.add_argument("agent")
    parser.add_argument("reference")
    args = parser.parse_args(argv)
    results = BenchmarkResults.load(args.folder)
    print(paired_tables(results, args.agent, args.reference))


if __name__ == "__main__":
    main()
