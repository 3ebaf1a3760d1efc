"""Learning curves of reward-model training recipes: held-out quality and design discrimination
against wall-clock seconds, one table (and one plot) for several ``caasl-train-reward`` runs.

Reads each run's ``checkpoint.pt`` (its held-out evaluations) and the rows that
``benchmarks/reward_discrimination.py --json`` wrote for the run's snapshots
(``RUN/snapshots/step-NNNNNN.pt``)::

    python benchmarks/reward_discrimination.py --seed 1 --reward-models runs/*/snapshots/*.pt \\
        --json runs/disc-seed1.json
    python benchmarks/reward_recipes.py runs/v1-teacher runs/v1-graph --discrimination \\
        runs/disc-seed1.json --plot recipes.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def discrimination_by_snapshot(path: str | None) -> dict[str, dict[str, dict]]:
    """``{scorer: {designer: row}}`` from a reward_discrimination JSON file (empty without one)."""
    if path is None:
        return {}
    by: dict[str, dict[str, dict]] = {}
    for row in json.loads(Path(path).read_text()):
        by.setdefault(row["scorer"], {})[row["designer"]] = row
    return by


def curve(run: Path, discrimination: dict[str, dict[str, dict]]) -> list[dict]:
    """One row per held-out evaluation of ``run``, with the snapshot's discrimination if known."""
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    rows = []
    for entry in state["history"]:
        snapshot = str(run / "snapshots" / f"step-{int(entry['step']):06d}.pt")
        disc = discrimination.get(snapshot, {})
        rows.append(
            dict(
                step=int(entry["step"]),
                seconds=float(entry["elapsed_s"]),
                auroc=entry["auroc"],
                auprc=entry["auprc"],
                correct=entry["expected_correct_entries"],
                uncertainty=disc.get("uncertainty"),
                observational=disc.get("observational"),
            )
        )
    return rows


def _interval(row: dict | None, sign: float = 1.0) -> str:
    if row is None:
        return ""
    low, high = sorted((sign * row["low"], sign * row["high"]))
    return f"{sign * row['diff']:+.2f} [{low:+.2f}, {high:+.2f}]"


def to_markdown(curves: dict[str, list[dict]]) -> str:
    lines = [
        "| run | step | train s | AUROC | AUPRC | E-correct | uncertainty − random | random − observational |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in curves.items():
        for r in rows:
            lines.append(
                f"| {name} | {r['step']} | {r['seconds']:.0f} | {r['auroc']:.3f} | "
                f"{r['auprc']:.3f} | {r['correct']:.2f} | {_interval(r['uncertainty'])} | "
                f"{_interval(r['observational'], -1.0)} |"
            )
    return "\n".join(lines)


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    """AUPRC and uncertainty − random (with its interval) against seconds, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, rows in curves.items():
        left.plot([r["seconds"] for r in rows], [r["auprc"] for r in rows], marker="o", label=name)
        known = [r for r in rows if r["uncertainty"] is not None]
        seconds = [r["seconds"] for r in known]
        right.plot(seconds, [r["uncertainty"]["diff"] for r in known], marker="o", label=name)
        right.fill_between(
            seconds,
            [r["uncertainty"]["low"] for r in known],
            [r["uncertainty"]["high"] for r in known],
            alpha=0.2,
        )
    left.set(xlabel="training seconds (wall clock, one thread)", ylabel="held-out AUPRC (d = 10)")
    right.axhline(0.0, color="grey", lw=0.8)
    right.set(
        xlabel="training seconds (wall clock, one thread)", ylabel="uncertainty − random return"
    )
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="caasl-train-reward run folders")
    parser.add_argument("--discrimination", default=None, help="reward_discrimination JSON")
    parser.add_argument("--plot", default=None, help="also write this PNG")
    args = parser.parse_args(argv)
    disc = discrimination_by_snapshot(args.discrimination)
    curves = {Path(run).name: curve(Path(run), disc) for run in args.runs}
    print(to_markdown(curves))
    if args.plot:
        plot(curves, Path(args.plot))


if __name__ == "__main__":
    main()
