"""Exactness of the BGe + order-DP edge posterior against independent brute-force references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import multigammaln
from scipy.stats import multivariate_t

from caasl_envs import available_reward_models, load_reward_model
from caasl_envs.reward.bge import bge_local_scores, parent_sets
from caasl_envs.reward.exact import ExactLinearGaussianPosterior
from caasl_envs.reward.scm_score import linear_scm_local_scores
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm.linear import LinearSCMPrior

ALPHA_MU = 1.0


def _history(d: int, n: int, seed: int, batch: int = 1, n_intervened: int = 0) -> torch.Tensor:
    """``(B, n, d, 2)`` float64 linear-SCM data; the last ``n_intervened`` rows are single-target
    do-interventions on random nodes."""
    rng = BatchedRNG.from_seeds([seed + i for i in range(batch)])
    scm = LinearSCMPrior(d, graph_degree=1.5).sample(rng)
    obs = scm.sample(rng, n - n_intervened)
    parts, flags = [obs], [torch.zeros_like(obs)]
    gen = np.random.default_rng(seed)
    for _ in range(n_intervened):
        targets = torch.zeros(batch, d, dtype=torch.bool)
        targets[torch.arange(batch), torch.as_tensor(gen.integers(0, d, batch))] = True
        values = torch.as_tensor(gen.uniform(-1, 1, (batch, d)), dtype=torch.float32)
        parts.append(scm.sample(rng, 1, targets, values))
        flags.append(targets.float().unsqueeze(1))
    return torch.stack([torch.cat(parts, 1), torch.cat(flags, 1)], -1).double()


# ---- independent references (numpy / scipy) --------------------------------------------------


def _log_marginal_formula(data: np.ndarray, d: int, alpha_w: float) -> float:
    """``log p(D_Y)`` of the BGe normal-Wishart model, straight from Kuipers et al. (2014)."""
    n, p = data.shape
    if p == 0:
        return 0.0
    t = ALPHA_MU * (alpha_w - d - 1) / (ALPHA_MU + 1)
    xbar = data.mean(0) if n else np.zeros(p)
    centred = data - xbar
    r = t * np.eye(p) + centred.T @ centred + n * ALPHA_MU / (n + ALPHA_MU) * np.outer(xbar, xbar)
    nu = alpha_w - d + p
    return (
        -n * p / 2 * math.log(math.pi)
        + p / 2 * math.log(ALPHA_MU / (ALPHA_MU + n))
        + multigammaln((n + nu) / 2, p)
        - multigammaln(nu / 2, p)
        + nu / 2 * p * math.log(t)
        - (n + nu) / 2 * np.linalg.slogdet(r)[1]
    )


def _log_marginal_chain_rule(data: np.ndarray, d: int, alpha_w: float) -> float:
    """The same marginal as a product of multivariate-t posterior predictives, row by row."""
    n, p = data.shape
    kappa, nu = ALPHA_MU, alpha_w - d + p
    mu = np.zeros(p)
    psi = ALPHA_MU * (alpha_w - d - 1) / (ALPHA_MU + 1) * np.eye(p)
    total = 0.0
    for row in data:
        df = nu - p + 1
        shape = psi * (kappa + 1) / (kappa * df)
        total += multivariate_t(loc=mu, shape=shape, df=df).logpdf(row)
        psi = psi + kappa / (kappa + 1) * np.outer(row - mu, row - mu)
        mu = (kappa * mu + row) / (kappa + 1)
        kappa, nu = kappa + 1, nu + 1
    return total


def _reference_local_score(x: np.ndarray, j: int, parents: tuple[int, ...], exclude: bool) -> float:
    """``log p(D_j | D_Pa)`` on the rows where ``j`` was not intervened on (all rows if not exclude)."""
    d = x.shape[1]
    rows = x[:, j, 1] == 0 if exclude else np.ones(len(x), dtype=bool)
    values = x[rows, :, 0]
    alpha_w = d + ALPHA_MU + 1
    family = list(parents) + [j]
    return _log_marginal_formula(values[:, family], d, alpha_w) - _log_marginal_formula(
        values[:, list(parents)], d, alpha_w
    )


def _reference_scm_score(x: np.ndarray, j: int, parents: tuple[int, ...], exclude: bool) -> float:
    """``log p(D_j | D_Pa)`` under ``w ~ N(0, I/l)``, ``1/sigma^2 ~ Gamma(10, 1)``: the Gaussian
    density of the rows, integrated over the noise precision by adaptive quadrature."""
    rows = x[:, j, 1] == 0 if exclude else np.ones(len(x), dtype=bool)
    y, design = x[rows, j, 0], x[rows][:, list(parents), 0]
    if len(y) == 0:
        return 0.0
    gram = design @ design.T / max(len(parents), 1)

    def log_integrand(u: float) -> float:  # over u = log(tau), with the Jacobian tau
        cov = np.eye(len(y)) / math.exp(u) + gram
        logdet = np.linalg.slogdet(cov)[1]
        normal = -0.5 * (len(y) * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(cov, y))
        log_gamma_pdf = 9.0 * u - math.exp(u) - math.lgamma(10.0)  # Gamma(10, rate 1) at tau
        return normal + log_gamma_pdf + u

    grid = np.linspace(-12.0, 8.0, 81)
    peak = max(grid, key=log_integrand)
    top = log_integrand(peak)
    value, _ = quad(
        lambda u: math.exp(log_integrand(u) - top),
        -12.0,
        8.0,
        points=[peak],
        limit=200,
        epsabs=0,
        epsrel=1e-13,
    )
    return top + math.log(value)


def _brute_force_edge_probs(
    x: np.ndarray, k: int, graph_degree: float | None, exclude: bool, score=_reference_local_score
) -> np.ndarray:
    """Sum over every (order, DAG consistent with it, in-degree <= k) pair, weights prod_j q * score."""
    d = x.shape[1]
    log_beta = np.full((d, 1 << d), -np.inf)
    for j in range(d):
        others = [u for u in range(d) if u != j]
        for size in range(k + 1):
            for pa in itertools.combinations(others, size):
                if graph_degree is None:
                    log_q = -math.log(math.comb(d - 1, size))
                else:
                    p = min(2 * graph_degree / (d - 1), 0.99)
                    log_q = size * math.log(p / (1 - p))
                log_beta[j, sum(1 << u for u in pa)] = log_q + score(x, j, pa, exclude)
    pairs = list(itertools.combinations(range(d), 2))
    choice = (np.arange(1 << len(pairs))[:, None] >> np.arange(len(pairs))) & 1  # (G, pairs)
    log_w, edges = [], []
    for order in itertools.permutations(range(d)):
        adj = np.zeros((len(choice), d, d))
        for e, (a, b) in enumerate(pairs):
            adj[:, order[a], order[b]] = choice[:, e]  # forward pairs of this order
        pa_bits = (adj * (1 << np.arange(d))[None, :, None]).sum(1).astype(int)  # (G, d)
        log_w.append(log_beta[np.arange(d), pa_bits].sum(1))
        edges.append(adj)
    log_w, edges = np.concatenate(log_w), np.concatenate(edges)
    w = np.exp(log_w - log_w.max())
    return (w[:, None, None] * edges).sum(0) / w.sum()


# ---- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 3])
def test_bge_marginal_formula_matches_multivariate_t_chain_rule(p):
    data = np.random.default_rng(p).normal(size=(7, p)) * [1.0, 2.0, 0.5][:p] + 0.3
    d = 4
    alpha_w = d + ALPHA_MU + 1
    assert _log_marginal_formula(data, d, alpha_w) == pytest.approx(
        _log_marginal_chain_rule(data, d, alpha_w), abs=1e-9
    )


@pytest.mark.parametrize("exclude", [True, False])
def test_bge_local_scores_match_reference(exclude):
    d, k = 4, 2
    x = _history(d, 20, seed=3, n_intervened=8)
    rows = (x[..., 1] == 0).double() if exclude else torch.ones_like(x[..., 0])
    sets = parent_sets(d, k)
    scores = bge_local_scores(x[..., 0], rows, sets, ALPHA_MU)
    xn = x[0].numpy()
    for j in range(d):
        for p in range(sets.index.shape[1]):
            pa = tuple(int(u) for u in sets.index[j, p, : sets.size[j, p]])
            ref = _reference_local_score(xn, j, pa, exclude)
            assert scores[0, j, p].item() == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize(
    ("d", "k", "graph_degree", "intervened_rows"),
    [
        (2, 1, 0.4, "exclude"),
        (3, 2, 1.0, "exclude"),
        (4, 3, 1.5, "exclude"),
        (4, 2, None, "keep"),
        (5, 2, 2.0, "exclude"),
    ],
)
def test_edge_marginals_match_brute_force_enumeration(d, k, graph_degree, intervened_rows):
    x = _history(d, 16, seed=10 + d, n_intervened=6)
    model = ExactLinearGaussianPosterior(
        k, graph_degree, standardize=False, intervened_rows=intervened_rows
    )
    probs, _ = model.posterior(x)
    ref = _brute_force_edge_probs(x[0].numpy(), k, graph_degree, intervened_rows == "exclude")
    np.testing.assert_allclose(probs[0].numpy(), ref, atol=1e-9, rtol=0)


def test_linear_scm_scores_match_quadrature_and_brute_force():
    d, k = 4, 2
    x = _history(d, 12, seed=7, n_intervened=4)
    rows = (x[..., 1] == 0).double()
    sets = parent_sets(d, k)
    scores = linear_scm_local_scores(x[..., 0], rows, sets)
    xn = x[0].numpy()
    reference = {}
    for j in range(d):
        for p in range(sets.index.shape[1]):
            pa = tuple(int(u) for u in sets.index[j, p, : sets.size[j, p]])
            reference[j, pa] = _reference_scm_score(xn, j, pa, True)
            assert scores[0, j, p].item() == pytest.approx(reference[j, pa], abs=1e-9)
    probs, _ = ExactLinearGaussianPosterior(k, 1.5, local_score="linear-scm").posterior(x)
    ref = _brute_force_edge_probs(xn, k, 1.5, True, score=lambda x, j, pa, ex: reference[j, pa])
    np.testing.assert_allclose(probs[0].numpy(), ref, atol=1e-9, rtol=0)


def test_relabelling_rows_padding_and_scaling_invariance():
    d = 6
    x = _history(d, 30, seed=5, batch=3, n_intervened=10)
    model = ExactLinearGaussianPosterior(max_in_degree=3)
    probs = model.edge_probs(x)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    relabelled = model.edge_probs(x[:, :, perm])
    torch.testing.assert_close(relabelled, probs[:, perm][:, :, perm], atol=1e-10, rtol=0)
    rows = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.edge_probs(x[:, rows]), probs, atol=1e-10, rtol=0)
    garbage = torch.randn(3, 7, d, 2, dtype=x.dtype).abs().round()
    padded = torch.cat([x, garbage], 1)
    mask = torch.arange(37).expand(3, -1) < 30
    torch.testing.assert_close(model.edge_probs(padded, mask), probs, atol=1e-10, rtol=0)
    scaled = x.clone()
    scaled[..., 0] = scaled[..., 0] * torch.linspace(0.1, 5.0, d) - 2.0
    torch.testing.assert_close(model.edge_probs(scaled), probs, atol=1e-9, rtol=0)
    torch.testing.assert_close(model.edge_probs(x[1:2]), probs[1:2], atol=1e-12, rtol=0)


def test_posterior_concentrates_on_the_true_graph_with_interventions():
    # x0 -> x1 -> x2 with strong weights; 400 observational rows plus do-rows on every node
    # orient every edge: without interventions the chain is Markov equivalent to its reversal.
    gen = np.random.default_rng(0)
    n = 400
    e = gen.normal(size=(n, 3))
    x = np.zeros((n, 3))
    flags = np.zeros((n, 3))
    for r in range(n):
        target = r % 4 - 1  # -1: observational
        x[r, 0] = gen.uniform(-2, 2) if target == 0 else e[r, 0]
        x[r, 1] = gen.uniform(-2, 2) if target == 1 else 0.9 * x[r, 0] + 0.5 * e[r, 1]
        x[r, 2] = gen.uniform(-2, 2) if target == 2 else -0.9 * x[r, 1] + 0.5 * e[r, 2]
        if target >= 0:
            flags[r, target] = 1
    hist = torch.as_tensor(np.stack([x, flags], -1)).unsqueeze(0)
    probs = ExactLinearGaussianPosterior(max_in_degree=2, graph_degree=0.5).edge_probs(hist)[0]
    assert probs[0, 1] > 0.999 and probs[1, 2] > 0.999
    assert probs[1, 0] < 1e-6 and probs[2, 1] < 1e-6 and probs[2, 0] < 1e-6
    # A superfluous edge is only penalised by the Occam factor of one extra coefficient,
    # ~ sqrt(2 pi / n_rows) ~ 0.15 here (BIC: exp(-log(n)/2) with n = 300 rows of x2).
    assert probs[0, 2] < 0.15
    observational = hist[:, flags.sum(1) == 0]
    obs_probs = ExactLinearGaussianPosterior(max_in_degree=2, graph_degree=0.5).edge_probs(
        observational
    )[0]
    assert 0.1 < obs_probs[0, 1] < 0.9  # direction not identified from observational data alone


@pytest.mark.parametrize(("d", "graph_degree"), [(5, 1.0), (6, 1.25)])
def test_without_data_the_posterior_is_the_erdos_renyi_prior(d, graph_degree):
    # Random order, then each forward pair an edge with probability p: p(i -> j) = p / 2.
    x = _history(d, 8, seed=2)
    no_rows = torch.zeros(1, 8, dtype=torch.bool)
    probs = ExactLinearGaussianPosterior(d - 1, graph_degree).edge_probs(x, no_rows)[0]
    p = 2 * graph_degree / (d - 1)
    expected = torch.full((d, d), p / 2, dtype=probs.dtype).fill_diagonal_(0.0)
    torch.testing.assert_close(probs, expected, atol=1e-12, rtol=0)


def test_zero_in_degree_and_reward_model_registry():
    x = _history(4, 10, seed=1).float()
    assert {"exact-linear-gaussian", "exact-linear-scm"} <= set(available_reward_models())
    assert load_reward_model("exact-linear-scm").local_score == "linear-scm"
    model = load_reward_model("exact-linear-gaussian", max_in_degree=0)
    assert model.expects_counts is False
    probs = model.edge_probs(x)
    assert probs.dtype == torch.float32 and probs.shape == (1, 4, 4)
    assert torch.all(probs == 0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="d <= 14"):
        ExactLinearGaussianPosterior().edge_probs(torch.zeros(1, 5, 15, 2))
    with pytest.raises(ValueError, match="max_in_degree"):
        ExactLinearGaussianPosterior(max_in_degree=-1)
    with pytest.raises(ValueError, match="in-degree bound"):
        parent_sets(4, 4)
    with pytest.raises(ValueError, match="local_score"):
        ExactLinearGaussianPosterior(local_score="bdeu")
    with pytest.raises(ValueError, match="raw scale"):
        ExactLinearGaussianPosterior(local_score="linear-scm", standardize=True)
    with pytest.raises(ValueError, match="intervened_rows"):
        ExactLinearGaussianPosterior(intervened_rows="model")
    with pytest.raises(ValueError, match="NaN"):
        ExactLinearGaussianPosterior().edge_probs(torch.full((1, 5, 3, 2), float("nan")))
