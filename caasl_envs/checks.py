"""Argument checks shared by the environments, simulators and the benchmark harness."""

from __future__ import annotations

import numpy as np


def check_int(name: str, value: object, low: int) -> int:
    """``value`` as an ``int``; ``ValueError`` naming ``name`` unless it is an integer >= ``low``
    (``bool`` and floats such as ``2.0`` are refused: they are usually a mistake)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
