"""Histories and observations: the one place that checks them and describes their spaces.

A history is ``(B, n, d, 2)``: channel 0 the measured value, channel 1 the intervened-on flag
(1 where that variable was intervened on in that row), with an optional row-validity mask
``(B, n)``, valid rows first. An observation of the environments is the dict
``{"history": (N, d, 2), "mask": (N,)}`` (batched: ``(B, N, d, 2)``, ``(B, N)``). Reward
models, the policy's networks, the replay buffer and the baselines all check their inputs here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces


def check_history(x: torch.Tensor, mask: torch.Tensor | None = None, min_d: int = 2) -> None:
    """Raise a ``ValueError`` naming the problem unless ``x`` is a finite ``(B, n, d, 2)`` tensor
    with ``d >= min_d`` and ``mask``, when given, is ``(B, n)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"history must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[-1] != 2:
        raise ValueError(f"history must have shape (B, n, d, 2), got {tuple(x.shape)}")
    if x.shape[2] < min_d:
        raise ValueError(f"history needs at least d={min_d} variables, got d={x.shape[2]}")
    if not torch.isfinite(x).all():
        raise ValueError("history contains NaN or inf")
    if mask is not None and tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"mask must have shape (B, n) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}"
        )


def batched_observation(observation: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """A causal-design observation (arrays or tensors, batched or not) -> float32 ``history
    (B, N, d, 2)`` and ``mask (B, N)`` arrays, and whether the input was one unbatched
    observation. ``ValueError`` naming the problem unless it is a dict with keys ``history``
    and ``mask`` of matching shapes and the history is finite."""
    if (
        not isinstance(observation, dict)
        or "history" not in observation
        or "mask" not in observation
    ):
        raise ValueError("an observation must be a dict with keys 'history' and 'mask'")
    history, mask = (_float32_array(observation[key]) for key in ("history", "mask"))
    shape, single = history.shape, history.ndim == 3
    if single:
        history, mask = history[None], mask[None]
    if history.ndim != 4 or history.shape[-1] != 2:
        raise ValueError(f"history must have shape (N, d, 2) or (B, N, d, 2), got {shape}")
    if mask.shape != history.shape[:2]:
        raise ValueError(
            f"mask shape {mask.shape} does not match history rows: expected {history.shape[:2]}"
        )
    if not np.isfinite(history).all():
        raise ValueError("history contains NaN or inf")
    return history, mask, single


def _float32_array(value: Any) -> np.ndarray:
    if torch.is_tensor(value):
        value = value.detach().cpu()
    return np.asarray(value, dtype=np.float32)


def observation_space(n: int, d: int) -> spaces.Dict:
    """One environment's observation space: history ``(n, d, 2)`` and validity mask ``(n,)``."""
    return spaces.Dict(
        {
            "history": spaces.Box(-np.inf, np.inf, shape=(n, d, 2), dtype=np.float32),
            "mask": spaces.Box(0.0, 1.0, shape=(n,), dtype=np.float32),
        }
    )


def history_space_dims(space: spaces.Space) -> tuple[int, int]:
    """``(N, d)`` of a causal-design observation space; ``ValueError`` if it is not one."""
    if not isinstance(space, spaces.Dict) or set(space.spaces) != {"history", "mask"}:
        raise ValueError(
            f"expected a Dict observation space with keys 'history' and 'mask', got {space}"
        )
    shape = space["history"].shape
    if len(shape) != 3 or shape[-1] != 2 or space["mask"].shape != shape[:1]:
        raise ValueError(
            "expected 'history' of shape (N, d, 2) and 'mask' of shape (N,), got "
            f"{shape} and {space['mask'].shape}"
        )
    return shape[0], shape[1]
