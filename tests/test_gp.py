"""The GP posterior scorer ``exact-gp``: GP marginal-likelihood local scores + the order DP."""

import math

import pytest
import torch
from scipy.stats import spearmanr

from caasl_envs.reward import ExactLinearGaussianPosterior, load_reward_model
from caasl_envs.reward.bge import parent_sets
from caasl_envs.reward.gp import GPPosterior, _cholesky_with_jitter, gp_local_scores
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import LinearSCMPrior, SergioPrior
from caasl_envs.scm.rff import RFFSCMPrior


def history(scm, rng, n_obs, n_int, value=1.0):
    """``n_obs`` observational rows, then ``n_int`` single-node interventions cycling over nodes."""
    b, d = scm.graph.shape[0], scm.d
    rows, flags = [scm.sample(rng, n_obs)], [torch.zeros(b, n_obs, d)]
    for i in range(n_int):
        t = torch.zeros(b, d, dtype=torch.bool)
        t[:, i % d] = True
        rows.append(scm.sample(rng, 1, t, torch.full((b, d), value)))
        flags.append(t.float().unsqueeze(1))
    return torch.stack([torch.cat(rows, 1), torch.cat(flags, 1)], -1)


def correct_entries(probs, graph):
    d = graph.shape[-1]
    return (probs * graph + (1 - probs) * (1 - graph)).sum((1, 2)) - d


def test_concentrates_on_the_true_graph_as_data_grow():
    prior = RFFSCMPrior(d=4, graph_degree=1.0)
    rng = BatchedRNG.from_seeds(range(6))
    scm = prior.sample(rng)
    x = history(scm, rng, 100, 100)
    model = load_reward_model("exact-gp").for_prior(prior)
    small, large = (correct_entries(model.edge_probs(x[:, :n]), scm.graph) for n in (12, 200))
    assert large.mean() > small.mean() + 0.5
    assert large.mean() > 11.0  # of 12 off-diagonal entries


def test_single_variable_score_is_the_gp_marginal_likelihood():
    # Root-only parent sets (k = 0): K = (c^2 + v_b) 11^T + s^2 I on the rows that are kept.
    values = torch.tensor([[[0.5, 1.0], [1.5, -2.0], [0.2, 0.3]]], dtype=torch.float64)
    rows = torch.tensor([[[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    hypers = torch.tensor([[8.0, 2.0, 0.5]], dtype=torch.float64)
    out = gp_local_scores(values, rows, parent_sets(2, 0), hypers, mean_var=3.0)
    for j, keep in ((0, [0, 1, 2]), (1, [0, 2])):
        y = values[0, keep, j]
        cov = 7.0 * torch.ones(len(keep), len(keep), dtype=torch.float64) + 0.25 * torch.eye(
            len(keep)
        )
        expected = torch.distributions.MultivariateNormal(torch.zeros_like(y), cov).log_prob(y)
        torch.testing.assert_close(out[0, j, 0], expected)


def test_on_linear_data_it_ranks_designs_like_the_exact_linear_posterior():
    d, b = 4, 16
    prior = LinearSCMPrior(d=d, graph_degree=1.0)
    rng = BatchedRNG.from_seeds(range(b))
    scm = prior.sample(rng)
    obs = history(scm, rng, 10, 0)
    # A near-linear GP on the linear environments' scale (slope variance (c / l)^2 = 1).
    gp = GPPosterior(
        graph_degree=1.0,
        length_scale=(10, 10),
        output_scale=(10, 10),
        noise_std=(0.2, 0.5),
        bias_range=(-0.1, 0.1),
    )
    exact = ExactLinearGaussianPosterior(local_score="linear-scm", graph_degree=1.0)
    scores = {"gp": [], "exact": []}
    for design in [None, *range(d)]:
        t = torch.zeros(b, d, dtype=torch.bool)
        if design is not None:
            t[:, design] = True
        x = scm.sample(rng, 20, t, torch.full((b, d), 2.0))
        h = torch.cat([obs, torch.stack([x, t.float().unsqueeze(1).expand_as(x)], -1)], 1)
        for name, model in (("gp", gp), ("exact", exact)):
            scores[name].append(correct_entries(model.edge_probs(h), scm.graph))
    g, e = (torch.stack(scores[k], 1) for k in ("gp", "exact"))  # (B, designs)
    assert g.mean(0).argmin() == 0 and e.mean(0).argmin() == 0  # observational is worst for both
    assert torch.corrcoef(torch.stack([g.flatten(), e.flatten()]))[0, 1] > 0.75
    per_env = [spearmanr(g[i], e[i]).statistic for i in range(b)]
    assert torch.tensor(per_env).nanmean() > 0.4


def test_grid_and_centre_differ_and_both_are_finite():
    prior = RFFSCMPrior(d=3, graph_degree=1.0, mechanism="heteroscedastic", noise="laplace")
    rng = BatchedRNG.from_seeds([4, 5])
    scm = prior.sample(rng)
    x = history(scm, rng, 20, 9)
    centre = load_reward_model("exact-gp").for_prior(prior)
    grid = load_reward_model("exact-gp-grid").for_prior(prior)
    assert grid.hypers().shape == (8, 3) and centre.hypers().shape == (1, 3)
    lo, hi = centre.noise_std
    assert math.isclose(lo, math.sqrt(2 * math.log1p(math.exp(-2.0))))  # Laplace x heteroscedastic
    p, q = centre.edge_probs(x), grid.edge_probs(x)
    assert torch.isfinite(p).all() and torch.isfinite(q).all() and not torch.equal(p, q)


def test_cholesky_failure_is_retried_with_jitter_then_reported():
    singular = torch.ones(3, 2, 2, dtype=torch.float64)  # PSD, rank 1: needs jitter
    factor = _cholesky_with_jitter(singular, "variable 0")
    assert torch.isfinite(factor).all()
    indefinite = torch.tensor([[[1.0, 2.0], [2.0, 1.0]]], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="variable 3.*not positive definite"):
        _cholesky_with_jitter(indefinite, "variable 3")


def test_refusals_name_the_argument():
    model = GPPosterior()
    with pytest.raises(ValueError, match="d <= 10"):
        model.edge_probs(torch.stack([torch.randn(1, 5, 11), torch.zeros(1, 5, 11)], -1))
    counts = torch.stack([torch.randint(0, 9, (1, 6, 3)).float(), torch.zeros(1, 6, 3)], -1)
    with pytest.raises(ValueError, match="count data"):
        model.edge_probs(counts)
    with pytest.raises(ValueError, match="counts"):
        model.for_prior(SergioPrior(d=4))
    for kwargs, match in (
        ({"hyper": "mcmc"}, "hyper"),
        ({"length_scale": (0.0, 1.0)}, "length_scale"),
        ({"noise_std": (2.0, 1.0)}, "noise_std"),
        ({"max_d": 20}, "max_d"),
    ):
        with pytest.raises(ValueError, match=match):
            GPPosterior(**kwargs)
