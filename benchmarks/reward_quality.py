"""Quality of the shipped reward model on fixed held-out datasets, side by side with baselines.

Datasets: CAASL's linear-Gaussian prior at d=10 (docs/design.md §3), ER degree 3 and degree 1; each has
50 observational rows and 10 interventional rows with random do-targets (every node w.p. U(0.05,
0.6) per dataset) and values U[-1, 1]. Scorers:

* the shipped AVICI model on the 60 rows; on the 50 observational rows alone; on 60
  observational rows (the same systems, the interventional rows replaced by observational ones);
* the constant-density prior (density = the prior's expected edge density);
* |partial correlation| on the rows where neither variable was intervened on;
* the exact linear-Gaussian edge posterior (``exact-linear-gaussian``: BGe, ER prior), the
  reference ceiling;
* GES (causal-learn, BIC score) on all 60 rows (flags ignored); CPDAG -> hard graph with
  undirected edges in both directions.

    python benchmarks/reward_quality.py [--datasets 100] [--model avici-linear-v0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from caasl_envs import load_reward_model
from caasl_envs.metrics import all_metrics
from caasl_envs.reward.base import ConstantRewardModel, PartialCorrelationRewardModel
from caasl_envs.reward.training.train import LinearDatasetSampler

SETTINGS = {"ER degree 3": 3.0, "ER degree 1": 1.0}
COLUMNS = ("auroc", "auprc", "eshd", "expected_correct_entries", "shd", "f1")


def heldout(degree: float, n_datasets: int, n_int: int, p_obs_only: float, seed: int = 12345):
    """Fixed held-out datasets: the same SCMs for any ``n_int``/``p_obs_only`` (same seed)."""
    sampler = LinearDatasetSampler(
        d_range=(10, 10), n_obs_range=(50, 50), n_int_range=(n_int, n_int), p_obs_only=p_obs_only,
        graphs=("erdos_renyi",), degrees=(degree,),
    )  # fmt: skip
    return sampler.sample((seed, int(degree)), n_datasets)


def ges_probs(x: torch.Tensor) -> torch.Tensor | None:
    """GES (BIC) CPDAGs as 0/1 ``(B, d, d)``, or None when causal-learn is not installed."""
    try:
        from causallearn.search.ScoreBased.GES import ges
    except ImportError:
        return None
    out = []
    for data in x[..., 0].double().numpy():
        cpdag = ges(data, score_func="local_score_BIC")["G"].graph
        # causal-learn: G[j, i] = 1 and G[i, j] = -1 means i -> j; -1 both ways is undirected
        out.append(((cpdag == -1) & (cpdag.T != 0)).astype(np.float32))
    return torch.from_numpy(np.stack(out))


def _row(name: str, probs: torch.Tensor, graph: torch.Tensor, seconds: float) -> str:
    m = all_metrics(probs, graph)
    cells = [f"{float(m[k].nanmean()):.3f}" for k in COLUMNS]
    return f"| {name} | " + " | ".join(cells) + f" | {1e3 * seconds / len(graph):.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--model", default="avici-linear-v0")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_reward_model(args.model)
    for setting, degree in SETTINGS.items():
        x, graph = heldout(degree, args.datasets, n_int=10, p_obs_only=0.0)
        x_obs60, graph_obs = heldout(degree, args.datasets, n_int=10, p_obs_only=1.0)
        assert torch.equal(graph, graph_obs) and torch.equal(x[:, :50], x_obs60[:, :50])
        density = float(graph.sum() / (graph.shape[0] * 90))
        print(
            f"\n### {setting} (d=10, {args.datasets} datasets, true edge density {density:.3f})\n"
        )
        print("| scorer | AUROC | AUPRC | E-SHD | E[correct entries] | SHD | F1 | CPU ms/dataset |")
        print("|---|---|---|---|---|---|---|---|")
        expected_density = (
            min(degree * 10 / 45, 0.99) / 2
        )  # ER on the lower triangle, then relabelled
        runs = [
            (f"{args.model}, 50 obs + 10 int", model, x),
            (f"{args.model}, 50 obs only", model, x[:, :50]),
            (f"{args.model}, 60 obs", model, x_obs60),
            (f"constant prior ({expected_density:.3f})", ConstantRewardModel(expected_density), x),
            ("partial correlation, 50 obs + 10 int", PartialCorrelationRewardModel(), x),
            (
                "exact linear-Gaussian posterior (BGe), 50 obs + 10 int",
                load_reward_model("exact-linear-gaussian"),
                x,
            ),
        ]
        for name, scorer, data in runs:
            start = time.process_time()
            with torch.inference_mode():
                probs = scorer.edge_probs(data)
            print(_row(name, probs, graph, time.process_time() - start))
        start = time.process_time()
        probs = ges_probs(x)
        if probs is None:
            print("| GES | causal-learn not installed | | | | | | |")
        else:
            print(_row("GES (BIC), 60 rows", probs, graph, time.process_time() - start))


if __name__ == "__main__":
    main()
