"""Quality of shipped reward models on fixed held-out datasets, side by side with baselines.

Datasets: CAASL's linear-Gaussian prior at d=10 (docs/design.md §3; ``--d`` for others), ER
degree 3 and degree 1; each has
50 observational rows and 10 interventional rows with random do-targets (every node w.p. U(0.05,
0.6) per dataset) and values U[-1, 1]. Scorers:

* each ``--models`` AVICI model on the 60 rows; on the 50 observational rows alone; on 60
  observational rows (the same systems, the interventional rows replaced by observational ones);
* the constant-density prior (density = the prior's expected edge density);
* |partial correlation| on the rows where neither variable was intervened on;
* the exact edge posteriors (``exact-linear-gaussian``: BGe, and ``exact-linear-scm``: the
  environments' own parameter prior; both with the ER prior), the reference ceiling (d <= 14);
* GES (causal-learn, BIC score) on all 60 rows (flags ignored); CPDAG -> hard graph with
  undirected edges in both directions.

    python benchmarks/reward_quality.py [--datasets 100] [--models avici-linear-v1 avici-linear-v0]
        [--d 10 20 30]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
import torch

from caasl_envs import load_reward_model
from caasl_envs.metrics import all_metrics
from caasl_envs.reward.base import ConstantRewardModel, PartialCorrelationRewardModel
from caasl_envs.reward.exact import MAX_EXACT_D
from caasl_envs.reward.training.data import LinearDatasetSampler

SETTINGS = {"ER degree 3": 3.0, "ER degree 1": 1.0}
COLUMNS = ("auroc", "auprc", "eshd", "expected_correct_entries", "shd", "f1")


def heldout(
    degree: float, n_datasets: int, n_int: int, p_obs_only: float, seed: int = 12345, d: int = 10
):
    """Fixed held-out datasets: the same SCMs for any ``n_int``/``p_obs_only`` (same seed); seeds
    disjoint from every training run's ``(seed, step)``."""
    sampler = LinearDatasetSampler(
        d_range=(d, d), n_obs_range=(50, 50), n_int_range=(n_int, n_int), p_obs_only=p_obs_only,
        graphs=("erdos_renyi",), degrees=(degree,),
    )  # fmt: skip
    key = (seed, int(degree)) if d == 10 else (seed, int(degree), d)  # d = 10: the earlier sets
    return sampler.sample(key, n_datasets)


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
    parser.add_argument("--models", nargs="+", default=["avici-linear-v0"])
    parser.add_argument("--d", nargs="+", type=int, default=[10], help="numbers of variables")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-ges", action="store_true", help="skip GES (slow above d = 10)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: load_reward_model(name) for name in args.models}
    for d in args.d:
        for setting, degree in SETTINGS.items():
            print_setting(setting, degree, d, args.datasets, models, ges=not args.no_ges)


def scorers(models: dict, degree: float, d: int, x: torch.Tensor, x_obs: torch.Tensor) -> list:
    """``(row name, model, data)`` of one table."""
    n_int = x.shape[1] - 50
    runs = []
    for name, model in models.items():
        runs += [
            (f"{name}, 50 obs + {n_int} int", model, x),
            (f"{name}, 50 obs only", model, x[:, :50]),
            (f"{name}, {50 + n_int} obs", model, x_obs),
        ]
    density = min(2 * degree / (d - 1), 0.99) / 2  # ER on the lower triangle, then relabelled
    runs += [
        (f"constant prior ({density:.3f})", ConstantRewardModel(density), x),
        (f"partial correlation, 50 obs + {n_int} int", PartialCorrelationRewardModel(), x),
    ]
    if d <= MAX_EXACT_D:
        for name, label in (("exact-linear-gaussian", "BGe"), ("exact-linear-scm", "linear SCM")):
            exact = load_reward_model(name).for_prior(SimpleNamespace(graph_degree=degree))
            runs.append((f"exact posterior ({label}), 50 obs + {n_int} int", exact, x))
    return runs


def print_setting(
    setting: str, degree: float, d: int, n_datasets: int, models: dict, ges: bool = True
) -> None:
    """One markdown table: every scorer on the same held-out datasets of one setting."""
    x, graph = heldout(degree, n_datasets, n_int=10, p_obs_only=0.0, d=d)
    x_obs, graph_obs = heldout(degree, n_datasets, n_int=10, p_obs_only=1.0, d=d)
    assert torch.equal(graph, graph_obs) and torch.equal(x[:, :50], x_obs[:, :50])
    density = float(graph.sum() / (graph.shape[0] * d * (d - 1)))
    print(f"\n### {setting} (d={d}, {n_datasets} datasets, true edge density {density:.3f})\n")
    print("| scorer | AUROC | AUPRC | E-SHD | E[correct entries] | SHD | F1 | CPU ms/dataset |")
    print("|---|---|---|---|---|---|---|---|")
    for name, scorer, data in scorers(models, degree, d, x, x_obs):
        start = time.process_time()
        with torch.inference_mode():
            probs = scorer.edge_probs(data)
        print(_row(name, probs, graph, time.process_time() - start))
    if not ges:
        return
    start = time.process_time()
    probs = ges_probs(x)
    if probs is None:
        print("| GES | causal-learn not installed | | | | | | |")
    else:
        print(_row("GES (BIC), 60 rows", probs, graph, time.process_time() - start))


if __name__ == "__main__":
    main()
