"""Old module paths that still import, with a ``DeprecationWarning`` naming the new path.

The layout of 0.1 (``caasl_agent.redq``, ``caasl_agent.evaluation``, ``caasl_envs.reward.train``,
...) moved to one package per concern (docs/design.md, "Layout"). :func:`alias_modules`
installs a :mod:`importlib` finder so that ``import caasl_agent.redq`` returns the module now at
``caasl_agent.caasl`` (the same module object, so classes compare equal and policies pickled
under the old names still resolve) instead of keeping a shim file per moved module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Mapping


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def create_module(self, spec):
        warnings.warn(
            f"{self.old} moved to {self.new}; import it from there",
            DeprecationWarning,
            stacklevel=3,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        sys.modules[self.old] = module


#: every old module name given to :func:`alias_modules`, with its new name
MOVED: dict[str, str] = {}


class _AliasFinder(importlib.abc.MetaPathFinder):
    def __init__(self, moved: Mapping[str, str]) -> None:
        self.moved = dict(moved)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.moved:
            return None
        return importlib.util.spec_from_loader(
            fullname, _AliasLoader(fullname, self.moved[fullname])
        )


def alias_modules(moved: Mapping[str, str]) -> None:
    """Make each old module name in ``moved`` import the module at its new name."""
    MOVED.update(moved)
    sys.meta_path.append(_AliasFinder(moved))


def current_module_name(name: str) -> str:
    """The module ``name`` now lives at (``name`` itself unless it moved)."""
    return MOVED.get(name, name)


__all__ = ["MOVED", "alias_modules", "current_module_name"]
