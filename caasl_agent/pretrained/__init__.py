"""Shipped CAASL policies: ``available_policies()`` and ``load_policy(name)``.

Each policy is a ``<name>.zip`` saved by :meth:`caasl_agent.CAASL.save`, next to a model card
``<name>.md`` (command, config, seed, steps, wall time, hardware, validation return at the
chosen checkpoint). Names say the simulator they were trained on ("linear", "sergio").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from caasl_agent.caasl import CAASL

_DIR = Path(__file__).parent


def available_policies() -> list[str]:
    """Names accepted by :func:`load_policy`."""
    return sorted(p.stem for p in _DIR.glob("*.zip"))


def policy_path(name: str) -> Path:
    """The ``.zip`` of a shipped policy; ``ValueError`` naming the choices if ``name`` is not
    one of :func:`available_policies` (a file path or ``../`` is refused: load a file with
    ``CAASL.load(path)`` or the benchmark's ``sb3:PATH``)."""
    path = _DIR / f"{name}.zip"
    if name not in available_policies():
        raise ValueError(
            f"no shipped policy {name!r}; available: {', '.join(available_policies()) or 'none'}"
        )
    return path


def policy_card(name: str) -> str:
    """The model card (Markdown) of a shipped policy."""
    return policy_path(name).with_suffix(".md").read_text()


#: The recommended shipped policy of each simulator family: what ``load_policy()`` (no name)
#: and ``caasl bench --agents caasl`` use. Linear: ``caasl-linear-cut-v2`` (the cut actor with
#: local search, Mahalanobis value signs and values of exactly +-1, chosen over
#: ``caasl-linear-cut-v1`` on validation environments; it needs the belief channel, which the
#: harness turns on; BENCHMARKS.md, "Local search and Mahalanobis signs").
RECOMMENDED = {"linear": "caasl-linear-cut-v2", "sergio": "caasl-sergio-perturbseq-cpu-v0"}


def recommended_policy(simulator: str = "linear") -> str:
    """The name of the recommended policy for a simulator family (``"linear"``, ``"sergio"``)."""
    if simulator not in RECOMMENDED:
        raise ValueError(
            f"no recommended CAASL policy for simulator {simulator!r}; "
            f"families: {sorted(RECOMMENDED)}"
        )
    return RECOMMENDED[simulator]


def load_policy(name: str | None = None, device: str | torch.device = "cpu") -> CAASL:
    """A shipped CAASL policy (default: the recommended linear policy, :data:`RECOMMENDED`);
    ``predict(obs, deterministic=...)`` acts on observations of any d. A policy that reads
    the belief channel needs environments made with ``observe_belief=True`` (the benchmark
    harness turns it on by itself)."""
    if name is None:
        name = recommended_policy()
    from caasl_agent.caasl import CAASL
    from caasl_envs.core import resolve_device
    from caasl_envs.manifest import verify

    path = verify(policy_path(name))  # a truncated or altered file: a ValueError naming it
    resolve_device(device)  # a ValueError naming a bad device, before SB3 loads anything
    return CAASL.load(path, device=device)


__all__ = [
    "RECOMMENDED",
    "available_policies",
    "load_policy",
    "policy_card",
    "policy_path",
    "recommended_policy",
]
