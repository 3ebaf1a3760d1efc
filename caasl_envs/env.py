"""A single causal design environment (:class:`gymnasium.Env`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from caasl_envs.checks import check_reset_options
from caasl_envs.core import CausalDesignCore, action_space, observation_space
from caasl_envs.render import RENDER_MODES, posterior_image, show
from caasl_envs.rng import BatchedRNG


class CausalDesignEnv(gym.Env):
    """Design experiments on one hidden causal system per episode.

    Observation ``{"history": (N, d, 2) float32, "mask": (N,) float32}`` with
    ``N = n0 + budget * samples_per_step``: rows are samples (valid rows first, padding zero);
    channel 0 is the value, channel 1 is 1 where that variable was intervened on in that row.
    Action: ``[targets, values]`` in ``[-1, 1]^(2d)`` (node j intervened iff ``targets_j > 0``,
    value ``values_j * value_scale``) or ``[-1, 1]^d`` (targets only). Out-of-range actions
    are clipped; NaN/inf or a wrong shape raise.

    The episode terminates after ``budget`` experiments. ``reset(seed=s)`` fixes the hidden
    system and every sample. Keyword arguments: see :class:`~caasl_envs.core.CausalDesignCore`.

    ``info`` — reset: ``initial_score`` (the reward's score, so that return + initial_score =
    final score), ``initial_expected_correct_entries``, ``initial_eshd``; every step with a
    reward-model forward: ``score``, ``expected_correct_entries``, ``eshd``; last step also
    ``final_metrics`` (every metric of :mod:`caasl_envs.metrics`) and ``graph``, the true graph
    ``(d, d)`` (``graph[i, j] = 1`` for an edge ``i -> j``), for evaluation.

    ``render_mode="rgb_array"``: :meth:`render` returns an RGB image of the latest edge
    posterior beside the true graph (:func:`caasl_envs.render.posterior_image`);
    ``"human"`` (where a display exists) draws it in a Matplotlib window after every reset
    and step.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(
                f"render_mode must be one of {RENDER_MODES} or None here, got {render_mode!r}"
                + (" ('human' needs a display)" if render_mode == "human" else "")
            )
        self.render_mode = render_mode
        self.core = CausalDesignCore(1, **kwargs)
        self.observation_space = observation_space(self.core)
        self.action_space = action_space(self.core)
        self._terminated = False

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Sample a new hidden system and its ``n0`` observational samples.

        :return: observation ``{"history": (N, d, 2), "mask": (N,)}`` and the ``initial_*`` info.
        """
        check_reset_options(options)
        super().reset(seed=seed)
        summary = self.core.reset(BatchedRNG([self.np_random], self.core.device))
        self._terminated = False
        self._show()
        return self._obs(), {f"initial_{k}": float(v[0]) for k, v in summary.items()}

    def step(
        self, action: np.ndarray | Sequence[float]
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Run one experiment.

        :param action: ``(A,)`` with ``A = 2d`` (targets, values) or ``d`` (targets only).
        :return: observation, reward (the increase of the reward model's score), terminated
            (after ``budget`` experiments), truncated (always ``False``), info.
        """
        if self._terminated:
            raise RuntimeError("the episode has terminated: call reset() before step()")
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape}, got {action.shape}"
            )
        if not (
            np.issubdtype(action.dtype, np.floating) or np.issubdtype(action.dtype, np.integer)
        ):
            raise TypeError(f"action must be a float array, got dtype {action.dtype}")
        result = self.core.step(torch.as_tensor(action[None]))
        self._terminated = result.terminated
        info: dict[str, Any] = {k: float(v[0]) for k, v in result.metrics.items()}
        if result.final_metrics is not None:
            info["final_metrics"] = {k: float(v[0]) for k, v in result.final_metrics.items()}
            info["graph"] = self.graph
        self._show()
        return self._obs(), float(result.reward[0]), result.terminated, False, info

    def render(self) -> np.ndarray | None:
        """``render_mode="rgb_array"``: the latest edge posterior beside the true graph, an RGB
        image ``(12 d, 12 (2 d + 1), 3)`` uint8; ``"human"``: draws it; ``None``: nothing."""
        if self.render_mode is None:
            return None
        image = posterior_image(self.core.probs[0].cpu().numpy(), self.graph)
        if self.render_mode == "human":
            show(image, f"edge posterior | true graph (experiment {self.core.t})")
            return None
        return image

    def _show(self) -> None:
        if self.render_mode == "human":
            self.render()

    def _obs(self) -> dict[str, np.ndarray]:
        return {key: value[0] for key, value in self.core.observation().items()}

    @property
    def graph(self) -> np.ndarray:
        """The hidden graph ``(d, d)`` (for evaluation only; agents must not look)."""
        return self.core.graph[0].cpu().numpy().copy()
