"""caasl_envs: causal design environments on Gymnasium.

Importing the package registers the environment ids (see the README's table).
"""

from caasl_envs import metrics
from caasl_envs._version import __version__
from caasl_envs.core import CausalDesignCore
from caasl_envs.env import CausalDesignEnv
from caasl_envs.registration import ENV_IDS, register_envs
from caasl_envs.reward import (
    RewardModel,
    available_reward_models,
    load_reward_model,
    register_reward_model,
)
from caasl_envs.rng import BatchedRNG
from caasl_envs.vector import CausalDesignVectorEnv

register_envs()

#: names loaded on first use: ``{name: module}`` (Stable-Baselines3 costs ~0.25 s to import)
_LAZY = {"SB3VecEnvAdapter": "caasl_envs.sb3", "make_sb3_vec_env": "caasl_envs.sb3"}


def __getattr__(name: str):
    """The names of :data:`_LAZY`, imported from their module when first asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'caasl_envs' has no attribute {name!r}")


__all__ = [
    "ENV_IDS",
    "BatchedRNG",
    "CausalDesignCore",
    "CausalDesignEnv",
    "CausalDesignVectorEnv",
    "RewardModel",
    "SB3VecEnvAdapter",
    "__version__",
    "available_reward_models",
    "load_reward_model",
    "make_sb3_vec_env",
    "metrics",
    "register_reward_model",
]
