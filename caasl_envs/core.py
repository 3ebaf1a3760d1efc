"""The batched causal-design process shared by the single, vector and SB3 environments.

One :class:`CausalDesignCore` holds ``B`` environments that always step together: same number
of valid history rows, one simulator call and one reward-model forward per step for the whole
batch. It speaks torch tensors; the Gymnasium / SB3 front ends convert at their boundary.

Data flow of one step (docs/design.md §2)::

    action (B, A) -> targets (B, d) bool, values (B, d)
                  -> simulator samples (B, k, d)
                  -> history (B, n0 + t k, d, 2)   [value, intervened flag]
                  -> reward model -> P (B, d, d) -> reward (B,)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding

from caasl_envs import histories, metrics
from caasl_envs.checks import (
    check_bool,
    check_float,
    check_graph_degree,
    check_int,
    resolve_device,
)
from caasl_envs.reward import RewardModel, load_reward_model
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import SIMULATORS

REWARDS = ("correct_entries", "bce")
REWARD_SCHEDULES = ("dense", "final")


def check_memory(num_envs: int, d: int, max_rows: int) -> None:
    """``ValueError`` when ``num_envs`` environments of ``d`` variables and ``max_rows`` history
    rows would need more than the memory free now (history ``(B, N, d, 2)`` and ``(B, d, d)``
    float32 graphs, weights and posteriors), instead of an allocation error deep inside (or the
    machine swapping)."""
    needed = 4 * num_envs * (2 * max_rows * d + 4 * d * d)
    try:
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: no limit known
        return
    if needed > free:
        raise ValueError(
            f"d={d} with {max_rows} history rows and {num_envs} environment(s) needs about "
            f"{needed / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB free on this "
            "machine; choose a smaller d, budget, n0 or number of environments"
        )


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@cache
def _registered_reward_model(name: str, device: str) -> RewardModel:
    # One instance per (name, device): SyncVectorEnv over 256 single envs must not load 256 copies.
    model = load_reward_model(name)
    return model.to(device) if hasattr(model, "to") else model


@dataclass
class StepResult:
    """Tensors of one batched step; ``metrics`` is empty when no forward ran this step."""

    reward: torch.Tensor  # (B,) float64
    terminated: bool
    metrics: dict[str, torch.Tensor]
    final_metrics: dict[str, torch.Tensor] | None


class CausalDesignCore:
    """``num_envs`` causal design environments stepped as one batch.

    :param num_envs: batch size ``B``.
    :param d: number of variables.
    :param n0: initial observational samples per environment (``>= 0``).
    :param budget: number of experiments (steps) per episode (``>= 1``).
    :param samples_per_step: samples drawn per experiment ``k``.
    :param simulator: simulator family, a key of :data:`caasl_envs.scm.SIMULATORS`.
    :param value_scale: intervention values are ``action value * value_scale``.
    :param reward_model: a :class:`RewardModel`, a registered name, or ``None`` for the
        simulator's default (the shipped AVICI model for its family).
    :param reward: ``"correct_entries"`` or ``"bce"``.
    :param reward_schedule: ``"dense"`` (reward every step) or ``"final"`` (only at the end).
    :param device: torch device for simulation and reward model, or ``"auto"``.
    :param observe_belief: add the reward model's current edge probabilities ``(d, d)`` to the
        observation (key ``"belief"``; they are computed for the reward anyway).
    :param prior_kwargs: passed to the simulator prior (graph, graph_degree, noise,
        coeff_mean, intervention, ...); ``None`` values mean the prior's default.
    """

    def __init__(
        self,
        num_envs: int,
        d: int = 10,
        n0: int = 50,
        budget: int = 10,
        samples_per_step: int = 1,
        simulator: str = "linear",
        value_scale: float = 1.0,
        reward_model: RewardModel | str | None = None,
        reward: str = "correct_entries",
        reward_schedule: str = "dense",
        device: str | torch.device = "cpu",
        observe_belief: bool = False,
        **prior_kwargs,
    ):
        for name, value, low in (
            ("num_envs", num_envs, 1),
            ("d", d, 2),
            ("n0", n0, 0),
            ("budget", budget, 1),
            ("samples_per_step", samples_per_step, 1),
        ):
            check_int(name, value, low)
        check_graph_degree(prior_kwargs.get("graph_degree"), d)
        if simulator not in SIMULATORS:
            raise ValueError(
                f"unknown simulator {simulator!r}; expected one of {sorted(SIMULATORS)}"
            )
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; expected one of {REWARDS}")
        if reward_schedule not in REWARD_SCHEDULES:
            raise ValueError(
                f"unknown reward_schedule {reward_schedule!r}; expected one of {REWARD_SCHEDULES}"
            )
        self.value_scale = check_float("value_scale", value_scale, 0.0, open_low=True)
        self.num_envs, self.d, self.n0, self.budget = int(num_envs), int(d), int(n0), int(budget)
        self.samples_per_step = int(samples_per_step)
        self.reward_kind, self.reward_schedule = reward, reward_schedule
        self.simulator = simulator
        self.observe_belief = check_bool("observe_belief", observe_belief)
        self.device = resolve_device(device)
        self.prior = SIMULATORS[simulator](
            d=self.d, **{k: v for k, v in prior_kwargs.items() if v is not None}
        )
        self.target_only = self.prior.action_kind == "target_only"
        self.action_dim = self.d if self.target_only else 2 * self.d
        self.max_rows = self.n0 + self.budget * self.samples_per_step
        check_memory(self.num_envs, self.d, self.max_rows)
        if hasattr(self.prior, "check_design"):  # pools of real data (caasl_envs.real): room?
            self.prior.check_design(self.n0, self.budget, self.samples_per_step)
        if reward_model is None:
            reward_model = self.prior.default_reward_model
        if isinstance(reward_model, str):
            reward_model = _registered_reward_model(reward_model, str(self.device))
            # A model loaded by name gets the environment's prior where it has one to match.
            if callable(getattr(reward_model, "for_prior", None)):
                reward_model = reward_model.for_prior(self.prior)
        if not callable(getattr(reward_model, "edge_probs", None)):
            raise TypeError(
                f"reward_model must have an edge_probs(x, mask) method, got {reward_model!r}"
            )
        self.reward_model = reward_model
        self.system = None
        self.t = 0

    # ------------------------------------------------------------------ episode control
    def reset(self, rng: BatchedRNG) -> dict[str, torch.Tensor]:
        """Sample new hidden systems and initial data. Returns the reset metrics ``(B,)`` each."""
        if len(rng) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} generators, got {len(rng)}")
        self.rng = rng
        self.system = self.prior.sample(rng)
        b, d = self.num_envs, self.d
        self.history = torch.zeros(b, self.max_rows, d, 2, device=self.device)
        self.mask = torch.zeros(b, self.max_rows, device=self.device)
        if self.n0 > 0:
            self.history[:, : self.n0, :, 0] = self.system.sample(rng, self.n0, None, None).to(
                self.device
            )
            self.mask[:, : self.n0] = 1.0
        self.t = 0
        self.graph = self.system.graph.to(self.device)
        self.probs = self._edge_probs()
        summary = self._evaluate(self.probs)
        self.score = summary["score"]
        return summary

    def step(self, action: torch.Tensor) -> StepResult:
        """Run one experiment in every environment. ``action`` is ``(B, A)``."""
        if self.system is None:
            raise RuntimeError("call reset() before step()")
        if self.t >= self.budget:
            raise RuntimeError("the episode is over (budget used up): call reset() before step()")
        targets, values = self.decode_action(action)
        k = self.samples_per_step
        rows = slice(self.n0 + self.t * k, self.n0 + (self.t + 1) * k)
        x = self.system.sample(self.rng, k, targets, values).to(self.device)
        if hasattr(self.system, "intervened"):  # pools of real data: the experiment actually run
            targets = self.system.intervened(targets, values)
        self.history[:, rows, :, 0] = x
        self.history[:, rows, :, 1] = targets.unsqueeze(1).to(self.history.dtype)
        self.mask[:, rows] = 1.0
        self.t += 1
        terminated = self.t == self.budget
        reward = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)
        step_metrics: dict[str, torch.Tensor] = {}
        if self.reward_schedule == "dense" or terminated:
            self.probs = self._edge_probs()
            step_metrics = self._evaluate(self.probs)
            reward = step_metrics["score"] - self.score
            self.score = step_metrics["score"]
        final = metrics.all_metrics(self.probs, self.graph) if terminated else None
        return StepResult(reward, terminated, step_metrics, final)

    # ------------------------------------------------------------------ helpers
    def decode_action(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate and clip ``(B, A)`` actions -> targets ``(B, d)`` bool, values ``(B, d)``."""
        action = torch.as_tensor(action)
        if not (action.is_floating_point() or action.dtype in _INTEGER_DTYPES):
            raise TypeError(f"actions must be a float array, got dtype {action.dtype}")
        if tuple(action.shape) != (self.num_envs, self.action_dim):
            raise ValueError(
                f"actions must have shape {(self.num_envs, self.action_dim)} for "
                f"{self.num_envs} env(s) with d={self.d}, got {tuple(action.shape)}"
            )
        if action.is_floating_point() and not torch.isfinite(action).all():
            raise ValueError("actions contain NaN or inf")
        # Out-of-range actions are clipped (documented), in float64: float32 would overflow
        # large finite values to inf, an unsigned dtype would wrap -1.
        action = action.double().clamp(-1.0, 1.0).to(self.device, torch.float32)
        targets = action[:, : self.d] > 0
        values = None if self.target_only else action[:, self.d :] * self.value_scale
        return targets, values

    def observation(self) -> dict[str, np.ndarray]:
        """NumPy copies: ``history (B, N, d, 2)``, ``mask (B, N)`` and, with
        ``observe_belief``, ``belief (B, d, d)`` (the latest edge probabilities)."""
        obs = {"history": self.history.cpu().numpy().copy(), "mask": self.mask.cpu().numpy().copy()}
        if self.observe_belief:
            obs["belief"] = self.probs.to(torch.float32).cpu().numpy().copy()
        return obs

    def _edge_probs(self) -> torch.Tensor:
        return self.posterior()

    def posterior(self, model: RewardModel | None = None) -> torch.Tensor:
        """``(B, d, d)`` edge probabilities of the current histories under ``model`` (default: the
        environment's reward model); every edge 1/2 before any data."""
        model = self.reward_model if model is None else model
        n = self.n0 + self.t * self.samples_per_step
        if n == 0:
            # No data yet: the uninformative posterior (every edge 1/2) is the starting point.
            eye = torch.eye(self.d, dtype=torch.bool, device=self.device)
            return torch.full((self.num_envs, self.d, self.d), 0.5, device=self.device).masked_fill(
                eye, 0.0
            )
        with torch.inference_mode():
            probs = model.edge_probs(self.history[:, :n])
        if not isinstance(probs, torch.Tensor | np.ndarray):
            raise TypeError(
                f"reward model {type(model).__name__}.edge_probs returned "
                f"{type(probs).__name__}; expected a (B, d, d) tensor or array"
            )
        if tuple(probs.shape) != (self.num_envs, self.d, self.d):
            raise ValueError(
                f"reward model returned shape {tuple(probs.shape)}, expected {(self.num_envs, self.d, self.d)}"
            )
        # Values (NaN, outside [0, 1]) are checked by the metrics every step computes from them.
        return torch.as_tensor(probs, device=self.device)

    def _evaluate(self, probs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-step summary ``(B,)`` each: ``score`` (whose increase is the reward),
        ``expected_correct_entries`` and ``eshd``.

        ``correct_entries`` scores the expected number of correct off-diagonal entries;
        ``bce`` scores ``1 - mean`` binary cross-entropy against the graph.
        """
        return {
            "score": design_score(probs, self.graph, self.reward_kind),
            "expected_correct_entries": metrics.expected_correct_entries(probs, self.graph),
            "eshd": metrics.eshd(probs, self.graph),
        }


def design_score(probs: torch.Tensor, graph: torch.Tensor, reward: str) -> torch.Tensor:
    """The score ``(B,)`` whose increase is the reward: ``probs``, ``graph`` ``(B, d, d)``;
    ``reward`` is one of :data:`REWARDS`."""
    if reward == "correct_entries":
        return metrics.expected_correct_entries(probs, graph)
    return 1.0 - metrics.mean_bce(probs, graph)


def observation_space(core: CausalDesignCore) -> spaces.Dict:
    """One environment's observation: padded history ``(N, d, 2)``, validity mask ``(N,)`` and,
    with ``observe_belief``, the edge probabilities ``(d, d)``."""
    return histories.observation_space(core.max_rows, core.d, core.observe_belief)


def action_space(core: CausalDesignCore) -> spaces.Box:
    """``[targets, values]`` in ``[-1, 1]^(2d)``, or targets only in ``[-1, 1]^d``."""
    return spaces.Box(-1.0, 1.0, shape=(core.action_dim,), dtype=np.float32)


def make_generators(seed: int | list[int] | None, num_envs: int) -> list[np.random.Generator]:
    """Gymnasium's seeding for ``num_envs`` environments: an int ``s`` means ``s, s+1, ...``."""
    if seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool)):
        seeds = [None] * num_envs if seed is None else [int(seed) + i for i in range(num_envs)]
    elif isinstance(seed, Sequence | np.ndarray) and not isinstance(seed, str | bytes):
        seeds = list(seed)
        if len(seeds) != num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {num_envs} environments")
    else:
        raise TypeError(f"seed must be None, an integer or a list of integers, got {seed!r}")
    return [seeding.np_random(s)[0] for s in seeds]
