"""Safe loading of Stable-Baselines3 zips (CAASL and any SB3 or sb3-contrib model).

SB3 keeps what JSON cannot hold (spaces, the policy and replay-buffer classes, schedules,
``train_freq``, the last observation, ...) as base64 cloudpickle inside the zip's ``data``
entry, and ``BaseAlgorithm.load`` unpickles it: a crafted zip runs whatever code it names.
:func:`safe_custom_objects` unpickles those entries itself with :class:`AllowListUnpickler`
and hands the results to SB3's ``load`` as ``custom_objects``, so SB3 unpickles nothing. The
weights (``*.pth``) SB3 already reads with ``torch.load(weights_only=True)``.

Globals are checked against the allow-list **by name before any module is imported**
(:func:`pickled_globals` reads every global a pickle names by disassembling it, and
:meth:`AllowListUnpickler.find_class` checks the name again before its import): a module
runs code when it is imported (``numpy.f2py.__main__`` runs f2py on ``sys.argv``), so only
modules named in :data:`ALLOWED_MODULES` are ever imported, and the object found is checked
once more. The allow-list resolves only

* numpy array, scalar, dtype and random-generator reconstruction,
* classes of the libraries a model is made of (Gymnasium spaces; SB3, sb3-contrib and CAASL
  policies, features extractors, replay buffers, schedules, action noise, enums and
  ``TrainFreq``;
  torch optimizers and activation modules), under their current or old module names
  (:data:`RENAMED_MODULES`),
* ``collections.deque``/``OrderedDict`` and builtin containers,

and refuses to set attributes on a class or function, and a plain ``env`` entry (a name SB3's
``load`` would hand to ``gym.make``, which imports the module it names). Anything else (``os.system``,
``builtins.eval``, a pickled function or lambda, a class from the user's own module) is an
:class:`UnsafePickleError` naming the entry and the opt-in ``trust_pickles=True``
(CLI ``--trust-pickles``), which restores SB3's plain loading for a file one trusts.

Values that point outside the file are dropped: ``tensorboard_log`` (where a later ``learn``
would write) is ``None`` after a safe load (pass ``tensorboard_log=PATH`` to ``load`` or
``trust_pickles=True`` to keep the file's). Sizes are bounded before anything is built
(:func:`check_sizes`): an entry that would unpack to more than this machine's memory, and
``policy_kwargs`` whose networks need more weights than the file's weights entry holds, are a
``ValueError`` naming the file and the size.
"""

from __future__ import annotations

import base64
import builtins
import collections
import enum
import fnmatch
import importlib
import io
import json
import os
import pickle
import pickletools
import types
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import IO, Any

#: Modules renamed before the first release, old name -> current name: the one rename map of
#: the package (older shipped policies name ``caasl_agent.policy``); the unpickler reads a pickled
#: global under its current module name.
RENAMED_MODULES = {
    "caasl_agent.redq": "caasl_agent.caasl",
    "caasl_agent.policy": "caasl_agent.policies",
    "caasl_agent.networks": "caasl_agent.torch_layers",
    "caasl_agent.evaluation": "caasl_agent.bench.runner",
    "caasl_agent.baselines": "caasl_agent.bench.baselines",
    "caasl_agent.suites": "caasl_agent.bench.suites",
    "caasl_agent.reports": "caasl_agent.bench.reports",
    "caasl_agent.bench_cli": "caasl_agent.bench.cli",
    "caasl_envs.reward.train": "caasl_envs.reward.training.train",
    "caasl_envs.reward.train_sergio": "caasl_envs.reward.training.train_sergio",
}

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


#: modules the unpickler may import, by name, decided before any import: each dot-separated
#: part is matched with :func:`fnmatch.fnmatchcase`, and a ``*`` matches one public name part
#: (no leading underscore), so that ``stable_baselines3.*.policies`` never reaches a
#: ``__main__`` or private module
ALLOWED_MODULES = (
    "collections",
    "numpy",
    "numpy.dtypes",
    "numpy._core.multiarray",
    "numpy._core.numeric",
    "numpy.random",
    "numpy.random._pickle",
    "numpy.random.bit_generator",
    "numpy.random.mtrand",
    "numpy.random._generator",
    "numpy.random._mt19937",
    "numpy.random._pcg64",
    "numpy.random._philox",
    "numpy.random._sfc64",
    "gymnasium.spaces",
    "gymnasium.spaces.*",
    "stable_baselines3.*.policies",
    "stable_baselines3.common.buffers",
    "stable_baselines3.common.noise",
    "stable_baselines3.common.policies",
    "stable_baselines3.common.torch_layers",
    "stable_baselines3.common.type_aliases",
    "stable_baselines3.common.utils",
    "sb3_contrib.*.policies",
    "sb3_contrib.common.*.buffers",
    "sb3_contrib.common.*.policies",
    "torch.optim.*",
    "torch.nn.modules.activation",
    "caasl_agent.buffers",
    "caasl_agent.policies",
    "caasl_agent.torch_layers",
)


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


def _current_name(module: str) -> str:
    """``module`` under its current name: moved CAASL modules, numpy 1's ``numpy.core``."""
    module = RENAMED_MODULES.get(module, module)
    if module == "numpy.core" or module.startswith("numpy.core."):  # numpy 2: numpy._core
        module = "numpy._core" + module[len("numpy.core") :]
    return module


def _part_allowed(part: str, pattern: str) -> bool:
    if pattern == "*":
        return part.isidentifier() and not part.startswith("_")
    return fnmatch.fnmatchcase(part, pattern)


def module_allowed(module: str) -> bool:
    """Whether the allow-list lets the unpickler import ``module``, decided from the name alone
    (:data:`ALLOWED_MODULES`; nothing is imported)."""
    parts = _current_name(module).split(".")
    return any(
        len(parts) == len(pattern.split(".")) and all(map(_part_allowed, parts, pattern.split(".")))
        for pattern in ALLOWED_MODULES
    )


def name_allowed(module: str, name: str) -> bool:
    """Whether ``module.name`` may be resolved, from the names alone: ``builtins`` containers,
    or an allowed module and a public attribute path (the numpy rebuild functions excepted)."""
    if module == "builtins":
        return name in _BUILTINS
    if not module_allowed(module):
        return False
    if name in _NUMPY_FUNCTIONS.get(_current_name(module), ()):
        return True
    return all(part.isidentifier() and not part.startswith("_") for part in name.split("."))


def _resolve(module: str, name: str) -> Any:
    """The object ``module.name`` names, importing a module only when its name is allowed
    (:func:`name_allowed`)."""
    if not name_allowed(module, name):
        return None
    if module == "builtins":
        return getattr(builtins, name)
    module = _current_name(module)
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


_MARK = object()


def pickled_globals(data: bytes) -> list[tuple[str, str]]:
    """Every ``(module, name)`` global the pickle ``data`` names, read by disassembling it with
    a symbolic stack (nothing is imported or executed).

    :raises UnsafePickleError: a global whose name the pickle computes rather than spells out,
        or an extension-registry code (``EXT1/2/4``), which names no module.
    :raises ValueError: ``data`` is not a well-formed pickle.
    """
    found: list[tuple[str, str]] = []
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(tuple(arg.split(" ", 1)))
            elif op.name == "STACK_GLOBAL":
                module, name = stack[-2:]
                if not (isinstance(module, str) and isinstance(name, str)):
                    raise UnsafePickleError("a global whose name the pickle computes")
                found.append((module, name))
            elif op.name.startswith("EXT"):
                raise UnsafePickleError(f"extension code {arg} (copyreg registry)")
            _simulate(op, arg, stack, memo)
    except UnsafePickleError:
        raise
    except Exception as err:  # genops raises several types on a malformed pickle
        raise ValueError(f"not a well-formed pickle ({err})") from None
    return found


def pickled_class(serialized: str) -> tuple[str, str] | None:
    """``(module, name)`` of the first global a base64 pickle (a zip's ``data`` entry) names,
    the module under its current name (:data:`RENAMED_MODULES`); ``None`` when it names none
    or is malformed. Read by :func:`pickled_globals`: nothing is imported or executed."""
    try:
        found = pickled_globals(base64.b64decode(serialized))
    except (TypeError, ValueError):  # UnsafePickleError included: no readable name
        return None
    return (_current_name(found[0][0]), found[0][1]) if found else None


def _simulate(op: pickletools.OpcodeInfo, arg: Any, stack: list[Any], memo: dict) -> None:
    """Apply ``op`` to the symbolic ``stack``: strings keep their value, everything else is
    ``None``; the memo keeps what was stored."""
    if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[arg] = stack[-1]
    elif op.name == "MEMOIZE":
        memo[len(memo)] = stack[-1]
    elif op.name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo[arg])
    elif op.name == "DUP":
        stack.append(stack[-1])
    elif op.name == "MARK":
        stack.append(_MARK)
    else:
        before = op.stack_before
        if pickletools.markobject in before:
            while stack.pop() is not _MARK:
                pass
            before = before[: before.index(pickletools.markobject)]
        if before:
            if len(stack) < len(before):
                raise ValueError("stack underflow")
            del stack[-len(before) :]
        value = arg if isinstance(arg, str) and op.name not in ("GLOBAL", "INST") else None
        stack.extend(value for _ in op.stack_after)


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
    """Unpickle ``data`` with :class:`AllowListUnpickler`, after checking every global it
    names by name (:func:`pickled_globals`, :func:`name_allowed`): a refused one is an
    :class:`UnsafePickleError` before any module is imported."""
    for module, name in pickled_globals(data):
        if not name_allowed(module, name):
            raise UnsafePickleError(f"{module}.{name}")
    return AllowListUnpickler(io.BytesIO(data)).load()


def read_zip_data(path: str | Path | IO[bytes]) -> tuple[str, dict[str, Any]]:
    """``(name, data)``: the display name of ``path`` and its zip's parsed ``data`` entry."""
    return _read_zip(path)[:2]


def _read_zip(path: str | Path | IO[bytes]) -> tuple[str, dict[str, Any], dict[str, int]]:
    """``(name, data, sizes)``: :func:`read_zip_data` and each entry's unpacked size in bytes
    (as the zip declares it; :mod:`zipfile` reads no more)."""
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
            sizes = {info.filename: info.file_size for info in archive.infolist()}
            _check_unpacked(name, sizes)
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
    return name, data, sizes


def memory_limit() -> int:
    """Bytes of physical memory of this machine: what a file may ask to allocate at most
    (1 TiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return 2**40


def _gib(size: float) -> str:
    return f"{size / 2**30:.3g} GiB"


def _check_unpacked(name: str, sizes: dict[str, int]) -> None:
    """``ValueError`` naming the entry when one would unpack to more than :func:`memory_limit`
    (a zip bomb)."""
    limit = memory_limit()
    for entry, size in sizes.items():
        if size > limit:
            raise ValueError(
                f"{name}: entry {entry!r} would unpack to {_gib(size)}, more than this "
                f"machine's memory ({_gib(limit)})"
            )


def network_size_lower_bound(policy_kwargs: Any) -> int:
    """A lower bound on the number of weights of the networks ``policy_kwargs`` asks for:
    consecutive products of every ``net_arch`` list of widths (plus the widths, for the input
    layer of at least one feature), ``n_layers * (4 e**2 + 2 e f)`` for a transformer
    encoder's ``embed_dim`` ``e`` and ``ff_dim`` ``f``, and any other ``*_dim`` width."""
    if isinstance(policy_kwargs, list | tuple):
        return sum(network_size_lower_bound(item) for item in policy_kwargs)
    if not isinstance(policy_kwargs, dict):
        return 0
    total = 0
    for key, value in policy_kwargs.items():
        widths = [w for w in value if _is_size(w)] if isinstance(value, list | tuple) else []
        if key == "net_arch" and widths:
            total += sum(widths) + sum(a * b for a, b in zip(widths, widths[1:], strict=False))
        elif str(key).endswith("_dim") and _is_size(value) and key not in ("embed_dim", "ff_dim"):
            total += value
        total += network_size_lower_bound(value) if isinstance(value, dict | list) else 0
    if _is_size(embed := policy_kwargs.get("embed_dim")):
        layers, ff = policy_kwargs.get("n_layers", 1), policy_kwargs.get("ff_dim", 0)
        layers, ff = (v if _is_size(v) else 0 for v in (layers, ff))
        total += embed + layers * (4 * embed**2 + 2 * embed * ff)
    return total


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_sizes(name: str, data: dict[str, Any], sizes: dict[str, int]) -> None:
    """``ValueError`` naming the file and the size when the saved ``policy_kwargs`` ask for
    networks of more float32 weights than the file's ``policy.pth`` holds (the weights must
    match them exactly), or than this machine's memory, before anything is built."""
    need = 4 * network_size_lower_bound(data.get("policy_kwargs"))
    held = sizes.get("policy.pth", memory_limit())
    if need > min(held, memory_limit()):
        raise ValueError(
            f"{name}: 'policy_kwargs' ask for networks of at least {_gib(need)} of weights, "
            f"but its 'policy.pth' holds {_gib(held)}; refusing to build them"
        )


def _check_buffer(name: str, data: dict[str, Any], objects: dict[str, Any]) -> None:
    """``ValueError`` when the saved ``buffer_size`` needs more memory than this machine has
    (at least one float32 observation per transition)."""
    space, size = objects.get("observation_space"), data.get("buffer_size")
    if space is None or not _is_size(size):
        return
    import gymnasium

    flat = gymnasium.spaces.flatdim(space) if isinstance(space, gymnasium.spaces.Space) else 0
    need, limit = 4 * size * flat, memory_limit()
    if need > limit:
        raise ValueError(
            f"{name}: 'buffer_size' {size} needs at least {_gib(need)} for its replay buffer, "
            f"more than this machine's memory ({_gib(limit)})"
        )


def safe_custom_objects(
    path: str | Path | IO[bytes], custom_objects: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``custom_objects`` for SB3's ``load`` of ``path``: ``custom_objects`` plus every pickled
    entry of the zip's ``data`` that it does not name, unpickled with the allow-list.

    :raises UnsafePickleError: an entry needs an object outside the allow-list.
    :raises ValueError: ``path`` is not a Stable-Baselines3 zip.
    """
    name, data, sizes = _read_zip(path)
    objects = dict(custom_objects or {})
    if "env" in data and "env" not in objects:  # SB3 never saves it; load would gym.make it
        raise UnsafePickleError(
            f"{name}: entry 'env' (which Stable-Baselines3 does not save) would make an "
            "environment the file names, importing its module; load with trust_pickles=True "
            "(CLI: --trust-pickles) only a file you trust"
        )
    check_sizes(name, data, sizes)
    pickles = {
        key: _decoded(name, key, item[":serialized:"])
        for key, item in data.items()
        if key not in objects and isinstance(item, dict) and ":serialized:" in item
    }
    for key, payload in pickles.items():  # every name checked before any import
        _check_names(name, key, payload)
    for key, payload in pickles.items():
        try:
            objects[key] = restricted_loads(payload)
        except UnsafePickleError as err:
            raise _refusal(name, key, err) from None
        except Exception as err:  # a truncated or garbled pickle: pickle raises many types
            raise ValueError(f"{name}: entry {key!r} is corrupt ({err})") from None
    _check_buffer(name, data, objects)
    if "tensorboard_log" in data:  # a folder outside the file: not written into unless asked
        objects.setdefault("tensorboard_log", None)
    return objects


def _decoded(name: str, key: str, serialized: Any) -> bytes:
    try:
        return base64.b64decode(serialized)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: entry {key!r} is corrupt ({err})") from None


def _check_names(name: str, key: str, payload: bytes) -> None:
    """:class:`UnsafePickleError` for the first global of entry ``key`` that the allow-list
    refuses by name; nothing is imported."""
    try:
        refused = [f"{m}.{n}" for m, n in pickled_globals(payload) if not name_allowed(m, n)]
    except UnsafePickleError as err:
        raise _refusal(name, key, err) from None
    except ValueError as err:
        raise ValueError(f"{name}: entry {key!r} is corrupt ({err})") from None
    if refused:
        raise _refusal(name, key, refused[0])


def _refusal(name: str, key: str, what: object) -> UnsafePickleError:
    return UnsafePickleError(
        f"{name}: entry {key!r} needs {what}, which safe loading does not rebuild; "
        "load with trust_pickles=True (CLI: --trust-pickles) only a file you trust, "
        f"or pass custom_objects={{{key!r}: ...}}"
    )


def renamed_classes(path: str | Path) -> dict[str, Any]:
    """``custom_objects`` for the zip's entries that are a class under a module name of
    :data:`RENAMED_MODULES`: the class under its current name, so that plain loading
    (``trust_pickles=True``) reads files saved before the renames too. Nothing is unpickled."""
    objects: dict[str, Any] = {}
    for key, value in read_zip_data(path)[1].items():
        if not (isinstance(value, dict) and isinstance(value.get(":serialized:"), str)):
            continue
        try:
            names = pickled_globals(base64.b64decode(value[":serialized:"]))
        except ValueError:  # not ours to judge here: the load reports it
            continue
        if len(names) == 1 and names[0][0] in RENAMED_MODULES:
            module, name = names[0]
            objects[key] = getattr(importlib.import_module(RENAMED_MODULES[module]), name)
    return objects


def load_checked(load: Callable[..., Any], path: str | Path | IO[bytes], **kwargs: Any) -> Any:
    """``load(path, **kwargs)`` (an SB3 ``load``), with a corrupt weights entry or weights that
    do not fit the saved model a ``ValueError`` naming ``path`` instead of torch's error; classes
    saved under renamed modules are found under their current names (:func:`renamed_classes`)."""
    if isinstance(path, str | Path) and Path(path).is_file():
        try:
            renamed = renamed_classes(path)
        except ValueError:  # not a readable zip: the load below reports it
            renamed = {}
        kwargs["custom_objects"] = {**renamed, **(kwargs.get("custom_objects") or {})}
    try:
        return load(path, **kwargs)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: cannot load the model's weights ({reason})") from err


__all__ = [
    "ALLOWED_MODULES",
    "AllowListUnpickler",
    "UnsafePickleError",
    "check_sizes",
    "load_checked",
    "memory_limit",
    "module_allowed",
    "name_allowed",
    "network_size_lower_bound",
    "pickled_class",
    "pickled_globals",
    "read_zip_data",
    "renamed_classes",
    "restricted_loads",
    "safe_custom_objects",
]
