"""The agent protocol of the benchmark harness and the baselines' base class and registry.

**Protocol.** An agent is anything with Stable-Baselines3's
``predict(observation, state=None, episode_start=None, deterministic=False) -> (action, state)``
acting on batched observations ``{"history": (B, N, d, 2), "mask": (B, N)}`` (what the
environments show; agents never see the hidden system), or a plain callable
``observation -> action`` (:class:`CallableAgent`). An agent that cannot act in a setting (an
MLP policy trained for another ``d``, a planner without a likelihood for the simulator) raises
:class:`IncompatibleAgentError`; the harness records the setting as skipped.

**Baselines.** :class:`Baseline` is the base class of the hand-written designers
(:mod:`~caasl_agent.bench.baselines`, :mod:`~caasl_agent.bench.eig`); :data:`BASELINES` maps
their names to classes, and :func:`register_baseline` adds one (a name is never taken twice).

Strings and files become agents in :mod:`~caasl_agent.bench.loaders`. This module imports
no other module of :mod:`caasl_agent.bench` and no algorithm (neither Stable-Baselines3's nor
CAASL): the planners, the baselines, the loaders and the runner import it, and so can code the
algorithm itself uses (e.g. the imitation teachers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from caasl_envs.histories import batched_observation
from caasl_envs.registry import Registry

__all__ = [
    "BASELINES",
    "Agent",
    "Baseline",
    "CallableAgent",
    "IncompatibleAgentError",
    "register_baseline",
]


@runtime_checkable
class Agent(Protocol):
    """Stable-Baselines3's prediction interface, on batched observations."""

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """``(B, A)`` actions for ``B`` observations, and the next recurrent state."""
        ...


class IncompatibleAgentError(ValueError):
    """The agent cannot act in this setting (e.g. an MLP policy trained for another ``d``)."""


class CallableAgent:
    """Wrap a plain callable ``observation -> actions (B, A)`` as an :class:`Agent`."""

    def __init__(self, fn: Callable[[dict[str, np.ndarray]], Any]):
        if not callable(fn):
            raise TypeError(f"expected a callable observation -> action, got {fn!r}")
        self.fn = fn

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        action = self.fn(observation)
        if torch.is_tensor(action):
            action = action.detach().cpu().numpy()
        return np.asarray(action, dtype=np.float32), state

    def __repr__(self) -> str:
        return f"CallableAgent({getattr(self.fn, '__qualname__', self.fn)!r})"


class Baseline:
    """Shared plumbing: observation parsing, action encoding and the SB3 ``predict`` signature.

    Subclasses implement :meth:`choose`, which returns which variables to intervene on and
    with which action values (before the environment's ``value_scale``).

    :param target_only: emit the targets-only layout ``(B, d)`` instead of ``(B, 2d)``.
    :param seed: seed of the baseline's random generator.
    """

    def __init__(self, target_only: bool = False, seed: int | None = 0):
        self.target_only = bool(target_only)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def choose(
        self,
        history: np.ndarray,
        mask: np.ndarray,
        state: np.ndarray | None,
        episode_start: np.ndarray,
        deterministic: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``targets (B, d)`` bool, ``values (B, d)`` in ``[-1, 1]`` and the next state."""
        raise NotImplementedError

    def predict(
        self,
        observation: dict[str, Any],
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Actions ``(B, 2d)`` (or ``(B, d)`` targets only; unbatched input gives ``(A,)``)."""
        history, mask, single = batched_observation(observation)
        b = history.shape[0]
        if episode_start is None:
            episode_start = np.full(b, state is None)
        episode_start = np.asarray(episode_start, dtype=bool).reshape(b)
        targets, values, state = self.choose(history, mask, state, episode_start, deterministic)
        action = np.where(targets, 1.0, -1.0).astype(np.float32)
        if not self.target_only:
            action = np.concatenate([action, values.astype(np.float32)], axis=1)
        return (action[0] if single else action), state

    def __repr__(self) -> str:
        layout = "targets-only" if self.target_only else "targets+values"
        return f"{type(self).__name__}({layout}, seed={self.seed})"


#: Baseline names accepted by the harness and :func:`~caasl_agent.bench.baselines.make_baseline`
#: (filled by :mod:`~caasl_agent.bench.baselines`; add yours with :func:`register_baseline`).
BASELINES: Registry[type[Baseline]] = Registry("baseline")


def register_baseline(name: str, cls: type[Baseline]) -> type[Baseline]:
    """Make ``cls`` (a :class:`Baseline` subclass) available to the harness as ``name``.

    :raises ValueError: when ``name`` is taken.
    """
    if not (isinstance(cls, type) and issubclass(cls, Baseline)):
        raise TypeError(f"baseline {name!r} must be a Baseline subclass, got {cls!r}")
    return BASELINES.register(name, cls)
