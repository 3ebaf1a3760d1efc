"""The noise families and the random weight signs of the linear SCM prior, by distribution.

Mean and variance cannot tell the standardised Gaussian, Laplace and Gumbel apart; their CDFs
can. The threshold is the Dvoretzky-Kiefer-Wolfowitz bound (Massart's constant): for ``n``
i.i.d. draws, ``P(sup |F_n - F| > eps) <= 2 exp(-2 n eps^2)``; at ``alpha = 1e-6`` and
``n = 120,000``, ``eps = 0.0078``, while the families' CDFs differ by at least 0.062.
"""

import math

import numpy as np
import pytest
import torch

from caasl_envs import CausalDesignEnv
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import LinearSCMPrior, standard_noise

EULER_GAMMA = 0.5772156649015329
ALPHA = 1e-6


def gauss_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def laplace_cdf(x: np.ndarray) -> np.ndarray:
    """Laplace with variance 1 (scale ``1/sqrt(2)``)."""
    scale = 1.0 / math.sqrt(2.0)
    return np.where(x < 0, 0.5 * np.exp(x / scale), 1.0 - 0.5 * np.exp(-x / scale))


def gumbel_cdf(x: np.ndarray) -> np.ndarray:
    """Standard (max-)Gumbel shifted to mean 0 and scaled to variance 1."""
    return np.exp(-np.exp(-(x * math.pi / math.sqrt(6.0) + EULER_GAMMA)))


CDFS = {"gauss": gauss_cdf, "laplace": laplace_cdf, "gumbel": gumbel_cdf}


def ks_distance(samples: np.ndarray, cdf) -> float:
    """``sup_x |F_n(x) - F(x)|`` of the empirical CDF of ``samples`` (1-D)."""
    x = np.sort(samples)
    f = cdf(x)
    n = len(x)
    return float(max((np.arange(1, n + 1) / n - f).max(), (f - np.arange(n) / n).max()))


def dkw_threshold(n: int, alpha: float = ALPHA) -> float:
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def assert_family(samples: np.ndarray, family: str) -> None:
    """``samples`` follow ``family`` and are far from every other family."""
    eps = dkw_threshold(len(samples))
    for name, cdf in CDFS.items():
        distance = ks_distance(samples, cdf)
        if name == family:
            assert distance < eps, (name, distance, eps)
        else:
            assert distance > 4 * eps, (name, distance, eps)


@pytest.mark.parametrize("family", sorted(CDFS))
def test_standard_noise_has_the_family_distribution(family):
    z = standard_noise(BatchedRNG.from_seeds([0, 1]), family, 20_000, 3)
    assert_family(z.double().numpy().ravel(), family)


@pytest.mark.parametrize("family", sorted(CDFS))
def test_env_noise_option_reaches_the_root_nodes(family):
    """A root node is ``sigma_j * eps_j``: standardised, its samples follow the family."""
    env = CausalDesignEnv(
        d=6, n0=20_000, budget=1, noise=family, graph_degree=1.0, reward_model="constant-prior"
    )
    pooled = []
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        roots = env.graph.sum(axis=0) == 0
        sigma = env.core.system.noise_std[0].numpy()
        pooled.append((obs["history"][:, roots, 0] / sigma[roots]).ravel())
    assert_family(np.concatenate(pooled).astype(np.float64), family)


def edge_weights(mu: float, n_graphs: int = 400, d: int = 10):
    scm = LinearSCMPrior(d, coeff_mean=mu).sample(BatchedRNG.from_seeds(range(n_graphs)))
    edges = scm.graph > 0
    indeg = scm.graph.sum(1, keepdim=True).expand_as(scm.weights)
    return scm.weights[edges].double(), indeg[edges].double(), edges


def test_weight_signs_are_fair_coins_independent_across_edges():
    """``W_ij ~ N(s_ij mu, 1/indeg(j))`` with ``s_ij = +-1``: at ``mu = 6`` the sign of the
    weight is the sign ``s_ij`` (up to a ``2e-9`` chance per edge)."""
    mu = 6.0
    w, indeg, edges = edge_weights(mu)
    signs = torch.sign(w)
    n = len(signs)
    positive = (signs > 0).double().mean().item()
    assert abs(positive - 0.5) < 5 * math.sqrt(0.25 / n), positive
    # the magnitude is mu plus N(0, 1/indeg): standardised, mean 0 and variance 1
    z = (w.abs() - mu) * indeg.sqrt()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert abs(z.var().item() - 1.0) < 5 * math.sqrt(2.0 / n)
    # one coin per edge: consecutive edges of a graph agree half of the time
    agree, pairs = 0, 0
    sign_matrix = torch.zeros(edges.shape, dtype=torch.float64)
    sign_matrix[edges] = signs
    for graph_signs in sign_matrix.flatten(1):
        s = graph_signs[graph_signs != 0]
        agree += int((s[1::2][: len(s) // 2] == s[0::2][: len(s) // 2]).sum())
        pairs += len(s) // 2
    assert abs(agree / pairs - 0.5) < 5 * math.sqrt(0.25 / pairs), agree / pairs


def test_weights_without_coefficient_mean_are_centred_gaussians():
    w, indeg, _ = edge_weights(0.0)
    z = (w * indeg.sqrt()).numpy()
    assert ks_distance(z, gauss_cdf) < dkw_threshold(len(z))
