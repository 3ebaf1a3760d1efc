"""One small registry helper for every table of named extensions.

Simulators (:data:`caasl_envs.scm.SIMULATORS`), reward models
(:func:`caasl_envs.reward.register_reward_model`), benchmark suites
(:func:`caasl_agent.bench.suites.register_suite`) and baselines
(:data:`caasl_agent.bench.BASELINES`) are each a :class:`Registry`: a ``dict`` from name to
entry that refuses to take a name twice (a second registration under a taken name is a
``ValueError`` naming the kind and the name, never a silent overwrite) and whose
:meth:`~Registry.lookup` fails with the registered names listed.

Register at import time of the module that defines the entry, so that worker processes
(``caasl bench --workers``) that import it have it too.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """``{name: entry}`` that refuses duplicate names.

    :param kind: what the entries are, for error messages (``"simulator"``, ``"baseline"``...).
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` and return it.

        :raises ValueError: when ``name`` is not a non-empty string or is already registered.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self:
            raise ValueError(
                f"{self.kind} {name!r} is already registered ({self[name]!r}); choose another name"
            )
        super().__setitem__(name, entry)
        return entry

    def __setitem__(self, name: str, entry: T) -> None:
        self.register(name, entry)

    def lookup(self, name: str) -> T:
        """The entry registered as ``name``.

        :raises ValueError: naming the registered names when there is none.
        """
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self))}")
        return self[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self)})"
