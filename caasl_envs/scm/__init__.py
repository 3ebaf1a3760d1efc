"""Simulators of hidden causal systems, batched over environments."""

from caasl_envs.scm.linear import (
    LINEAR_INTERVENTIONS,
    NOISE_FAMILIES,
    LinearSCM,
    LinearSCMPrior,
    standard_noise,
)

__all__ = [
    "LINEAR_INTERVENTIONS",
    "NOISE_FAMILIES",
    "LinearSCM",
    "LinearSCMPrior",
    "standard_noise",
]

#: Simulator families by name; the environments' ``simulator`` kwarg picks one.
SIMULATORS: dict[str, type] = {"linear": LinearSCMPrior}
__all__ += ["SIMULATORS"]
