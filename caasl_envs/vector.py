"""A natively batched causal design environment (:class:`gymnasium.vector.VectorEnv`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from caasl_envs.checks import check_reset_options
from caasl_envs.core import CausalDesignCore, action_space, make_generators, observation_space
from caasl_envs.rng import BatchedRNG


class CausalDesignVectorEnv(VectorEnv):
    """``num_envs`` causal design environments stepped with one simulator call and one
    reward-model forward per step.

    Environment ``i`` reset with seed ``s`` (``reset(seed=s0)`` gives env ``i`` the seed
    ``s0 + i``; a list gives each its own) produces the observations, bit for bit, that
    :class:`~caasl_envs.env.CausalDesignEnv` produces with ``reset(seed=s)``; its rewards and
    metrics agree up to float32 round-off of the batched reward-model forward (AVICI models:
    within ``1e-6``; the exact posterior and the reference scorers: equal).
    All environments share the budget, so they terminate together; autoreset follows
    Gymnasium's default ``NEXT_STEP`` mode (the step after termination resets, reward 0).

    Shapes (``B = num_envs``, ``N = n0 + budget * samples_per_step``): observation
    ``{"history": (B, N, d, 2), "mask": (B, N)}``, actions ``(B, A)`` with ``A = 2d`` (targets,
    values) or ``d`` (targets only), rewards ``(B,)``. ``info`` values are arrays ``(B,)`` with
    Gymnasium's ``_key`` presence masks (the last step's ``graph``: ``(B, d, d)``); keys as in
    :class:`~caasl_envs.env.CausalDesignEnv`.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        self.core = CausalDesignCore(num_envs, **kwargs)
        self.num_envs = self.core.num_envs
        self.single_observation_space = observation_space(self.core)
        self.single_action_space = action_space(self.core)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._generators: list[np.random.Generator] | None = None
        self._autoreset = False

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Sample ``num_envs`` new hidden systems (``seed``: ``s0`` gives env ``i`` the seed
        ``s0 + i``; a list gives each its own; ``None`` keeps the generators going). A seed also
        seeds :attr:`np_random`, from ``s0`` or from the whole list."""
        check_reset_options(options)
        if seed is not None or self._generators is None:
            self._generators = make_generators(seed, self.num_envs)
        if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
            super().reset(seed=int(seed))
        elif seed is not None and all(s is not None for s in seed):
            self._np_random = np.random.default_rng([int(s) for s in seed])
            self._np_random_seed = -1  # Gymnasium's value for "not seeded by one integer"
        summary = self.core.reset(BatchedRNG(self._generators, self.core.device))
        self._autoreset = False
        return self._obs(), self._info({f"initial_{k}": v for k, v in summary.items()})

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One experiment in every environment: ``actions (B, A)`` -> observation, rewards
        ``(B,)``, terminated ``(B,)``, truncated ``(B,)``, info (the step after termination
        resets instead: reward 0)."""
        if self._generators is None:
            raise RuntimeError("call reset() before step()")
        if self._autoreset:
            obs, info = self.reset()
            zeros = np.zeros(self.num_envs, dtype=bool)
            return obs, np.zeros(self.num_envs), zeros, zeros.copy(), info
        result = self.core.step(torch.as_tensor(np.asarray(actions)))
        self._autoreset = result.terminated
        info = self._info(result.metrics)
        if result.final_metrics is not None:
            info["final_metrics"] = self._info(result.final_metrics)
            info["_final_metrics"] = np.ones(self.num_envs, dtype=bool)
            info |= self._info({"graph": self.core.graph})  # (B, d, d) true graphs
        terminated = np.full(self.num_envs, result.terminated)
        truncated = np.zeros(self.num_envs, dtype=bool)
        return self._obs(), result.reward.cpu().numpy(), terminated, truncated, info

    def _obs(self) -> dict[str, np.ndarray]:
        return self.core.observation()

    def set_observe_belief(self, flag: bool) -> None:
        """Add (or drop) the ``belief`` entry of the observations, and update the spaces."""
        self.core.observe_belief = bool(flag)
        self.single_observation_space = observation_space(self.core)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

    def _info(self, values: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        info: dict[str, np.ndarray] = {}
        for key, value in values.items():
            info[key] = value.cpu().numpy()
            info[f"_{key}"] = np.ones(self.num_envs, dtype=bool)
        return info

    @property
    def graphs(self) -> np.ndarray:
        """The hidden graphs ``(num_envs, d, d)`` (for evaluation only; agents must not look)."""
        return self.core.graph.cpu().numpy()
