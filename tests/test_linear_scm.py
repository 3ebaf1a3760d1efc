import math

import numpy as np
import pytest
import torch

from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import LinearSCM, LinearSCMPrior, standard_noise


def chain_scm(intervention="do", noise="gauss"):
    """x0 -> x1 -> x2 with weights 2 and -0.5, x3 isolated; unit-ish noise."""
    w = torch.zeros(1, 4, 4)
    w[0, 0, 1], w[0, 1, 2] = 2.0, -0.5
    graph = (w != 0).float()
    std = torch.tensor([[1.0, 0.5, 0.7, 1.2]])
    return LinearSCM(graph, w, std, torch.zeros(1, 4), noise, intervention)


N = 40_000


def test_do_clamps_target_and_cuts_parents():
    scm = chain_scm("do")
    rng = BatchedRNG.from_seeds([0])
    targets = torch.tensor([[False, True, False, False]])
    values = torch.tensor([[0.0, 0.8, 0.0, 0.0]])
    x = scm.sample(rng, N, targets, values)[0]
    assert torch.all(x[:, 1] == 0.8)
    # Non-descendant x0 keeps its distribution; x2 = -0.5 * 0.8 + noise.
    se0, se2 = 1.0 / math.sqrt(N), 0.7 / math.sqrt(N)
    assert abs(x[:, 0].mean().item()) < 4 * se0
    assert abs(x[:, 2].mean().item() - (-0.4)) < 4 * se2
    assert abs(x[:, 2].std().item() - 0.7) < 4 * 0.7 / math.sqrt(2 * N)
    # The clamped node carries no information about its former parent.
    assert abs(np.corrcoef(x[:, 0], x[:, 2])[0, 1]) < 4 / math.sqrt(N)


def test_shift_moves_target_and_propagates_with_path_coefficients():
    scm = chain_scm("shift")
    rng = BatchedRNG.from_seeds([1])
    targets = torch.tensor([[True, False, False, False]])
    values = torch.tensor([[1.5, 0.0, 0.0, 0.0]])
    x = scm.sample(rng, N, targets, values)[0]
    expected = torch.tensor([1.5, 1.5 * 2.0, 1.5 * 2.0 * -0.5, 0.0])
    # Observational standard deviations of each variable bound the standard errors.
    sd = torch.tensor([1.0, math.sqrt(4 + 0.25), math.sqrt(0.25 * 4.25 + 0.49), 1.2])
    assert torch.all((x.mean(0) - expected).abs() < 4 * sd / math.sqrt(N))
    assert torch.all((x.std(0) - sd).abs() < 4 * sd / math.sqrt(2 * N))


def test_no_intervention_reproduces_observational_distribution():
    prior = LinearSCMPrior(6)
    scm = prior.sample(BatchedRNG.from_seeds([5]))
    eps = standard_noise(BatchedRNG.from_seeds([9]), "gauss", 1000, 6)
    none = torch.zeros(1, 6, dtype=torch.bool)
    assert torch.equal(
        scm.sample_from_noise(eps), scm.sample_from_noise(eps, none, torch.ones(1, 6))
    )
    # Empirical covariance matches (I - W)^-T D (I - W)^-1.
    x = scm.sample(BatchedRNG.from_seeds([2]), N).double()[0]
    a = torch.linalg.inv(torch.eye(6, dtype=torch.float64) - scm.weights[0].double())
    cov = a.T @ torch.diag(scm.noise_std[0].double() ** 2) @ a
    emp = torch.cov(x.T)
    tol = 5 * torch.sqrt((cov.diag()[:, None] * cov.diag()[None, :] + cov**2) / N)
    assert torch.all((emp - cov).abs() < tol)


@pytest.mark.parametrize("family", ["gauss", "laplace", "gumbel"])
def test_noise_families_are_standardised(family):
    z = standard_noise(BatchedRNG.from_seeds([0]), family, N, 3).double()
    assert abs(z.mean().item()) < 4 / math.sqrt(3 * N)
    # Var of the sample variance: (kurtosis - 1) / n; kurtosis <= 6 for these families.
    assert abs(z.var().item() - 1.0) < 4 * math.sqrt(5.4 / (3 * N))


def test_prior_follows_caasl_settings():
    prior = LinearSCMPrior(10, coeff_mean=0.0)
    scm = prior.sample(BatchedRNG.from_seeds(range(300)))
    assert torch.all((scm.weights != 0) <= (scm.graph > 0))
    # sigma^2 ~ InvGamma(10, 1): mean 1/9.
    var = scm.noise_std**2
    sd_mean = math.sqrt(1 / (81 * 8)) / math.sqrt(var.numel())
    assert abs(var.mean().item() - 1 / 9) < 4 * sd_mean
    # W_ij ~ N(0, 1/indeg(j)): W^2 * indeg has mean 1 on edges.
    indeg = scm.graph.sum(1, keepdim=True).expand_as(scm.weights)
    scaled = (scm.weights**2 * indeg)[scm.graph > 0]
    assert abs(scaled.mean().item() - 1.0) < 4 * math.sqrt(2 / scaled.numel())
    assert torch.all(scm.bias == 0)


def test_coeff_mean_shifts_coefficient_magnitude():
    scm = LinearSCMPrior(10, coeff_mean=2.0).sample(BatchedRNG.from_seeds(range(100)))
    w = scm.weights[scm.graph > 0]
    assert w.abs().mean() > 1.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"graph": "ring"}, "graph prior"),
        ({"noise": "cauchy"}, "noise"),
        ({"intervention": "knockout"}, "intervention"),
    ],
)
def test_prior_rejects_unknown_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearSCMPrior(5, **kwargs)
