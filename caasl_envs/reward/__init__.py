"""Reward models: the :class:`RewardModel` protocol, shipped models and a name registry.

``load_reward_model(name_or_path)`` accepts a registered name (see
:func:`available_reward_models`) or a folder holding an official AVICI checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from caasl_envs.registry import Registry
from caasl_envs.reward.avici import AVICIModel
from caasl_envs.reward.base import (
    ConstantRewardModel,
    PartialCorrelationRewardModel,
    RewardModel,
    check_history,
)
from caasl_envs.reward.exact import ExactLinearGaussianPosterior
from caasl_envs.reward.gp import GPPosterior
from caasl_envs.reward.knockout import KnockoutAVICIModel, load_avici
from caasl_envs.reward.mcmc import OrderMCMCPosterior
from caasl_envs.reward.official import load_official_avici, load_official_checkpoint

WEIGHTS_DIR = Path(__file__).parent / "weights"
"""Shipped reward-model weights (``<name>.pt``) and their model cards (``<name>.md``)."""

_REGISTRY: Registry[Callable[..., RewardModel]] = Registry("reward model")


def register_reward_model(name: str, loader: Callable[..., RewardModel]) -> None:
    """Make ``load_reward_model(name)`` call ``loader(**kwargs)``.

    :raises ValueError: when ``name`` is already registered (names are never overwritten).
    """
    if not callable(loader):
        raise TypeError(f"reward model {name!r}: the loader must be callable, got {loader!r}")
    _REGISTRY.register(name, loader)


def available_reward_models() -> list[str]:
    """Names accepted by :func:`load_reward_model`."""
    return sorted(_REGISTRY)


def load_reward_model(name: str | Path, **kwargs) -> RewardModel:
    """A reward model by registered name, from a ``.pt`` file written by :meth:`AVICIModel.save`
    (what ``caasl-train-reward --export`` writes), or from an official AVICI checkpoint folder."""
    key = str(name)
    if key in _REGISTRY:
        return _REGISTRY[key](**kwargs)
    if key.endswith(".pt") and Path(key).is_file():
        return load_avici(key, **kwargs)
    if Path(key).is_dir():
        return load_official_checkpoint(key, **kwargs)
    raise ValueError(
        f"unknown reward model {key!r}: not a registered name ({', '.join(available_reward_models())}), "
        "not an AVICIModel .pt file and not a folder with an official AVICI checkpoint"
    )


def is_reward_model_spec(name: str) -> bool:
    """Whether :func:`load_reward_model` would find ``name`` (without loading it)."""
    path = Path(name)
    return name in _REGISTRY or (name.endswith(".pt") and path.is_file()) or path.is_dir()


def _shipped_avici(name: str) -> Callable[..., RewardModel]:
    """Loader of an :class:`AVICIModel` (or :class:`KnockoutAVICIModel`) shipped as
    ``weights/<name>.pt`` (card: ``<name>.md``)."""

    def load(device: str = "cpu") -> RewardModel:
        from caasl_envs.manifest import verify  # here: `python -m caasl_envs.manifest` runs it

        return load_avici(verify(WEIGHTS_DIR / f"{name}.pt"), device=device)

    return load


register_reward_model("constant-prior", ConstantRewardModel)
register_reward_model("partial-correlation", PartialCorrelationRewardModel)
register_reward_model("exact-linear-gaussian", ExactLinearGaussianPosterior)
register_reward_model(
    "exact-linear-scm", partial(ExactLinearGaussianPosterior, local_score="linear-scm")
)
# the same posteriors by order MCMC, for d beyond the order DP (caasl_envs/reward/mcmc.py)
register_reward_model("mcmc-linear-gaussian", OrderMCMCPosterior)
register_reward_model("mcmc-linear-scm", partial(OrderMCMCPosterior, local_score="linear-scm"))
# AVICI trained on each simulator's environment prior (model cards: weights/<name>.md)
register_reward_model("avici-linear-v0", _shipped_avici("avici-linear-v0"))
register_reward_model("avici-linear-v1", _shipped_avici("avici-linear-v1"))
register_reward_model("avici-sergio-v0", _shipped_avici("avici-sergio-v0"))
register_reward_model("avici-sergio-perturbseq-v0", _shipped_avici("avici-sergio-perturbseq-v0"))
# GP posterior for the nonlinear (RFF) environments (caasl_envs/reward/gp.py)
register_reward_model("exact-gp", GPPosterior)
register_reward_model("exact-gp-grid", partial(GPPosterior, hyper="grid"))
register_reward_model("avici-rff-v0", _shipped_avici("avici-rff-v0"))

__all__ = [
    "AVICIModel",
    "ConstantRewardModel",
    "ExactLinearGaussianPosterior",
    "KnockoutAVICIModel",
    "OrderMCMCPosterior",
    "PartialCorrelationRewardModel",
    "RewardModel",
    "available_reward_models",
    "check_history",
    "load_official_avici",
    "load_official_checkpoint",
    "is_reward_model_spec",
    "load_reward_model",
    "register_reward_model",
]
