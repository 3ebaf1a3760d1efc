"""caasl_envs: causal design environments on Gymnasium.

Importing the package registers the environment ids (see the README's table).
"""

from caasl_envs.reward import (
    RewardModel,
    available_reward_models,
    load_reward_model,
    register_reward_model,
)
from caasl_envs.rng import BatchedRNG

__all__ = [
    "BatchedRNG",
    "RewardModel",
    "available_reward_models",
    "load_reward_model",
    "register_reward_model",
]
