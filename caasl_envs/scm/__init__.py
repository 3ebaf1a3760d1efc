"""Simulators of hidden causal systems, batched over environments."""

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
SIMULATORS: dict[str, type] = {"linear": LinearSCMPrior, "sergio": SergioPrior}
__all__ += ["SIMULATORS"]
