"""Argument checks shared by the environments, simulators, reward models and the harness."""

from __future__ import annotations

import math

import numpy as np
import torch


def check_int(name: str, value: object, low: int) -> int:
    """``value`` as an ``int``; ``ValueError`` naming ``name`` unless it is an integer >= ``low``
    (``bool`` and floats such as ``2.0`` are refused: they are usually a mistake)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_float(
    name: str, value: object, low: float = -math.inf, high: float = math.inf, open_low: bool = False
) -> float:
    """``value`` as a ``float``; ``ValueError`` naming ``name`` unless it is a finite real number
    in ``[low, high]`` (``(low, high]`` with ``open_low``). ``bool`` and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    bounds_ok = (value > low if open_low else value >= low) and value <= high
    if not (math.isfinite(value) and bounds_ok):
        interval = f"{'(' if open_low else '['}{low}, {high}]"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def check_bool(name: str, value: object) -> bool:
    """``value`` as a ``bool``; ``ValueError`` naming ``name`` unless it is ``True``/``False``
    (strings such as ``"no"`` and numbers are refused: they are usually a mistake)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU (the only fallback); ``ValueError`` naming
    ``device`` when it is unknown or not on this machine (``"cuda"`` without a GPU, ``"cuda:7"``
    with fewer GPUs)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:  # torch's message lists every device type it knows
        raise ValueError(f"unknown device {device!r}: {err}") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            raise ValueError(
                f"device {device!r} is not available: this machine has {count} CUDA device(s); "
                "use 'cpu' or 'auto'"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} is not available on this machine; use 'cpu' or 'auto'")
    return resolved


DEFAULT_GRAPH_DEGREE = 3.0
"""The simulators' default ``graph_degree``: on graphs of ``d <= 3`` variables it means the
densest prior the graph allows (the Erdős–Rényi edge probability is capped at 0.99 and the
scale-free ``m`` at ``d - 1``), so it is accepted there; any other value above ``d - 1`` is
refused by :func:`check_graph_degree`."""


def check_graph_degree(degree: object, d: int) -> None:
    """``ValueError`` naming ``graph_degree`` when it is a number above ``d - 1`` (more parents
    than a variable of a ``d``-variable DAG can have) other than the default
    :data:`DEFAULT_GRAPH_DEGREE`; ``None`` (the prior's default) and non-numbers (refused by
    the prior's own check) pass."""
    numeric = isinstance(degree, int | float | np.number) and not isinstance(degree, bool)
    if numeric and degree != DEFAULT_GRAPH_DEGREE and degree > d - 1:
        raise ValueError(
            f"graph_degree={degree!r} is larger than d - 1 = {d - 1}, the most parents a variable "
            f"of a {d}-variable graph can have; choose graph_degree <= {d - 1} or a larger d"
        )


def check_reset_options(options: object, known: tuple[str, ...] = ()) -> None:
    """``ValueError`` unless ``options`` (of ``reset(options=...)``) is None or a dict whose keys
    are all in ``known`` (the environments take none today: a typo must not pass silently)."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise ValueError(f"reset options must be a dict or None, got {options!r}")
    unknown = sorted(set(options) - set(known), key=str)
    if unknown:
        takes = f"takes only {list(known)}" if known else "takes none"
        raise ValueError(
            f"unknown reset option(s) {unknown}: reset(options=...) {takes}; set the environment "
            "up with its constructor's keyword arguments"
        )
