"""Baseline experimental-design agents that CAASL is compared against.

Every baseline follows Stable-Baselines3's agent protocol,
``predict(obs, state=None, episode_start=None, deterministic=False) -> (action, state)``,
acts on batched observations ``{"history": (B, N, d, 2), "mask": (B, N)}`` (or one unbatched
observation) and works for any ``d`` and both action layouts of the environments:

* ``[targets, values]`` in ``[-1, 1]^(2d)`` (node ``j`` intervened iff ``targets_j > 0``;
  the environment multiplies ``values_j`` by its ``value_scale``), the linear-SCM default;
* targets only in ``[-1, 1]^d`` (``target_only=True``), e.g. SERGIO knockouts.

Random choices range over all ``d`` variables (the original SERGIO random baseline only ever
chose among the first ``d / 2`` genes: defect 4 of docs/design.md §6). Each baseline owns a seeded
:class:`numpy.random.Generator`, so its actions are reproducible; ``deterministic`` does not
change a random baseline (its randomness *is* the design rule).
"""

from __future__ import annotations

import numpy as np
import torch

from caasl_agent.bench.agents import BASELINES, Baseline, register_baseline
from caasl_agent.bench.eig import EIGAgent, EIGBatchAgent
from caasl_agent.cut_head import bernoulli_entropy
from caasl_envs.core import CausalDesignCore
from caasl_envs.reward import RewardModel, load_reward_model

__all__ = [
    "BASELINES",
    "PLANNING_BASELINES",
    "Baseline",
    "ObservationalAgent",
    "PosteriorUncertaintyAgent",
    "RandomAgent",
    "RandomSingleTargetAgent",
    "RandomZeroValueAgent",
    "RepeatedTargetAgent",
    "RoundRobinAgent",
    "baseline_for",
    "make_baseline",
]


class RandomAgent(Baseline):
    """Random multi-target design: every variable is a target with probability 1/2, with a
    value uniform in ``[-1, 1]`` (a uniform draw from the action box)."""

    def choose(self, history, mask, state, episode_start, deterministic):
        b, d = history.shape[0], history.shape[2]
        return self.rng.random((b, d)) < 0.5, self.rng.uniform(-1.0, 1.0, (b, d)), None


class RandomZeroValueAgent(Baseline):
    """Random targets (each with probability 1/2), every value 0."""

    def choose(self, history, mask, state, episode_start, deterministic):
        b, d = history.shape[0], history.shape[2]
        return self.rng.random((b, d)) < 0.5, np.zeros((b, d)), None


def one_hot(index: np.ndarray, d: int) -> np.ndarray:
    """``(B,)`` integer indices -> ``(B, d)`` bool one-hot rows."""
    return np.arange(d)[None, :] == np.asarray(index)[:, None]


class RandomSingleTargetAgent(Baseline):
    """One target drawn uniformly from all ``d`` variables, value uniform in ``[-1, 1]``."""

    def choose(self, history, mask, state, episode_start, deterministic):
        b, d = history.shape[0], history.shape[2]
        target = self.rng.integers(0, d, b)
        return one_hot(target, d), self.rng.uniform(-1.0, 1.0, (b, d)), None


class RepeatedTargetAgent(Baseline):
    """One target per episode, drawn uniformly from all ``d`` variables at the episode's start and
    intervened on at every step, value uniform in ``[-1, 1]``.

    The recurrent ``state`` (SB3 convention) is the ``(B,)`` index of the episode's target.
    """

    def choose(self, history, mask, state, episode_start, deterministic):
        b, d = history.shape[0], history.shape[2]
        fresh = self.rng.integers(0, d, b)
        target = fresh if state is None else np.where(episode_start, fresh, np.asarray(state))
        return one_hot(target, d), self.rng.uniform(-1.0, 1.0, (b, d)), target


class ObservationalAgent(Baseline):
    """No intervention: every experiment draws observational samples."""

    def choose(self, history, mask, state, episode_start, deterministic):
        b, d = history.shape[0], history.shape[2]
        return np.zeros((b, d), dtype=bool), np.zeros((b, d)), None


class RoundRobinAgent(Baseline):
    """Single targets in turn: ``start, start + 1, ...`` (mod ``d``) with a random start per
    episode, so a budget below ``d`` does not favour the first variables; value uniform in
    ``[-1, 1]``.

    The recurrent ``state`` (SB3 convention) is the ``(B,)`` index of the next target; pass it
    back with ``episode_start`` as SB3's ``evaluate_policy`` does.
    """

    def choose(self, history, mask, state, episode_start, deterministic):
        b, d = history.shape[0], history.shape[2]
        fresh = self.rng.integers(0, d, b)
        current = fresh if state is None else np.where(episode_start, fresh, np.asarray(state) % d)
        return one_hot(current, d), self.rng.uniform(-1.0, 1.0, (b, d)), (current + 1) % d


class PosteriorUncertaintyAgent(Baseline):
    """Intervene on the variable whose incident edges are most uncertain.

    The reward model turns the observed history into edge probabilities ``P (B, d, d)``; the
    score of variable ``j`` is the total Bernoulli entropy of its incoming and outgoing edges,
    ``sum_i H(P_ij) + H(P_ji)``. The top-scoring variable is the single target (ties broken at
    random) with value ``±1`` (times the environment's ``value_scale``), sign at random. A
    cheap, strong heuristic: it uses the same posterior the reward is computed from, and one
    forward pass per step.

    :param reward_model: a :class:`~caasl_envs.reward.RewardModel` or a registered name.
    """

    def __init__(
        self,
        reward_model: RewardModel | str,
        target_only: bool = False,
        seed: int | None = 0,
        device: str | torch.device = "cpu",
    ):
        super().__init__(target_only, seed)
        if isinstance(reward_model, str):
            reward_model = load_reward_model(reward_model)
        if not callable(getattr(reward_model, "edge_probs", None)):
            raise TypeError(
                f"reward_model must have an edge_probs(x, mask) method, got {reward_model!r}"
            )
        self.reward_model = reward_model
        self.device = torch.device(device)

    def edge_probs(self, history: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """``P (B, d, d)`` from the valid rows of the observed histories."""
        n = int(mask.sum(1).max())
        x = torch.as_tensor(history[:, :n], device=self.device)
        valid = torch.as_tensor(mask[:, :n] > 0, device=self.device)
        with torch.inference_mode():
            if bool(valid.all()):
                # Same call as the environment's reward, so both see identical inputs.
                return self.reward_model.edge_probs(x)
            return self.reward_model.edge_probs(x, valid)

    def choose(self, history, mask, state, episode_start, deterministic):
        b, d = history.shape[0], history.shape[2]
        probs = self.edge_probs(history, mask)
        entropy = bernoulli_entropy(probs.double())
        off = ~torch.eye(d, dtype=torch.bool, device=entropy.device)
        entropy = entropy * off
        score = (entropy.sum(1) + entropy.sum(2)).cpu().numpy()  # (B, d): in + out edges
        best = score >= score.max(1, keepdims=True) - 1e-12
        tie_break = np.where(best, self.rng.random((b, d)), -1.0)
        target = tie_break.argmax(1)
        sign = np.where(self.rng.random(b) < 0.5, -1.0, 1.0)
        return one_hot(target, d), np.repeat(sign[:, None], d, axis=1), None


for _name, _cls in {
    "random": RandomAgent,
    "random-zero": RandomZeroValueAgent,
    "random-single": RandomSingleTargetAgent,
    "random-repeated": RepeatedTargetAgent,
    "observational": ObservationalAgent,
    "round-robin": RoundRobinAgent,
    "uncertainty": PosteriorUncertaintyAgent,
    "eig": EIGAgent,
    "eig-batch": EIGBatchAgent,
}.items():
    register_baseline(_name, _cls)

#: Baselines that plan with an exact posterior (~0.02-0.2 s of CPU per environment and step):
#: not in the default agent lists of ``caasl bench`` and ``caasl demo``; name them to run them.
PLANNING_BASELINES = ("eig", "eig-batch")


def make_baseline(
    name: str,
    target_only: bool = False,
    seed: int | None = 0,
    reward_model: RewardModel | str | None = None,
    env: dict | None = None,
) -> Baseline:
    """A baseline by name (a key of :data:`BASELINES`).

    :param reward_model: required by ``"uncertainty"`` (use the environment's reward model);
        the EIG designers plan with it when it is an exact posterior.
    :param env: what the planning baselines must know of the environment, e.g.
        ``{"value_scale": 2.0, "intervention": "shift"}`` (the harness passes both).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    if name == "uncertainty":
        if reward_model is None:
            raise ValueError("the 'uncertainty' baseline needs the environment's reward_model")
        return PosteriorUncertaintyAgent(reward_model, target_only=target_only, seed=seed)
    if name in PLANNING_BASELINES:
        return BASELINES[name](reward_model, target_only=target_only, seed=seed, **(env or {}))
    return BASELINES[name](target_only=target_only, seed=seed)


def baseline_for(name: str, core: CausalDesignCore, seed: int | None = 0) -> Baseline:
    """The baseline ``name`` built for the environments of a
    :class:`~caasl_envs.core.CausalDesignCore` as the harness builds it: their action layout and
    reward model, and for the planners their ``value_scale`` and intervention kind."""
    env = {
        "value_scale": core.value_scale,
        "intervention": getattr(core.prior, "intervention", "do"),
    }
    return make_baseline(name, core.target_only, seed, core.reward_model, env)
