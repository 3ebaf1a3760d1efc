"""Simulators of hidden causal systems, batched over environments.

A simulator is a :class:`SimulatorPrior` registered under a name (:func:`register_simulator`);
the environments' ``simulator`` keyword picks it.
"""

from collections.abc import Callable
from typing import Protocol

import torch

from caasl_envs.registry import Registry
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm.linear import (
    LINEAR_INTERVENTIONS,
    NOISE_FAMILIES,
    LinearSCM,
    LinearSCMPrior,
    standard_noise,
)
from caasl_envs.scm.sergio import (
    SERGIO_INTERVENTIONS,
    TECHNICAL_NOISE,
    Measurement,
    SergioDynamics,
    SergioGRN,
    SergioPrior,
    TechnicalNoise,
)

__all__ = [
    "LINEAR_INTERVENTIONS",
    "NOISE_FAMILIES",
    "LinearSCM",
    "LinearSCMPrior",
    "Measurement",
    "SERGIO_INTERVENTIONS",
    "SergioDynamics",
    "SergioGRN",
    "SergioPrior",
    "TECHNICAL_NOISE",
    "TechnicalNoise",
    "standard_noise",
]

#: Simulator families by name; the environments' ``simulator`` kwarg picks one.
SIMULATORS: "Registry[Callable[..., SimulatorPrior]]" = Registry("simulator")
#: what an action sets: targets and values (``[-1, 1]^(2d)``) or targets only (``[-1, 1]^d``)
ACTION_KINDS = ("target_value", "target_only")


class CausalSystem(Protocol):
    """The hidden systems of ``B`` environments, as :meth:`SimulatorPrior.sample` returns them."""

    #: ``(B, d, d)`` float 0/1, ``graph[b, i, j] = 1`` for an edge ``i -> j``
    graph: torch.Tensor

    def sample(
        self, rng: BatchedRNG, n: int, targets: torch.Tensor | None, values: torch.Tensor | None
    ) -> torch.Tensor:
        """``(B, n, d)`` samples under an intervention: ``targets`` ``(B, d)`` bool (``None``:
        observational), ``values`` ``(B, d)`` (``None`` for ``target_only`` simulators),
        drawn from ``rng`` only (so that seeds reproduce them)."""
        ...


class SimulatorPrior(Protocol):
    """A simulator family: built as ``prior(d=d, **kwargs)`` from the environment's ``d`` and
    its extra keyword arguments (validate them in the constructor)."""

    action_kind: str  # one of ACTION_KINDS
    default_reward_model: str  # a registered reward-model name

    def sample(self, rng: BatchedRNG) -> CausalSystem:
        """New hidden systems, one per generator of ``rng``."""
        ...


def register_simulator(name: str, prior: Callable[..., SimulatorPrior]) -> None:
    """Make ``simulator=name`` (any environment id or ``CausalDesignEnv``) use ``prior``.

    Register at import time of the module that defines ``prior``, so that worker processes
    (``caasl bench --workers``) that import it have it too.
    """
    missing = [
        a for a in ("sample", "action_kind", "default_reward_model") if not hasattr(prior, a)
    ]
    if missing:
        raise TypeError(f"simulator {name!r}: {prior!r} lacks {missing} (see SimulatorPrior)")
    if prior.action_kind not in ACTION_KINDS:
        raise ValueError(
            f"simulator {name!r}: action_kind must be one of {ACTION_KINDS}, got {prior.action_kind!r}"
        )
    SIMULATORS.register(name, prior)


register_simulator("linear", LinearSCMPrior)
register_simulator("sergio", SergioPrior)


__all__ += ["ACTION_KINDS", "SIMULATORS", "CausalSystem", "SimulatorPrior", "register_simulator"]

# Nonlinear (random-Fourier-feature) mechanisms, registered through the public hook.
from caasl_envs.scm.rff import RFFSCMPrior  # noqa: E402

register_simulator("rff", RFFSCMPrior)

# Real and semi-real systems (caasl_envs/real, docs/real-data.md), through the same hook.
from caasl_envs.real.networks import GeneNetworkPrior  # noqa: E402
from caasl_envs.real.sachs import SachsPrior  # noqa: E402

register_simulator("sachs", SachsPrior)
register_simulator("gene_network", GeneNetworkPrior)
