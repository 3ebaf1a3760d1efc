"""Command-line options built from the configuration dataclasses of reward training.

A knob is named once, where it is defined: a dataclass field with ``metadata=option(...)``
(:class:`~caasl_envs.reward.training.trainer.TrainConfig`,
:class:`~caasl_envs.reward.training.trainer.ModelConfig`, the dataset samplers of
:mod:`~caasl_envs.reward.training.data`). :func:`add_options` turns such fields into
``argparse`` options (flag, parser, help, default from the field or from the command line's
own defaults) and :func:`read_options` reads the parsed values back by field name, so that a
command line builds its :class:`TrainConfig` without naming the knobs again. A subclass that
changes a field's default keeps the option of the class that declared it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any

__all__ = [
    "add_options",
    "comma_list",
    "float_list",
    "float_range",
    "int_range",
    "option",
    "read_options",
]


@dataclass(frozen=True)
class _Option:
    flags: tuple[str, ...]
    help: str
    parse: Callable[[str], Any] | None
    argparse: dict[str, Any]


def option(
    *flags: str, help: str = "", parse: Callable[[str], Any] | None = None, **argparse_kwargs: Any
) -> dict[str, Any]:
    """``field(metadata=option(...))``: the field is a command-line option.

    :param flags: its flags (default ``--field-name``).
    :param parse: turns the command line's text into the field's value (default: the type of
        the default; a ``bool`` field is a ``store_true`` switch).
    :param argparse_kwargs: further ``add_argument`` arguments (``choices``...).
    """
    return {"option": _Option(flags, help, parse, argparse_kwargs)}


def _option_field(cls: type, name: str) -> tuple[Field, _Option] | None:
    """The field ``name`` of ``cls`` and the option declared for it (by ``cls`` or a base)."""
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and "option" in declared.metadata:
            return cls.__dataclass_fields__[name], declared.metadata["option"]
    return None


def _options(cls: type, names: Collection[str] | None) -> list[tuple[Field, _Option]]:
    found = [_option_field(cls, f.name) for f in fields(cls)]
    return [x for x in found if x is not None and (names is None or x[0].name in names)]


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    names: Collection[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add an option for every field of the dataclass ``cls`` that declares one (only those in
    ``names`` when given); ``defaults`` overrides field defaults by field name. The parsed value
    lands in ``args.<field name>``."""
    defaults = defaults or {}
    for f, spec in _options(cls, names):
        default = defaults[f.name] if f.name in defaults else _default(f)
        kwargs = dict(spec.argparse)
        if isinstance(default, bool):
            kwargs.setdefault("action", "store_true")
        elif spec.parse is not None:
            kwargs["type"] = spec.parse
        elif default is not None:
            kwargs.setdefault("type", type(default))
        flags = spec.flags or ("--" + f.name.replace("_", "-"),)
        parser.add_argument(*flags, dest=f.name, default=default, help=spec.help or None, **kwargs)


def read_options(
    args: argparse.Namespace, cls: type, names: Collection[str] | None = None
) -> dict[str, Any]:
    """``{field name: parsed value}`` of the options :func:`add_options` added for ``cls``."""
    return {f.name: getattr(args, f.name) for f, _ in _options(cls, names) if hasattr(args, f.name)}


def int_range(text: str) -> tuple[int, int]:
    """``LOW:HIGH`` (or one value ``N`` for ``N:N``) of integers."""
    low, _, high = text.partition(":")
    return int(low), int(high or low)


def float_range(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` (or one value ``P`` for ``P:P``) of reals."""
    low, _, high = text.partition(":")
    return float(low), float(high or low)


def comma_list(text: str) -> tuple[str, ...]:
    """``a,b,c`` -> ``("a", "b", "c")``."""
    return tuple(text.split(","))


def float_list(text: str) -> tuple[float, ...]:
    """``1,2,3`` -> ``(1.0, 2.0, 3.0)``."""
    return tuple(float(v) for v in text.split(","))
