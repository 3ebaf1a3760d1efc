"""Shift interventions on a node with parents, in the SCM and through ``LinearGaussianShift-v0``.

A shift adds its value to the target's noise: the target keeps listening to its parents, its
parents do not move, and every node moves by the value times the total effect of the target
on it, ``v [(I - W)^-1]_{t, :}``. A ``do`` would instead clamp the target and cut its parents.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils import seeding

from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import LinearSCM, LinearSCMPrior, standard_noise

D = 5


def collider_scm(intervention: str) -> LinearSCM:
    """x0 -> x2 <- x1, x2 -> x3 -> x4, x0 -> x4; node 2 has two parents and descendants."""
    w = torch.zeros(1, D, D, dtype=torch.float64)
    w[0, 0, 2], w[0, 1, 2], w[0, 2, 3], w[0, 3, 4], w[0, 0, 4] = 1.5, -0.8, 2.0, -0.5, 0.7
    std = torch.tensor([[1.0, 0.6, 0.5, 0.8, 0.3]], dtype=torch.float64)
    bias = torch.tensor([[0.1, -0.2, 0.3, 0.0, 0.5]], dtype=torch.float64)
    return LinearSCM((w != 0).double(), w, std, bias, "gauss", intervention)


def total_effects(weights: torch.Tensor) -> torch.Tensor:
    """``(I - W)^-1`` of one ``(d, d)`` weight matrix: row t is t's total effect on each node."""
    return torch.linalg.inv(torch.eye(weights.shape[-1], dtype=weights.dtype) - weights)


def test_shift_on_a_node_with_parents_adds_value_times_total_effect():
    scm = collider_scm("shift")
    eps = standard_noise(BatchedRNG.from_seeds([0]), "gauss", 500, D).double()
    target = torch.zeros(1, D, dtype=torch.bool)
    target[0, 2] = True
    values = torch.full((1, D), -1.7, dtype=torch.float64)  # ignored off the target
    observational = scm.sample_from_noise(eps)[0]
    shifted = scm.sample_from_noise(eps, target, values)[0]
    effect = total_effects(scm.weights[0])[2]  # (d,): 0 on nodes 0 and 1, 1 on node 2
    torch.testing.assert_close(shifted - observational, (-1.7 * effect).expand(500, D))
    assert torch.equal(shifted[:, :2], observational[:, :2])  # the parents do not move
    # the target still follows its mechanism (parents, bias, noise), plus the shift
    mechanism = 1.5 * shifted[:, 0] - 0.8 * shifted[:, 1] + 0.3 + 0.5 * eps[0, :, 2]
    torch.testing.assert_close(shifted[:, 2], mechanism - 1.7)
    # and so differs from a do intervention with the same value
    clamped = collider_scm("do").sample_from_noise(eps, target, values)[0]
    assert torch.all(clamped[:, 2] == -1.7) and not torch.allclose(clamped, shifted)


def test_shift_keeps_the_targets_dependence_on_its_parents():
    """By sampling: Cov(x0, x2) = 1.5 Var(x0) under a shift of x2, 0 under do(x2)."""
    n = 40_000
    target = torch.zeros(1, D, dtype=torch.bool)
    target[0, 2] = True
    values = torch.full((1, D), 2.0, dtype=torch.float64)
    covariances = {}
    for intervention in ("shift", "do"):
        x = collider_scm(intervention).sample(BatchedRNG.from_seeds([4]), n, target, values)[0]
        covariances[intervention] = torch.cov(x[:, [0, 2]].T.double())[0, 1].item()
    # Var of a sample covariance <= (Var x0 Var x2 + Cov^2) / n; Var x2 = 2.25 + 0.36 + 0.25
    tolerance = 5 * np.sqrt((1.0 * 2.86 + 1.5**2) / n)
    assert covariances["shift"] == pytest.approx(1.5, abs=tolerance)
    assert covariances["do"] == pytest.approx(0.0, abs=tolerance)


def test_registered_shift_env_shifts_a_node_with_parents():
    kwargs = dict(d=D, n0=4, budget=2, reward_model="constant-prior", value_scale=2.0)
    env = gym.make("caasl/LinearGaussianShift-v0", **kwargs).unwrapped
    seed = 3
    env.reset(seed=seed)
    graph = env.graph
    node = int(np.flatnonzero(graph.sum(axis=0) > 0)[0])  # a node with parents
    action = np.full(2 * D, -1.0, dtype=np.float32)
    action[node], action[D + node] = 1.0, 0.75
    obs, *_ = env.step(action)
    row = obs["history"][kwargs["n0"]]
    # the same draws by hand: prior, n0 observational rows, then this experiment's noise
    rng = BatchedRNG([seeding.np_random(seed)[0]])
    system = LinearSCMPrior(D, intervention="shift").sample(rng)
    assert np.array_equal(system.graph[0].numpy(), graph)
    system.sample(rng, kwargs["n0"])
    eps = standard_noise(rng, "gauss", 1, D)[0, 0].double()
    w, sigma = system.weights[0].double(), system.noise_std[0].double()
    shift = torch.zeros(D, dtype=torch.float64)
    shift[node] = 0.75 * 2.0
    expected = (sigma * eps + shift) @ total_effects(w)  # x = x W + e  <=>  x = e (I - W)^-1
    np.testing.assert_allclose(row[:, 0], expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(row[:, 1], np.eye(D)[node])
    without = (sigma * eps) @ total_effects(w)
    assert abs(row[node, 0] - (without[node].item() + 1.5)) < 1e-5  # not clamped to 1.5
