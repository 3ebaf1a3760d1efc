"""Order-MCMC posterior (caasl_envs.reward.mcmc): agreement with the exact order DP at small d,
seeded reproducibility, warm starts, graph samples for the planners, wiring and refusals."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from caasl_envs.reward import ExactLinearGaussianPosterior, load_reward_model
from caasl_envs.reward.mcmc import (
    OrderMCMCPosterior,
    graphs_given_orders,
    mcmc_graph_samples,
    predecessor_bits,
)
from caasl_envs.scm.sergio import SergioPrior
from caasl_envs.vector import CausalDesignVectorEnv

FAST = dict(chains=4, samples=100, burn_in=20, warm_burn_in=5)


def histories(d: int, n_envs: int = 3, experiments: int = 4, seed: int = 0) -> torch.Tensor:
    """``(B, n, d, 2)`` histories of the linear environment: its initial observations, then
    random multi-target experiments."""
    kwargs = {**gym.spec("caasl/LinearGaussian-v0").kwargs, "d": d}
    env = CausalDesignVectorEnv(n_envs, **kwargs, reward_model="constant-prior")
    env.reset(seed=[seed + i for i in range(n_envs)])
    rng = np.random.default_rng(seed)
    for _ in range(experiments):
        env.step(rng.uniform(-1.0, 1.0, (n_envs, env.core.action_dim)))
    return env.core.history[:, : env.core.n0 + experiments].clone()


@pytest.mark.parametrize(("d", "local_score"), [(5, "linear-scm"), (6, "bge")])
def test_edge_marginals_match_the_exact_dp(d, local_score):
    x = histories(d)
    exact, _ = ExactLinearGaussianPosterior(local_score=local_score).posterior(x)
    model = OrderMCMCPosterior(local_score=local_score, **FAST)
    probs = model.edge_marginals(x)
    ess = model.last_diagnostics["ess"].clamp(max=1e6).view(-1, 1, 1)
    # 4 standard errors of an estimate worth `ess` independent graph samples (per history)
    stderr = ((exact * (1 - exact)).clamp(min=0.01) / ess).sqrt()
    error = (probs - exact).abs()
    assert (error <= 4 * stderr + 0.005).all(), error.max()
    assert error.mean() <= stderr.mean(), (error.mean(), stderr.mean())
    assert torch.isfinite(model.last_diagnostics["chain_agreement"]).all()


def test_seeded_runs_are_bit_identical_and_seeds_differ():
    x = histories(4)
    fast = {**FAST, "samples": 50}
    first = OrderMCMCPosterior(seed=3, **fast).edge_probs(x)
    again = OrderMCMCPosterior(seed=3, **fast).edge_probs(x)
    other = OrderMCMCPosterior(seed=4, **fast).edge_probs(x)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert (first - other).abs().max() < 0.25


def test_warm_start_along_an_episode():
    x = histories(5, experiments=5)
    model = OrderMCMCPosterior(local_score="linear-scm", **FAST)
    model.edge_marginals(x[:, :-1])
    assert not model.last_diagnostics["warm"].any()
    warm = model.edge_marginals(x)
    assert model.last_diagnostics["warm"].all()
    assert torch.equal(model.edge_marginals(x), warm)  # identical input: the cached result
    exact, _ = ExactLinearGaussianPosterior(local_score="linear-scm").posterior(x)
    assert (warm - exact).abs().mean() < 0.02
    changed = x.clone()
    changed[0, 0, 0, 0] += 1.0  # history 0 no longer extends the cached one
    model.edge_marginals(changed)
    assert model.last_diagnostics["warm"].tolist() == [False, True, True]


def test_graph_samples_respect_their_orders_and_the_posterior():
    x = histories(5, n_envs=2)
    exact = ExactLinearGaussianPosterior()
    log_beta, sets = exact.local_weights(x)
    generator = torch.Generator().manual_seed(0)
    model = OrderMCMCPosterior(chains=8, burn_in=20, thin=2)
    order, parents = mcmc_graph_samples(model, log_beta, sets, 320, generator)
    assert order.shape == parents.shape == (2, 320, 5)
    assert (order.sort(-1).values == torch.arange(5)).all()  # permutations
    chosen = sets.bits[torch.arange(5), parents]  # (B, S, d) parent bitmasks
    assert (chosen & ~predecessor_bits(order) == 0).all()  # parents precede their child
    members = sets.member[torch.arange(5), parents]  # (B, S, d, d): [b, s, j, i] = i -> j
    frequency = members.mean(1).transpose(-1, -2)
    truth, _ = exact.posterior(x)
    assert (frequency - truth).abs().max() < 0.15
    one = graphs_given_orders(log_beta, sets, order[:, :1], generator)
    assert one.shape == (2, 1, 5)


def test_registered_and_accepted_by_environments():
    model = load_reward_model("mcmc-linear-scm", samples=20, burn_in=5)
    assert model.local_score == "linear-scm" and model.samples == 20
    assert isinstance(load_reward_model("mcmc-linear-gaussian"), OrderMCMCPosterior)
    kwargs = {**gym.spec("caasl/LinearGaussian-v0").kwargs, "d": 4}
    env = CausalDesignVectorEnv(2, **kwargs, reward_model=model)
    env.reset(seed=[0, 1])
    _, reward, *_ = env.step(np.zeros((2, env.core.action_dim)))
    assert np.isfinite(reward).all()


def test_auto_scorer_picks_exact_then_mcmc_then_the_reward_model():
    from caasl_agent.bench.runner import scorer_for
    from caasl_agent.bench.suites import Setting

    def setting(d):
        return Setting(f"d{d}", "caasl/LinearGaussian-v0", {"d": d}, "")

    assert scorer_for("auto", setting(12)) == "exact-linear-scm"
    assert scorer_for("auto", setting(20)) == "mcmc-linear-scm"
    assert scorer_for("auto", setting(40)) is None


def test_refusals():
    x = histories(5)
    with pytest.raises(ValueError, match="d <= 4"):
        OrderMCMCPosterior(max_d=4).edge_probs(x)
    with pytest.raises(ValueError, match=r"GiB"):
        OrderMCMCPosterior(max_memory=1000).edge_probs(x)
    counts = x.clone()
    counts[..., 0] = counts[..., 0].abs().round()
    with pytest.raises(ValueError, match="count data"):
        OrderMCMCPosterior().edge_probs(counts)
    nan = x.clone()
    nan[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        OrderMCMCPosterior().edge_probs(nan)
    with pytest.raises(ValueError, match="count data"):
        OrderMCMCPosterior().for_prior(SergioPrior(d=5))
    with pytest.raises(ValueError, match="chains"):
        OrderMCMCPosterior(chains=1)


def test_a_chain_that_produces_nan_is_an_error(monkeypatch):
    x = histories(5)
    model = OrderMCMCPosterior(**FAST)
    log_beta, sets = model.local_weights(x)
    monkeypatch.setattr(model, "local_weights", lambda *a, **k: (log_beta * math.nan, sets))
    with pytest.raises(ValueError, match="NaN"):
        model.edge_probs(x)


def test_eig_batch_plans_with_mcmc_graph_samples_above_d14():
    from caasl_agent.bench.eig import EIGBatchAgent

    x = histories(15, n_envs=1, experiments=2).numpy()
    obs = {"history": x, "mask": np.ones(x.shape[:2], np.float32)}
    first, _ = EIGBatchAgent(seed=1, samples=4).predict(obs)
    again, _ = EIGBatchAgent(seed=1, samples=4).predict(obs)
    assert first.shape == (1, 30) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
