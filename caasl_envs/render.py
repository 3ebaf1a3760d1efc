"""Pictures of an episode for ``render()``: the current edge posterior beside the true graph."""

from __future__ import annotations

import os
import sys

import numpy as np

_GAP = 1  # cells of white between the two panels


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        sys.platform in ("darwin", "win32")
    )


#: ``render_mode`` values :class:`~caasl_envs.env.CausalDesignEnv` accepts here: ``"human"``
#: (a Matplotlib window) only where a display exists
RENDER_MODES = ("rgb_array", "human") if _has_display() else ("rgb_array",)


def posterior_image(probs: np.ndarray, graph: np.ndarray, cell: int = 12) -> np.ndarray:
    """An RGB image ``(d * cell, (2 d + 1) * cell, 3)`` uint8: left the edge probabilities
    ``probs (d, d)`` (entry ``i -> j`` at row ``i``, column ``j``; white 0 to dark blue 1), right
    the true graph ``graph (d, d)`` in the same colours, with a white gap between."""
    probs = np.clip(np.nan_to_num(np.asarray(probs, dtype=np.float64)), 0.0, 1.0)
    graph = np.asarray(graph, dtype=np.float64)
    d = probs.shape[0]
    gap = np.zeros((d, _GAP))
    panels = np.concatenate([probs, gap, graph], axis=1)  # (d, 2d + 1) in [0, 1]
    dark_blue = np.array([8.0, 48.0, 107.0])
    rgb = 255.0 + panels[..., None] * (dark_blue - 255.0)  # (d, 2d + 1, 3)
    return np.kron(rgb, np.ones((cell, cell, 1))).round().astype(np.uint8)


def show(image: np.ndarray, title: str) -> None:
    """Draw ``image`` in a Matplotlib window (``render_mode="human"``)."""
    import matplotlib.pyplot as plt

    plt.figure("caasl").clear()
    plt.imshow(image, interpolation="nearest")
    plt.title(title)
    plt.axis("off")
    plt.pause(0.001)


__all__ = ["RENDER_MODES", "posterior_image", "show"]
