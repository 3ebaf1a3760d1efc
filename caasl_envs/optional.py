"""Optional dependencies: imported where a feature needs them, one line naming the extra if absent.

``pip install caasl`` installs what ``gym.make``, the reward models, ``caasl demo``,
``caasl train`` and ``caasl bench`` import. The rest is optional, in a pip extra each:

=================  ===============  ==================================================
extra              import name      what it adds
=================  ===============  ==================================================
``tensorboard``    tensorboard      TensorBoard logs of ``caasl train`` (else CSV)
``ray``            ray              ``caasl bench --backend ray``
``hub``            huggingface_hub  ``load_official_avici`` (download official AVICI)
``bench``          causallearn      the GES baseline of ``benchmarks/reward_quality.py``
``zoo``            rl_zoo3          ``python -m rl_zoo3.train ... --gym-packages caasl_envs``
``official``       avici, jax, ...  the official JAX AVICI (side-by-side benchmark)
``real``           cdt, pgmpy       rebuilding the shipped real-data files
=================  ===============  ==================================================

Use :func:`require` instead of a bare ``import`` for each of them::

    ray = require("ray", extra="ray", purpose="backend 'ray'")

A missing module is then a :class:`MissingDependencyError` whose message is the single line
``backend 'ray' needs ray, an optional dependency: pip install 'caasl[ray]'``; the ``caasl``
command prints it without a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: ``{import name: pip extra}`` of the optional dependencies
EXTRAS: dict[str, str] = {
    "tensorboard": "tensorboard",
    "ray": "ray",
    "huggingface_hub": "hub",
    "causallearn": "bench",
    "rl_zoo3": "zoo",
    "avici": "official",
    "jax": "official",
    "haiku": "official",
    "optax": "official",
    "cdt": "real",
    "pgmpy": "real",
}


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the pip extra to install."""


def missing_message(module: str, purpose: str, extra: str | None = None) -> str:
    """The one-line message for ``purpose`` lacking ``module`` (``extra``: default from
    :data:`EXTRAS`)."""
    extra = extra or EXTRAS[module.split(".")[0]]
    top = module.split(".")[0]
    return f"{purpose} needs {top}, an optional dependency: pip install 'caasl[{extra}]'"


def require(module: str, purpose: str, extra: str | None = None) -> ModuleType:
    """``import module``, or a :class:`MissingDependencyError` with one line naming the extra.

    :param module: the import name, e.g. ``"ray"`` or ``"torch.utils.tensorboard"``.
    :param purpose: what needs it, the subject of the message (``"backend 'ray'"``).
    :param extra: the pip extra that installs it (default: :data:`EXTRAS` of its top package).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(missing_message(module, purpose, extra)) from err


def available(module: str) -> bool:
    """Whether ``import module`` succeeds (it is imported if so)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


__all__ = ["EXTRAS", "MissingDependencyError", "available", "missing_message", "require"]
