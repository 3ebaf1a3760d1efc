import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from caasl_envs import metrics


def random_case(seed, b=8, d=6, ties=False):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(b, d, d, generator=g)
    if ties:
        probs = (probs * 4).round() / 4
    upper = torch.triu(torch.rand(b, d, d, generator=g) < 0.4, diagonal=1)
    perm = torch.randperm(d, generator=g)
    graph = upper[:, perm][:, :, perm].float()  # DAGs, as the environments produce
    return probs, graph


def offdiag(t):
    d = t.shape[-1]
    return t[~np.eye(d, dtype=bool)]


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False), (3, True)])
def test_ranking_metrics_match_sklearn(seed, ties):
    probs, graph = random_case(seed, ties=ties)
    auroc, auprc = metrics.auroc(probs, graph), metrics.auprc(probs, graph)
    f1 = metrics.edge_f1(probs, graph)
    checked = 0
    for b in range(probs.shape[0]):
        y, s = offdiag(graph[b].numpy()), offdiag(probs[b].numpy())
        assert f1[b] == pytest.approx(f1_score(y, s > 0.5, zero_division=0), abs=1e-12)
        if 0 < y.sum() < len(y):
            assert auroc[b] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
            assert auprc[b] == pytest.approx(average_precision_score(y, s), abs=1e-12)
            checked += 1
    assert checked > 0


def test_perfect_posterior_scores_perfectly():
    _, graph = random_case(4)
    m = metrics.all_metrics(graph.clone(), graph)
    d = 6
    assert torch.all(m["expected_correct_entries"] == d * (d - 1))
    assert torch.all(m["eshd"] == 0) and torch.all(m["shd"] == 0)


def brute_force_eshd(p, g):
    """Enumerate all graphs drawn edge by edge from P and average the SHD."""
    d = p.shape[0]
    cells = [(i, j) for i in range(d) for j in range(d) if i != j]
    total = 0.0
    for bits in itertools.product([0, 1], repeat=len(cells)):
        w, sample = 1.0, np.zeros((d, d))
        for (i, j), bit in zip(cells, bits):
            w *= p[i, j] if bit else 1 - p[i, j]
            sample[i, j] = bit
        total += w * metrics.shd(torch.tensor(sample)[None], torch.tensor(g)[None]).item()
    return total


def test_eshd_is_the_expected_shd_of_the_independent_edge_posterior():
    probs, graph = random_case(5, b=3, d=3)
    probs = probs.double()
    e = metrics.eshd(probs, graph)
    for b in range(3):
        p = probs[b].numpy().copy()
        np.fill_diagonal(p, 0)
        assert e[b].item() == pytest.approx(brute_force_eshd(p, graph[b].numpy()), abs=1e-9)


def test_shd_counts_a_reversal_once():
    g = torch.zeros(1, 3, 3)
    g[0, 0, 1] = 1
    pred = torch.zeros(1, 3, 3)
    pred[0, 1, 0] = 1
    assert metrics.shd(pred, g).item() == 1
    pred[0, 1, 2] = 1
    assert metrics.shd(pred, g).item() == 2


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.auroc(torch.rand(2, 3, 4), torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="graph shape"):
        metrics.eshd(torch.rand(2, 3, 3), torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        metrics.expected_correct_entries(torch.full((1, 3, 3), float("nan")), torch.zeros(1, 3, 3))


def test_mean_bce_matches_sklearn_log_loss():
    from sklearn.metrics import log_loss

    probs, graph = random_case(6)
    bce = metrics.mean_bce(probs.double(), graph)
    for b in range(probs.shape[0]):
        y, s = offdiag(graph[b].numpy()), offdiag(probs[b].double().numpy())
        assert bce[b].item() == pytest.approx(log_loss(y, s, labels=[0, 1]), abs=1e-9)
