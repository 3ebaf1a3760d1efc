"""Learning curves of ``caasl imitate`` runs: validation expected correct entries against minutes.

Reads each run folder's imitation phase (``fit/curve.csv``: ``step``, ``cpu_seconds``,
``validation``) and RL phase (``rl/evaluations.csv`` and ``rl/results.json``), and draws one
panel per run: the fit against its CPU minutes, then RL from where the fit ended against RL
minutes (``train_seconds`` of the RL run spread evenly over its env steps: one thread, so
wall time, read at low load), with the random designs on the same validation environments as
a dashed line.

    python benchmarks/imitation_curves.py runs/imitation-linear runs/imitation-cut \\
        --labels caasl-linear-imitation-v0,caasl-linear-cut-v0 --out docs/img/imitation-curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def phases(run: Path) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """``(fit, rl, random)``: the fit's ``minutes, validation``, RL's ``minutes, validation``
    (minutes since the fit began) and random designs' validation score."""
    fit = pd.read_csv(run / "fit" / "curve.csv")
    fit = pd.DataFrame({"minutes": fit["cpu_seconds"] / 60, "validation": fit["validation"]})
    rl = pd.read_csv(run / "rl" / "evaluations.csv")
    seconds = json.loads((run / "rl" / "results.json").read_text())["train_seconds"]
    start = float(fit["minutes"].iloc[-1])
    minutes = start + rl["timesteps"] / rl["timesteps"].max() * seconds / 60
    rl_curve = pd.DataFrame({"minutes": minutes, "validation": rl["final_ece_mean"]})
    return fit, rl_curve, float(rl["random_final_ece_mean"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="caasl imitate --out folders")
    parser.add_argument("--labels", required=True, help="comma-separated panel titles")
    parser.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args()
    labels = args.labels.split(",")
    if len(labels) != len(args.runs):
        raise SystemExit(f"--labels names {len(labels)} runs, got {len(args.runs)} folders")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(args.runs), 3.4), layout="constrained")
    axes = fig.subplots(1, len(args.runs), sharey=True, squeeze=False)[0]
    for ax, run, label in zip(axes, args.runs, labels, strict=True):
        fit, rl, random = phases(Path(run))
        ax.plot(fit["minutes"], fit["validation"], "o-", color="#0050b3", label="imitation (fit)")
        ax.plot(rl["minutes"], rl["validation"], "s-", color="#e8590c", label="RL (SAC/REDQ)")
        ax.axhline(random, color="#868e96", linestyle="--", label="random designs")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("minutes (fit: CPU; RL: one thread)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation expected correct entries")
    axes[-1].legend(loc="lower right", fontsize=8)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
