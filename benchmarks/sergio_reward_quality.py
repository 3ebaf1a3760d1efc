"""Held-out quality of the SERGIO count-data reward models, side by side with baselines.

Datasets: d=10 networks of a SERGIO environment's prior (seeds disjoint from training), 50
wild-type cells and ``--n-int`` knockout experiments of ``--cells-per-experiment`` cells each,
each gene a target with probability ``--target-prob`` per experiment (a random agent). The
defaults are ``caasl/SERGIO-v0`` (ER degree 3, one cell per experiment); ``--degree 1
--cells-per-experiment 10`` is ``caasl/SERGIOPerturbSeq-v0``. Scorers:

* the reward model on all cells, on the 50 wild-type cells alone, and on as many wild-type
  cells (the same networks, the knockout cells replaced by wild-type ones);
* the constant-density prior (the prior's expected edge density, ``degree / (d - 1)``);
* |partial correlation| of the raw counts on rows where neither gene was knocked out;
* |correlation| of AVICI's standardised counts (log2 CPM, zeros missing) on those rows: the
  gene-gene correlation score.

    python benchmarks/sergio_reward_quality.py [--datasets 256] [--model avici-sergio-v0]
        [--n-int 10] [--target-prob 0.5] [--technical-noise 10x-chromium-mini]
    python benchmarks/sergio_reward_quality.py --degree 1 --cells-per-experiment 10 \
        --model avici-sergio-perturbseq-v0
"""

from __future__ import annotations

import argparse

import torch

from caasl_envs import load_reward_model
from caasl_envs.inference import standardize_counts
from caasl_envs.metrics import all_metrics
from caasl_envs.reward.base import ConstantRewardModel, PartialCorrelationRewardModel
from caasl_envs.reward.training.train_sergio import SERGIO_HELDOUT, SergioDatasetSampler

COLUMNS = ("auroc", "auprc", "eshd", "expected_correct_entries", "f1")


def correlation_scores(x: torch.Tensor) -> torch.Tensor:
    """``|corr|`` of standardised log counts over rows where neither gene is a target."""
    v = standardize_counts(x[..., 0].double(), torch.ones(x.shape[:2], dtype=torch.bool))
    keep = (x[..., 1] == 0).double()
    w = keep.unsqueeze(-1) * keep.unsqueeze(-2)  # (B, n, d, d)
    cnt = w.sum(1).clamp(min=2.0)
    mean_i = (w * v.unsqueeze(-1)).sum(1) / cnt
    mean_j = (w * v.unsqueeze(-2)).sum(1) / cnt
    cov = (w * v.unsqueeze(-1) * v.unsqueeze(-2)).sum(1) / cnt - mean_i * mean_j
    var_i = (w * v.unsqueeze(-1).square()).sum(1) / cnt - mean_i.square()
    var_j = (w * v.unsqueeze(-2).square()).sum(1) / cnt - mean_j.square()
    corr = cov / (var_i * var_j).clamp(min=1e-12).sqrt()
    eye = torch.eye(x.shape[2], dtype=torch.bool)
    return corr.abs().clamp(max=1.0).masked_fill(eye, 0.0).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=256)
    parser.add_argument("--model", default="avici-sergio-v0", help="registered name or .pt file")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-int", type=int, default=10, help="knockout experiments per dataset")
    parser.add_argument("--cells-per-experiment", type=int, default=1)
    parser.add_argument("--degree", type=float, default=3.0, help="Erdos-Renyi degree")
    parser.add_argument("--target-prob", type=float, default=0.5, help="per gene and experiment")
    parser.add_argument("--technical-noise", default="10x-chromium-mini")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_reward_model(args.model)
    seed, k = (777, 1 << 31), args.n_int
    setting = {
        **SERGIO_HELDOUT,
        "prior": {"technical_noise": args.technical_noise},
        "n_int_range": (k, k),
        "target_prob_range": (args.target_prob, args.target_prob),
        "cells_per_experiment": args.cells_per_experiment,
        "graphs": ("erdos_renyi",),
        "degrees": (args.degree,),
    }
    cells = k * args.cells_per_experiment
    x, graph = SergioDatasetSampler(**setting).sample(seed, args.datasets)
    wild = {**setting, "p_obs_only": 1.0}
    x_wild, graph_wild = SergioDatasetSampler(**wild).sample(seed, args.datasets)
    assert torch.equal(graph, graph_wild) and torch.equal(x[:, :50], x_wild[:, :50])
    density = float(graph.sum() / (graph.shape[0] * 90))
    prior = args.degree / 9
    print(
        f"# SERGIO held-out: d=10, {args.datasets} datasets, true edge density {density:.3f}, "
        f"ER degree {args.degree:g}, {k} knockout experiments of {args.cells_per_experiment} "
        f"cells (targets w.p. {args.target_prob}), {args.technical_noise} noise"
    )
    print("| scorer | AUROC | AUPRC | E-SHD | E[correct entries] | F1 |")
    print("|---|---|---|---|---|---|")
    runs = [
        (f"{args.model}, 50 wild-type + {cells} knockout cells", model.edge_probs, x),
        (f"{args.model}, 50 wild-type cells", model.edge_probs, x[:, :50]),
        (f"{args.model}, {50 + cells} wild-type cells", model.edge_probs, x_wild),
        (f"constant prior ({prior:.3f})", ConstantRewardModel(prior).edge_probs, x),
        ("partial correlation of counts", PartialCorrelationRewardModel().edge_probs, x),
        ("correlation of log2-CPM counts", correlation_scores, x),
    ]
    for name, scorer, data in runs:
        with torch.inference_mode():
            metrics = all_metrics(scorer(data), graph)
        cells = [f"{float(metrics[k].nanmean()):.3f}" for k in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
