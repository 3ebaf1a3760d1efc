"""One validation layer for :class:`~caasl_agent.CAASL`'s hyper-parameters.

Every range follows from what the parameter means, and a value outside it ends in a one-line
``ValueError`` that names the argument, before SB3 or torch sees it (where it would otherwise be
accepted silently, as ``gamma=2``, or fail deep inside, as ``batch_size=0``):

* ``0 < gamma <= 1`` (a discount), ``0 < tau <= 1`` (a Polyak coefficient);
* learning rates: a positive finite number or a callable schedule (strings are refused);
* ``ent_coef``: a positive number, ``"auto"`` or ``"auto_X"`` with ``X > 0`` (SB3's initial
  value); ``target_entropy``: ``"auto"`` or a finite number;
* sizes and counts: ``buffer_size``, ``batch_size``, ``train_freq``, ``target_update_interval``,
  ``stats_window_size``, the REDQ ``N``/``M``/``G`` and the policy's network sizes ``>= 1``;
  ``gradient_steps >= 1`` or ``-1`` (SB3: as many as environment steps in the rollout);
  ``learning_starts >= 0``;
* ``device``: one that exists here (:func:`caasl_envs.checks.resolve_device`: ``"cuda:7"``
  without that GPU is an error, not a silent CPU);
* :meth:`CAASL.learn`: ``total_timesteps >= 1``, ``log_interval >= 1``, and the model's
  hyper-parameters again (a loaded model or one whose attributes were set after construction).

:func:`check_hyperparameters` runs at the start of ``CAASL.__init__`` (on its arguments) and
:func:`check_learn` at the start of ``CAASL.learn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from caasl_agent.policies import TARGET_HEADS
from caasl_envs.checks import check_float, check_int, resolve_device

_TRAIN_FREQ_UNITS = ("step", "episode")
_ENCODER_SIZES = ("embed_dim", "n_layers", "n_heads", "ff_dim")


def _check_rate(name: str, value: object) -> None:
    """A learning rate: a positive finite number or a callable schedule."""
    if callable(value):
        return
    if isinstance(value, str):
        raise ValueError(
            f"{name} must be a positive number or a schedule, got the string {value!r}"
        )
    check_float(name, value, 0.0, open_low=True)


def _check_optional_rate(name: str, value: object) -> None:
    if value is not None:
        _check_rate(name, value)


def _check_unit_interval(name: str, value: object) -> None:
    check_float(name, value, 0.0, 1.0, open_low=True)


def _check_ent_coef(name: str, value: object) -> None:
    """``"auto"``, ``"auto_X"`` (``X > 0``) or a positive number."""
    if isinstance(value, str):
        initial = value[len("auto_") :] if value.startswith("auto_") else None
        try:
            ok = value == "auto" or (initial is not None and 0 < float(initial) < math.inf)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"{name} must be 'auto', 'auto_X' with X > 0 or a number > 0, got {value!r}"
            )
        return
    check_float(name, value, 0.0, open_low=True)


def _check_target_entropy(name: str, value: object) -> None:
    if value != "auto":
        if isinstance(value, str):
            raise ValueError(f"{name} must be 'auto' or a number, got {value!r}")
        check_float(name, value)


def _check_optional_float(name: str, value: object) -> None:
    if value is not None:
        check_float(name, value)


def _positive(name: str, value: object) -> None:
    check_int(name, value, 1)


def _check_learning_starts(name: str, value: object) -> None:
    check_int(name, value, 0)


def _check_nonnegative(name: str, value: object) -> None:
    check_float(name, value, 0.0)


def _check_gradient_steps(name: str, value: object) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value == -1):
        try:
            check_int(name, value, 1)
        except ValueError:
            raise ValueError(f"{name} must be an integer >= 1 or -1, got {value!r}") from None


def _check_train_freq(name: str, value: object) -> None:
    """An integer ``>= 1`` (environment steps) or ``(n >= 1, "step" | "episode")``."""
    if isinstance(value, tuple | list):
        unit = getattr(value[1], "value", value[1]) if len(value) == 2 else None
        if unit not in _TRAIN_FREQ_UNITS:
            raise ValueError(
                f"{name} must be an integer >= 1 or (n, 'step' | 'episode'), got {value!r}"
            )
        value = value[0]
    check_int(name, value, 1)


def _check_seed(name: str, value: object) -> None:
    if value is not None:
        check_int(name, value, 0)


def _check_verbose(name: str, value: object) -> None:
    check_int(name, value, 0)


def _check_actor_q_reduction(name: str, value: object) -> None:
    if value not in ("mean", "min"):
        raise ValueError(f"{name} must be 'mean' or 'min', got {value!r}")


def _check_optional_dict(name: str, value: object) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict or None, got {value!r}")


def _check_policy_kwargs(name: str, value: object) -> None:
    """The network sizes in ``policy_kwargs``: ``net_arch`` and the encoders' sizes ``>= 1``,
    their dropout in ``[0, 1)``, and ``target_head`` one of the actor's target heads."""
    _check_optional_dict(name, value)
    value = value or {}
    head = value.get("target_head", "mlp")
    if head not in TARGET_HEADS:
        raise ValueError(f"{name}['target_head'] must be one of {TARGET_HEADS}, got {head!r}")
    net_arch = value.get("net_arch")
    if net_arch is not None:
        if not isinstance(net_arch, list | tuple):
            raise ValueError(f"{name}['net_arch'] must be a list of layer sizes, got {net_arch!r}")
        for size in net_arch:
            check_int(f"{name}['net_arch'] entry", size, 1)
    for part in ("actor_encoder_kwargs", "critic_encoder_kwargs"):
        encoder = value.get(part)
        _check_optional_dict(f"{name}[{part!r}]", encoder)
        for key in _ENCODER_SIZES:
            if encoder and key in encoder:
                check_int(f"{name}[{part!r}][{key!r}]", encoder[key], 1)
        if encoder and "dropout" in encoder:
            check_float(f"{name}[{part!r}]['dropout']", encoder["dropout"], 0.0, 1.0)
            if encoder["dropout"] == 1.0:
                raise ValueError(f"{name}[{part!r}]['dropout'] must be < 1, got 1.0")


def _check_device(name: str, value: object) -> None:
    try:
        resolve_device(value)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


CHECKS: dict[str, Callable[[str, object], None]] = {
    "learning_rate": _check_rate,
    "critic_learning_rate": _check_rate,
    "ent_coef_learning_rate": _check_optional_rate,
    "buffer_size": _positive,
    "learning_starts": _check_learning_starts,
    "batch_size": _positive,
    "tau": _check_unit_interval,
    "gamma": _check_unit_interval,
    "train_freq": _check_train_freq,
    "gradient_steps": _check_gradient_steps,
    "ensemble_size": _positive,
    "target_subset_size": _positive,
    "critic_updates_per_actor_update": _positive,
    "actor_q_reduction": _check_actor_q_reduction,
    "ent_coef": _check_ent_coef,
    "target_entropy": _check_target_entropy,
    "target_entropy_final": _check_optional_float,
    "target_update_interval": _positive,
    "actor_warmup_steps": _check_learning_starts,
    "imitation_coef": _check_nonnegative,
    "imitation_decay_steps": _positive,
    "replay_buffer_kwargs": _check_optional_dict,
    "stats_window_size": _positive,
    "policy_kwargs": _check_policy_kwargs,
    "verbose": _check_verbose,
    "seed": _check_seed,
    "device": _check_device,
}
"""Argument name -> check ``(name, value)``; one entry for every validated argument of
``CAASL.__init__`` (``env``, ``policy``, the replay buffer class and ``tensorboard_log`` are
checked where they are used)."""


def check_hyperparameters(arguments: Mapping[str, Any]) -> None:
    """``ValueError`` naming the first argument of ``arguments`` (``CAASL.__init__``'s
    ``locals()``: other names are ignored) outside its range (see the module docstring)."""
    for name, check in CHECKS.items():
        if name in arguments:
            check(name, arguments[name])
    ensemble, subset = arguments.get("ensemble_size"), arguments.get("target_subset_size")
    if ensemble is not None and subset is not None and subset > ensemble:
        raise ValueError(
            f"target_subset_size (M={subset}) must be in [1, ensemble_size={ensemble}]"
        )


def check_learn(model: Any, total_timesteps: object, log_interval: object = 1) -> None:
    """``ValueError`` naming the argument unless ``total_timesteps`` is an integer ``>= 1``,
    ``log_interval`` one or None (no logging) and every hyper-parameter of ``model`` (a
    ``CAASL``) is in range."""
    check_int("total_timesteps", total_timesteps, 1)
    if log_interval is not None:
        check_int("log_interval", log_interval, 1)
    current = {name: getattr(model, name) for name in CHECKS if hasattr(model, name)}
    current.pop("seed", None)  # SB3 keeps the seed it was given; checked at construction
    check_hyperparameters(current)
