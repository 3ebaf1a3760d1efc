"""Structure-learning metrics, batched over environments.

Inputs: edge probabilities ``probs (B, d, d)`` and true graphs ``graph (B, d, d)`` (0/1, i -> j
at ``[i, j]``). The diagonal is excluded everywhere (``d (d - 1)`` candidate edges). Every
function returns a ``(B,)`` tensor. Ranking metrics are ``NaN`` for a graph with no edges or a
complete one (undefined, as in scikit-learn, which raises instead).
"""

from __future__ import annotations

import torch

__all__ = [
    "all_metrics",
    "auprc",
    "auroc",
    "edge_f1",
    "eshd",
    "expected_correct_entries",
    "mean_bce",
    "precision_recall_f1",
    "shd",
]


def _check(probs: torch.Tensor, graph: torch.Tensor) -> None:
    if probs.ndim != 3 or probs.shape[-1] != probs.shape[-2]:
        raise ValueError(f"probs must have shape (B, d, d), got {tuple(probs.shape)}")
    if tuple(graph.shape) != tuple(probs.shape):
        raise ValueError(f"graph shape {tuple(graph.shape)} != probs shape {tuple(probs.shape)}")
    if torch.isnan(probs).any():
        raise ValueError("probs contains NaN")
    if ((probs < 0) | (probs > 1)).any():
        raise ValueError(
            "probs must be edge probabilities, got values outside [0, 1]: "
            f"min {probs.min().item():.4g}, max {probs.max().item():.4g}"
        )


def _offdiag(t: torch.Tensor) -> torch.Tensor:
    """``(B, d, d)`` -> ``(B, d (d - 1))`` off-diagonal entries in row-major order."""
    d = t.shape[-1]
    keep = ~torch.eye(d, dtype=torch.bool, device=t.device)
    return t[:, keep]


def expected_correct_entries(probs: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """``sum_{i != j} G_ij P_ij + (1 - G_ij)(1 - P_ij)``: expected number of correct entries."""
    _check(probs, graph)
    p, g = _offdiag(probs.double()), _offdiag(graph.double())
    return (g * p + (1 - g) * (1 - p)).sum(-1)


def mean_bce(probs: torch.Tensor, graph: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Mean binary cross-entropy of ``probs`` (clipped to ``[eps, 1 - eps]``) against the graph."""
    _check(probs, graph)
    p = _offdiag(probs.double()).clamp(eps, 1 - eps)
    g = _offdiag(graph.double())
    return -(g * p.log() + (1 - g) * (1 - p).log()).mean(-1)


def eshd(probs: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """Expected SHD under the independent-edge posterior ``P``.

    For each unordered pair {i, j} the true state is one of none / i->j / j->i; the sampled
    pair state differs from it with probability ``1 - P(true state)`` where edges are drawn
    independently (so both directions at once also counts as one error, like a reversal).
    """
    _check(probs, graph)
    p, g = probs.double(), graph.double()
    pt, gt = p.transpose(-1, -2), g.transpose(-1, -2)
    p_none = (1 - p) * (1 - pt)
    p_fwd = p * (1 - pt)
    correct = torch.where(g > 0, p_fwd, torch.where(gt > 0, p_fwd.transpose(-1, -2), p_none))
    upper = torch.triu(torch.ones_like(p[0], dtype=torch.bool), diagonal=1)
    return (1 - correct)[:, upper].sum(-1)


def shd(probs: torch.Tensor, graph: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """SHD of the graph thresholded at ``threshold``; a reversed edge counts once."""
    _check(probs, graph)
    d = probs.shape[-1]
    eye = torch.eye(d, dtype=torch.bool, device=probs.device)
    pred = (probs > threshold) & ~eye
    true = (graph > 0) & ~eye
    # An unordered pair is wrong if its (i->j, j->i) states differ.
    wrong = (pred != true) | (pred.transpose(-1, -2) != true.transpose(-1, -2))
    upper = torch.triu(torch.ones(d, d, dtype=torch.bool, device=probs.device), diagonal=1)
    return wrong[:, upper].sum(-1).double()


def auroc(probs: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve (ties count one half), via average ranks."""
    _check(probs, graph)
    s, y = _offdiag(probs.double()), _offdiag(graph.double()) > 0
    sorted_s, _ = s.sort(-1)
    lo = torch.searchsorted(sorted_s, s, right=False).double()
    hi = torch.searchsorted(sorted_s, s, right=True).double()
    ranks = (lo + hi + 1) / 2  # 1-based average rank of each score
    n_pos = y.sum(-1).double()
    n_neg = (~y).sum(-1).double()
    u = (ranks * y).sum(-1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def auprc(probs: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """Average precision (scikit-learn's definition: sum over thresholds of ΔRecall · Precision)."""
    _check(probs, graph)
    s, y = _offdiag(probs.double()), _offdiag(graph.double())
    s_sorted, order = s.sort(-1, descending=True)
    y_sorted = y.gather(-1, order)
    tp = y_sorted.cumsum(-1)
    k = torch.arange(1, s.shape[-1] + 1, device=s.device, dtype=torch.float64)
    precision = tp / k
    # Only the last position of each group of tied scores is a threshold.
    last_of_tie = torch.ones_like(s_sorted, dtype=torch.bool)
    last_of_tie[:, :-1] = s_sorted[:, :-1] != s_sorted[:, 1:]
    tp_at = torch.where(last_of_tie, tp, torch.zeros_like(tp))
    # Positives gained since the previous threshold: tp at this threshold minus the last one.
    prev = torch.cummax(torch.where(last_of_tie, tp, torch.full_like(tp, -1.0)), -1).values
    prev = torch.cat([torch.zeros_like(prev[:, :1]), prev[:, :-1].clamp(min=0.0)], -1)
    gained = torch.where(last_of_tie, tp_at - prev, torch.zeros_like(tp))
    n_pos = y.sum(-1)
    return (gained * precision).sum(-1) / n_pos


def precision_recall_f1(
    probs: torch.Tensor, graph: torch.Tensor, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Directed-edge precision, recall and F1 of the thresholded graph (0 where undefined)."""
    _check(probs, graph)
    pred, true = _offdiag(probs) > threshold, _offdiag(graph) > 0
    tp = (pred & true).sum(-1).double()
    n_pred, n_true = pred.sum(-1).double(), true.sum(-1).double()
    precision = torch.where(n_pred > 0, tp / n_pred.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(n_true > 0, tp / n_true.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(
        denom > 0, 2 * precision * recall / denom.clamp(min=1e-300), torch.zeros_like(tp)
    )
    return precision, recall, f1


def edge_f1(probs: torch.Tensor, graph: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Directed-edge F1 of the thresholded graph."""
    return precision_recall_f1(probs, graph, threshold)[2]


def all_metrics(probs: torch.Tensor, graph: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of this module, each ``(B,)`` float64."""
    precision, recall, f1 = precision_recall_f1(probs, graph)
    return {
        "expected_correct_entries": expected_correct_entries(probs, graph),
        "eshd": eshd(probs, graph),
        "shd": shd(probs, graph),
        "auroc": auroc(probs, graph),
        "auprc": auprc(probs, graph),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
