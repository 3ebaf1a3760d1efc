"""Safe loading of Stable-Baselines3 zips (CAASL and any SB3 or sb3-contrib model).

SB3 keeps what JSON cannot hold (spaces, the policy and replay-buffer classes, schedules,
``train_freq``, the last observation, ...) as base64 cloudpickle inside the zip's ``data``
entry, and ``BaseAlgorithm.load`` unpickles it: a crafted zip runs whatever code it names.
:func:`safe_custom_objects` unpickles those entries itself with :class:`AllowListUnpickler`
and hands the results to SB3's ``load`` as ``custom_objects``, so SB3 unpickles nothing. The
weights (``*.pth``) SB3 already reads with ``torch.load(weights_only=True)``.

The allow-list resolves only

* numpy array, scalar, dtype and random-generator reconstruction,
* classes of the libraries a model is made of (Gymnasium spaces; SB3, sb3-contrib and CAASL
  policies, features extractors, replay buffers, schedules, action noise, enums and
  ``TrainFreq``;
  torch optimizers and activation modules), under their current or old module names
  (:mod:`caasl_envs.moved`),
* ``collections.deque``/``OrderedDict`` and builtin containers,

and refuses to set attributes on a class or function, and a plain ``env`` entry (a name SB3's
``load`` would hand to ``gym.make``, which imports the module it names). Anything else (``os.system``,
``builtins.eval``, a pickled function or lambda, a class from the user's own module) is an
:class:`UnsafePickleError` naming the entry and the opt-in ``trust_pickles=True``
(CLI ``--trust-pickles``), which restores SB3's plain loading for a file one trusts.
"""

from __future__ import annotations

import base64
import builtins
import collections
import enum
import importlib
import io
import json
import pickle
import types
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import IO, Any

from caasl_envs.moved import current_module_name

#: top-level packages whose modules the unpickler may import
_PACKAGES = frozenset(
    {"numpy", "gymnasium", "stable_baselines3", "sb3_contrib", "caasl_agent", "caasl_envs", "torch"}
)
_BUILTINS = frozenset(
    {"set", "frozenset", "bytearray", "bytes", "slice", "complex", "range", "tuple", "list"}
    | {"dict", "int", "float", "str", "bool"}
)
#: module-level functions (not classes) that rebuild numpy objects from their pickled state
_NUMPY_FUNCTIONS = {
    "numpy._core.numeric": ("_frombuffer",),
    "numpy._core.multiarray": ("_reconstruct", "scalar"),
    "numpy.random._pickle": ("__generator_ctor", "__bit_generator_ctor", "__randomstate_ctor"),
    "numpy.random.bit_generator": ("__pyx_unpickle_SeedSequence",),
}


class UnsafePickleError(ValueError):
    """A zip entry needs an object that safe loading does not rebuild."""


@cache
def _allowed_functions() -> tuple[Any, ...]:
    import numpy as np
    from stable_baselines3.common.type_aliases import TrainFreq

    functions = [np.dtype, np.ndarray, collections.deque, collections.OrderedDict]
    functions.append(TrainFreq)
    for module, names in _NUMPY_FUNCTIONS.items():
        functions += [getattr(importlib.import_module(module), name) for name in names]
    return tuple(functions)


@cache
def _allowed_bases() -> tuple[type, ...]:
    import gymnasium
    import numpy as np
    import torch
    from stable_baselines3.common import buffers, noise, policies, torch_layers

    return (
        gymnasium.spaces.Space,
        policies.BasePolicy,
        torch_layers.BaseFeaturesExtractor,
        buffers.BaseBuffer,
        noise.ActionNoise,
        torch.optim.Optimizer,
        np.dtype,
        np.generic,
        np.random.BitGenerator,
        np.random.Generator,
        np.random.SeedSequence,
        np.random.RandomState,
    )


def _is_allowed(obj: Any) -> bool:
    if any(obj is allowed for allowed in _allowed_functions()):
        return True
    if not isinstance(obj, type) or obj.__module__.split(".")[0] not in _PACKAGES:
        return False
    if obj.__module__ == "stable_baselines3.common.utils":  # FloatSchedule, LinearSchedule, ...
        return obj.__name__.endswith("Schedule")
    if obj.__module__ == "torch.nn.modules.activation":  # activation_fn of policy_kwargs
        return True
    return issubclass(obj, (*_allowed_bases(), enum.Enum))


def _resolve(module: str, name: str) -> Any:
    """The object ``module.name`` names, importing only modules of the allowed packages."""
    if module == "builtins":
        return getattr(builtins, name) if name in _BUILTINS else None
    module = current_module_name(module)
    if module.startswith("numpy.core"):  # numpy 1 pickles name what numpy 2 keeps in numpy._core
        module = "numpy._core" + module[len("numpy.core") :]
    if module != "collections" and module.split(".")[0] not in _PACKAGES:
        return None
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


class AllowListUnpickler(pickle._Unpickler):
    """Unpickler that rebuilds only allow-listed objects (module docstring); anything else is
    an :class:`UnsafePickleError` naming it. The pure-Python unpickler, so that ``BUILD`` (which
    sets attributes) can be refused on classes, functions and modules."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        obj = _resolve(module, name)
        if obj is None or not _is_allowed(obj):
            raise UnsafePickleError(f"{module}.{name}")
        return obj

    def load_build(self) -> None:
        target = self.stack[-2]
        if isinstance(
            target, type | types.FunctionType | types.BuiltinFunctionType | types.ModuleType
        ):
            raise UnsafePickleError(f"setting attributes of {target!r}")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`AllowListUnpickler`."""
    return AllowListUnpickler(io.BytesIO(data)).load()


def read_zip_data(path: str | Path | IO[bytes]) -> tuple[str, dict[str, Any]]:
    """``(name, data)``: the display name of ``path`` and its zip's parsed ``data`` entry."""
    if isinstance(path, str | Path):
        path = Path(path)
        if not path.exists() and path.with_suffix(".zip").is_file():
            path = path.with_suffix(".zip")  # as SB3's load does
        if not path.is_file():
            raise FileNotFoundError(f"no model zip at {path}")
        name, source = str(path), path
    else:
        name, source, start = repr(path), path, path.tell()
    try:
        with zipfile.ZipFile(source) as archive:
            if "data" not in archive.namelist():
                raise ValueError(f"{name} is not a Stable-Baselines3 zip (no 'data' entry)")
            data = json.loads(archive.read("data"))
    except zipfile.BadZipFile as err:
        raise ValueError(f"{name} is not a zip file ({err})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{name}: the 'data' entry is not valid JSON ({err})") from None
    finally:
        if not isinstance(source, Path):
            source.seek(start)  # SB3 reads the same file object next
    if not isinstance(data, dict):
        raise ValueError(f"{name}: the 'data' entry is not a JSON object")
    return name, data


def safe_custom_objects(
    path: str | Path | IO[bytes], custom_objects: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``custom_objects`` for SB3's ``load`` of ``path``: ``custom_objects`` plus every pickled
    entry of the zip's ``data`` that it does not name, unpickled with the allow-list.

    :raises UnsafePickleError: an entry needs an object outside the allow-list.
    :raises ValueError: ``path`` is not a Stable-Baselines3 zip.
    """
    name, data = read_zip_data(path)
    objects = dict(custom_objects or {})
    if "env" in data and "env" not in objects:  # SB3 never saves it; load would gym.make it
        raise UnsafePickleError(
            f"{name}: entry 'env' (which Stable-Baselines3 does not save) would make an "
            "environment the file names, importing its module; load with trust_pickles=True "
            "(CLI: --trust-pickles) only a file you trust"
        )
    for key, item in data.items():
        if key in objects or not (isinstance(item, dict) and ":serialized:" in item):
            continue
        try:
            objects[key] = restricted_loads(base64.b64decode(item[":serialized:"]))
        except UnsafePickleError as err:
            raise UnsafePickleError(
                f"{name}: entry {key!r} needs {err}, which safe loading does not rebuild; "
                "load with trust_pickles=True (CLI: --trust-pickles) only a file you trust, "
                f"or pass custom_objects={{{key!r}: ...}}"
            ) from None
        except Exception as err:  # a truncated or garbled pickle: pickle raises many types
            raise ValueError(f"{name}: entry {key!r} is corrupt ({err})") from None
    return objects


def load_checked(load: Callable[..., Any], path: str | Path | IO[bytes], **kwargs: Any) -> Any:
    """``load(path, **kwargs)`` (an SB3 ``load``), with a corrupt weights entry or weights that
    do not fit the saved model a ``ValueError`` naming ``path`` instead of torch's error."""
    try:
        return load(path, **kwargs)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: cannot load the model's weights ({reason})") from err


__all__ = [
    "AllowListUnpickler",
    "UnsafePickleError",
    "load_checked",
    "read_zip_data",
    "restricted_loads",
    "safe_custom_objects",
]
