"""Reward models: the :class:`RewardModel` protocol, shipped models and a name registry.

``load_reward_model(name_or_path)`` accepts a registered name (see
:func:`available_reward_models`) or, once the AVICI importer is present, a folder holding an
official AVICI checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from caasl_envs.reward.base import (
    ConstantRewardModel,
    PartialCorrelationRewardModel,
    RewardModel,
    check_history,
)
from caasl_envs.reward.exact import ExactLinearGaussianPosterior

_REGISTRY: dict[str, Callable[..., RewardModel]] = {}


def register_reward_model(name: str, loader: Callable[..., RewardModel]) -> None:
    """Make ``load_reward_model(name)`` call ``loader(**kwargs)``."""
    _REGISTRY[name] = loader


def available_reward_models() -> list[str]:
    """Names accepted by :func:`load_reward_model`."""
    return sorted(_REGISTRY)


def load_reward_model(name: str | Path, **kwargs) -> RewardModel:
    """A reward model by registered name, or from an official AVICI checkpoint folder."""
    key = str(name)
    if key in _REGISTRY:
        return _REGISTRY[key](**kwargs)
    if Path(key).is_dir():
        from caasl_envs.reward.official import load_official_checkpoint

        return load_official_checkpoint(key, **kwargs)
    raise ValueError(
        f"unknown reward model {key!r}: not a registered name ({', '.join(available_reward_models())}) "
        "and not a folder with an official AVICI checkpoint"
    )


register_reward_model("constant-prior", ConstantRewardModel)
register_reward_model("partial-correlation", PartialCorrelationRewardModel)
register_reward_model("exact-linear-gaussian", ExactLinearGaussianPosterior)

__all__ = [
    "ConstantRewardModel",
    "ExactLinearGaussianPosterior",
    "PartialCorrelationRewardModel",
    "RewardModel",
    "available_reward_models",
    "check_history",
    "load_reward_model",
    "register_reward_model",
]
