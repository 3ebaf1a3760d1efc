"""The REDQ parts of CAASL on hand-built critic ensembles with known outputs.

The TD target takes the min over a fresh random subset of M of the N *target* critics, on the
next history with its next mask; the actor loss reduces all critics by mean or min; the actor
(and entropy coefficient) step once every G critic steps.
"""

from math import comb

import numpy as np
import pytest
import torch
from agent_toy_env import ToyDesignEnv, tiny_policy_kwargs
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from caasl_agent import CAASL

POLICY_KWARGS = tiny_policy_kwargs(8)
D, N_ROWS = 3, 9  # ToyDesignEnv(d=3): n0=3 + budget 3 x 1 row
GAMMA, ALPHA = 0.9, 0.5


class HandQ(nn.Module):
    """``Q(s, a) = value + (number of valid rows of s) + slope * sum(a)``, ``(B, 1)``."""

    def __init__(self, value: float, slope: float = 0.0):
        super().__init__()
        self.value, self.slope = value, slope

    def embed(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return obs["mask"].sum(dim=1, keepdim=True)  # (B, 1)

    def q_from_embeddings(self, rows: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.value + rows + self.slope * actions.sum(dim=1, keepdim=True)

    def forward(self, obs: dict[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        return self.q_from_embeddings(self.embed(obs), actions)


def toy_model(**kwargs) -> CAASL:
    env = DummyVecEnv([lambda: ToyDesignEnv(d=D)] * 2)
    defaults = dict(seed=0, gamma=GAMMA, ent_coef=ALPHA, policy_kwargs=POLICY_KWARGS, device="cpu")
    return CAASL(env, **{**defaults, **kwargs})


def hand_ensemble(model: CAASL, target_values, critic_values, slopes=None) -> None:
    """Replace the critics by :class:`HandQ` members; the online critics differ from the
    target ones so that a target computed from the wrong ensemble is visible."""
    slopes = slopes or [0.0] * len(critic_values)
    model.critic_target.q_networks = nn.ModuleList(HandQ(v) for v in target_values)
    model.critic.q_networks = nn.ModuleList(HandQ(v, s) for v, s in zip(critic_values, slopes))


def fixed_actor(model: CAASL, monkeypatch, actions: torch.Tensor, log_prob: torch.Tensor):
    monkeypatch.setattr(model.actor, "action_log_prob", lambda obs: (actions, log_prob))


def mask(counts) -> torch.Tensor:
    return (torch.arange(N_ROWS)[None, :] < torch.tensor(counts)[:, None]).float()


def batch(counts, next_counts, rewards, dones) -> DictReplayBufferSamples:
    b = len(counts)
    history = torch.randn(b, N_ROWS, D, 2)
    return DictReplayBufferSamples(
        observations={"history": history, "mask": mask(counts)},
        actions=torch.zeros(b, 2 * D),
        next_observations={"history": history, "mask": mask(next_counts)},
        dones=torch.tensor(dones, dtype=torch.float32).reshape(-1, 1),
        rewards=torch.tensor(rewards, dtype=torch.float32).reshape(-1, 1),
    )


TARGET_VALUES = [3.0, 0.0, 4.0, 1.0, 2.0]  # not sorted: "the first M" is not "the M smallest"
LOG_PROB = torch.tensor([-1.0, 2.0, 0.5])


def subset_minima(model: CAASL, n_draws: int) -> np.ndarray:
    """The subset minimum each TD target used, recovered from the target of a live sample."""
    data = batch([4, 5, 6], [5, 6, 7], rewards=[1.0, -1.0, 0.25], dones=[0.0, 1.0, 0.0])
    minima = []
    for _ in range(n_draws):
        target = model._td_target(data, torch.tensor(ALPHA))
        assert target.shape == (3, 1)
        assert target[1, 0].item() == -1.0  # done: the reward alone
        # live samples: r + gamma (min_S Q'(s', a') - alpha log pi), Q' on the NEXT mask
        recovered = (target[[0, 2], 0] - data.rewards[[0, 2], 0]) / GAMMA
        recovered = recovered + ALPHA * LOG_PROB[[0, 2]] - torch.tensor([5.0, 7.0])
        assert abs(recovered[0] - recovered[1]).item() < 1e-5  # one subset per batch
        minima.append(recovered[0].item())
    return np.array(minima)


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_td_target_is_the_min_over_a_uniform_random_subset_of_the_target_critics(m, monkeypatch):
    n = len(TARGET_VALUES)
    model = toy_model(ensemble_size=n, target_subset_size=m)
    hand_ensemble(model, TARGET_VALUES, critic_values=[100.0 + v for v in TARGET_VALUES])
    fixed_actor(model, monkeypatch, torch.zeros(3, 2 * D), LOG_PROB)
    torch.manual_seed(0)
    n_draws = 1000
    minima = subset_minima(model, n_draws)
    # every recovered value is one target critic's value (not a mean, not an online critic)
    nearest = np.abs(minima[:, None] - np.array(TARGET_VALUES)[None, :]).min(axis=1)
    assert nearest.max() < 1e-5
    # the minimum of a uniform M-subset of N is the k-th smallest value (k = 0, 1, ...) with
    # probability C(N-1-k, M-1) / C(N, M); each frequency within 5 binomial standard errors
    for k, value in enumerate(sorted(TARGET_VALUES)):
        p = comb(n - 1 - k, m - 1) / comb(n, m)
        freq = np.mean(np.abs(minima - value) < 1e-5)
        assert abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n_draws) + 1e-12, (k, freq, p)


def test_subset_choice_follows_the_seed(monkeypatch):
    model = toy_model(ensemble_size=5, target_subset_size=2)
    hand_ensemble(model, TARGET_VALUES, critic_values=TARGET_VALUES)
    fixed_actor(model, monkeypatch, torch.zeros(3, 2 * D), LOG_PROB)
    runs = {}
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        runs.setdefault(seed, []).append(subset_minima(model, 40))
    np.testing.assert_array_equal(runs[7][0], runs[7][1])
    assert not np.array_equal(runs[7][0], runs[8][0])


@pytest.mark.parametrize("reduction", ["mean", "min"])
def test_actor_loss_reduces_the_ensemble_as_asked(reduction, monkeypatch):
    values, slopes = [0.0, 1.0, -0.5], [2.0, -1.0, 0.5]
    model = toy_model(ensemble_size=3, target_subset_size=2, actor_q_reduction=reduction)
    hand_ensemble(model, [0.0] * 3, critic_values=values, slopes=slopes)
    # action sums 1 and -1: the cheapest critic is a different one for the two samples
    actions = torch.tensor([[1.0, 0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0, 0]], requires_grad=True)
    log_prob = torch.tensor([0.3, -0.2])
    fixed_actor(model, monkeypatch, actions, log_prob)
    obs = {"history": torch.zeros(2, N_ROWS, D, 2), "mask": mask([4, 6])}
    actor_loss, ent_coef_loss = model._update_actor_and_entropy(obs, torch.tensor(ALPHA))
    assert ent_coef_loss is None  # a fixed entropy coefficient
    rows = np.array([4.0, 6.0])
    q = np.array(values)[None, :] + rows[:, None] + np.outer([1.0, -1.0], slopes)  # (B, N)
    reduced = q.mean(axis=1) if reduction == "mean" else q.min(axis=1)
    expected = np.mean(ALPHA * log_prob.numpy() - reduced)
    assert actor_loss == pytest.approx(expected, abs=1e-6)
    # d loss / d action_j = -(1/B) d reduced / d sum(a): the mean slope, or the argmin's slope
    grad_of_sum = (
        np.full(2, np.mean(slopes)) if reduction == "mean" else np.array(slopes)[q.argmin(axis=1)]
    )
    np.testing.assert_allclose(actions.grad.numpy(), -np.outer(grad_of_sum, np.ones(2 * D)) / 2)


@pytest.mark.parametrize("g", [1, 3])
def test_actor_and_entropy_step_once_every_g_critic_steps(g, monkeypatch):
    model = toy_model(
        ensemble_size=3,
        target_subset_size=2,
        critic_updates_per_actor_update=g,
        ent_coef="auto",
        learning_starts=1000,
        batch_size=4,
    )
    model.learn(16)  # fills the buffer; no gradient step before learning_starts
    assert model._n_updates == 0
    counts = {"critic": 0, "actor": 0, "ent_coef": 0}

    def counting(optimizer, key):
        step = optimizer.step

        def counted(*args, **kwargs):
            counts[key] += 1
            return step(*args, **kwargs)

        monkeypatch.setattr(optimizer, "step", counted)

    counting(model.critic.optimizer, "critic")
    counting(model.actor.optimizer, "actor")
    counting(model.ent_coef_optimizer, "ent_coef")
    actor_before = [p.detach().clone() for p in model.actor.parameters()]
    seen = []
    for gradient_steps in (7, 5, 1):
        model.train(gradient_steps, batch_size=4)
        seen.append(dict(counts))
    # updates are numbered 0, 1, ... over train() calls; the actor steps after update u
    # when (u + 1) % G == 0
    for n_done, count in zip((7, 12, 13), seen):
        assert count["critic"] == n_done
        assert count["actor"] == count["ent_coef"] == n_done // g
    assert model._n_updates == 13
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, model.actor.parameters()))
