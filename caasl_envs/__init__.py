"""caasl_envs: causal design environments on Gymnasium.

Importing the package registers the environment ids (see the README's table).
"""

from caasl_envs import metrics
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
from caasl_envs.sb3 import SB3VecEnvAdapter, make_sb3_vec_env
from caasl_envs.vector import CausalDesignVectorEnv

register_envs()

__all__ = [
    "ENV_IDS",
    "BatchedRNG",
    "CausalDesignCore",
    "CausalDesignEnv",
    "CausalDesignVectorEnv",
    "RewardModel",
    "SB3VecEnvAdapter",
    "available_reward_models",
    "load_reward_model",
    "make_sb3_vec_env",
    "metrics",
    "register_reward_model",
]
