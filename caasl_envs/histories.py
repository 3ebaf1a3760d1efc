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
    """Raise a ``ValueError`` naming the problem unless ``x`` is a finite real ``(B, n, d, 2)``
    tensor with ``n >= 1`` rows and ``d >= min_d`` variables and ``mask``, when given, is
    ``(B, n)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"history must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[-1] != 2:
        raise ValueError(f"history must have shape (B, n, d, 2), got {tuple(x.shape)}")
    if x.is_complex():
        raise ValueError(f"history must be real (a float or integer tensor), got {x.dtype}")
    if x.shape[1] < 1:
        raise ValueError("history has no rows (n=0): edge probabilities need n >= 1 samples")
    if x.shape[2] < min_d:
        raise ValueError(f"history needs at least d={min_d} variables, got d={x.shape[2]}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError("history contains NaN or inf")
    if mask is not None and tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"mask must have shape (B, n) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}"
        )


def checked_history(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    min_d: int = 2,
    counts: bool = False,
) -> torch.Tensor:
    """A reward model's input: :func:`check_history`, the intervened flags (channel 1) of the
    valid rows in ``{0, 1}`` and, with ``counts`` (a model of count data), integral channel-0
    values; then ``x`` in the model's ``dtype`` (a float64 or integer history is cast, not a
    dtype error deep inside the model). ``ValueError`` naming the problem otherwise."""
    check_history(x, mask, min_d)
    valid = None if mask is None else mask.to(device=x.device, dtype=torch.bool)[..., None]
    flags = x[..., 1]
    bad = (flags != 0) & (flags != 1)
    if valid is not None:
        bad &= valid
    if bad.any():
        raise ValueError(f"the intervened flags (channel 1) must be 0 or 1, got {flags[bad][0]}")
    if counts and x.is_floating_point():
        fractional = x[..., 0] != x[..., 0].round()
        if valid is not None:
            fractional &= valid
        if fractional.any():
            raise ValueError(
                "this model reads count data: channel 0 must hold integer counts, got "
                f"{x[..., 0][fractional][0]}"
            )
    return x if x.dtype == dtype else x.to(dtype)


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


def observation_space(n: int, d: int, belief: bool = False) -> spaces.Dict:
    """One environment's observation space: history ``(n, d, 2)``, validity mask ``(n,)`` and,
    with ``belief``, the reward model's current edge probabilities ``(d, d)``."""
    entries = {
        "history": spaces.Box(-np.inf, np.inf, shape=(n, d, 2), dtype=np.float32),
        "mask": spaces.Box(0.0, 1.0, shape=(n,), dtype=np.float32),
    }
    if belief:
        entries["belief"] = spaces.Box(0.0, 1.0, shape=(d, d), dtype=np.float32)
    return spaces.Dict(entries)


def required_belief(belief: Any, reader: str) -> Any:
    """``belief`` itself; ``ValueError`` naming ``reader`` when it is None (the environment
    was made without ``observe_belief=True``)."""
    if belief is None:
        raise ValueError(
            f"{reader} reads the edge probabilities ('belief'): make the environment with "
            "observe_belief=True"
        )
    return belief


def has_belief(space: spaces.Space) -> bool:
    """Whether a causal-design observation space carries the ``belief`` entry."""
    return isinstance(space, spaces.Dict) and "belief" in space.spaces


def batched_belief(observation: dict[str, Any], d: int) -> np.ndarray | None:
    """The observation's ``belief`` as float32 ``(B, d, d)`` (``None`` when it has none);
    ``ValueError`` unless it is ``(d, d)`` or ``(B, d, d)`` with entries in ``[0, 1]``."""
    if "belief" not in observation:
        return None
    belief = _float32_array(observation["belief"])
    if belief.ndim == 2:
        belief = belief[None]
    if belief.ndim != 3 or belief.shape[1:] != (d, d):
        raise ValueError(
            f"belief must have shape (d, d) or (B, d, d) with d={d}, got {belief.shape}"
        )
    if not ((belief >= 0) & (belief <= 1)).all():
        raise ValueError("belief must hold probabilities in [0, 1]")
    return belief


def history_space_dims(space: spaces.Space) -> tuple[int, int]:
    """``(N, d)`` of a causal-design observation space; ``ValueError`` if it is not one."""
    if not isinstance(space, spaces.Dict) or set(space.spaces) - {"belief"} != {"history", "mask"}:
        raise ValueError(
            "expected a Dict observation space with keys 'history' and 'mask' (and "
            f"optionally 'belief'), got {space}"
        )
    shape = space["history"].shape
    if len(shape) != 3 or shape[-1] != 2 or space["mask"].shape != shape[:1]:
        raise ValueError(
            "expected 'history' of shape (N, d, 2) and 'mask' of shape (N,), got "
            f"{shape} and {space['mask'].shape}"
        )
    return shape[0], shape[1]
