"""Paired differences between two agents of a saved benchmark run (any reference agent).

python benchmarks/paired_vs.py results/issue7-linear-exact caasl:caasl-linear-exact-v0 uncertainty
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ("expected_correct_entries", "eshd", "auroc", "auprc", "f1")


def main(folder: str, agent: str, reference: str) -> None:
    episodes = pd.read_csv(f"{folder}/episodes.csv")
    print(
        f"Paired difference `{agent}` − `{reference}`: mean [95% t-interval] over shared environments\n"
    )
    print("| setting | " + " | ".join(METRICS) + " |")
    print("|---|" + "---:|" * len(METRICS))
    for setting, rows in episodes.groupby("setting", sort=False):
        a = rows[rows.agent == agent].set_index("episode").sort_index()
        b = rows[rows.agent == reference].set_index("episode").sort_index()
        cells = []
        for metric in METRICS:
            diff = (a[metric] - b[metric]).to_numpy()
            half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
            cells.append(f"{diff.mean():.3f} [{diff.mean() - half:.3f}, {diff.mean() + half:.3f}]")
        print(f"| {setting} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:4])
