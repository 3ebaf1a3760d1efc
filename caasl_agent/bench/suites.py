"""Named, versioned, fully seeded benchmark suites.

A :class:`Suite` is a list of :class:`Setting` s (a registered environment id plus keyword
overrides). Episode ``i`` of a setting is fixed by ``(seed, suite name, suite version, setting
name, i)`` through its environment seed, so every agent meets the same hidden system and the
same initial data, whichever agents run, in whichever order, with however many episodes.
Changing what a suite contains means bumping its version.

Suites (docs/design.md §3):

* ``linear`` (v1): the CAASL training setting (``in-distribution``) and every linear
  out-of-distribution setting: scale-free graphs, scale-free with coefficient mean 0.1, the
  same with Gumbel noise, scale-free with Gumbel noise, ``d`` = 12, 15, 20, 30, and shift
  interventions.
* ``sergio`` (v1): present when ``caasl/SERGIO-v0`` is registered; in-distribution,
  scale-free, ``d + 2``, ``d + 5``, ``d + 10``, knockdown, drop-seq technical noise and noisy
  interventions (each target bit flipped with probability 0.1).
* ``sergio-perturbseq`` (v1): present when ``caasl/SERGIOPerturbSeq-v0`` is registered (a
  knockout experiment on 10 cells per step, ER degree 1); in-distribution, knockdown, drop-seq
  technical noise, ``d + 5`` and scale-free graphs.
* ``real`` (v1): ``caasl/Sachs-v0`` (scored against the 17-edge reference of Sachs et al. 2005
  and against cdt's 18-edge one) and ``caasl/GeneNetwork-v0`` on each of its four fitted
  networks, d = 12; 30 episodes (docs/real-data.md).
* ``nonlinear`` (v1): present when ``caasl/NonlinearRFF-v0`` is registered (random-Fourier-
  feature mechanisms); in-distribution, shift interventions, Laplace noise, heteroscedastic
  noise, scale-free graphs and ``d + 5``.
* ``tiny`` (v1): two small settings (``d`` = 4 and 5, budget 3) for tests and smoke runs.

New suites: :func:`register_suite`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import caasl_envs  # noqa: F401  (registers the environment ids)
from caasl_envs.registry import Registry

__all__ = [
    "Setting",
    "Suite",
    "available_suites",
    "get_suite",
    "register_suite",
]


@dataclass(frozen=True)
class Setting:
    """One environment configuration of a suite.

    :param name: short name, unique within the suite (used in tables, files and seeds).
    :param env_id: a registered environment id.
    :param overrides: keyword arguments replacing the id's defaults.
    :param description: one line for tables and docs.
    """

    name: str
    env_id: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", dict(self.overrides))  # a private copy

    def env_kwargs(self) -> dict[str, Any]:
        """The environment's keyword arguments: the id's defaults updated by the overrides."""
        if self.env_id not in gym.registry:
            raise ValueError(
                f"setting {self.name!r}: environment id {self.env_id!r} is not registered"
            )
        return {**gym.spec(self.env_id).kwargs, **self.overrides}


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of settings with a default number of episodes per setting."""

    name: str
    version: int
    settings: tuple[Setting, ...]
    episodes: int = 100
    description: str = ""

    def __post_init__(self) -> None:
        names = [s.name for s in self.settings]
        if len(set(names)) != len(names):
            raise ValueError(f"suite {self.name!r} has duplicate setting names: {names}")
        if not self.settings:
            raise ValueError(f"suite {self.name!r} has no settings")

    def names(self) -> list[str]:
        """The settings' names, in suite order."""
        return [s.name for s in self.settings]

    def setting(self, name: str) -> Setting:
        for s in self.settings:
            if s.name == name:
                return s
        raise ValueError(f"suite {self.name!r} has no setting {name!r}; settings: {self.names()}")

    def select(self, names: list[str] | None) -> tuple[Setting, ...]:
        """The named settings in suite order (all when ``names`` is ``None``)."""
        if names is None:
            return self.settings
        wanted = [self.setting(n).name for n in names]
        return tuple(s for s in self.settings if s.name in wanted)

    def episode_seeds(self, setting: str, episodes: int, seed: int = 0) -> list[int]:
        """Environment seeds of episodes ``0 .. episodes-1``; episode ``i``'s seed depends only
        on ``(seed, suite, version, setting, i)``."""
        self.setting(setting)
        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        key = zlib.crc32(f"{self.name}/v{self.version}/{setting}".encode())
        return [
            int(np.random.SeedSequence([int(seed), key, i]).generate_state(1)[0])
            for i in range(episodes)
        ]


_SUITES: Registry[Callable[[], Suite | None]] = Registry("suite")


def register_suite(name: str, factory: Callable[[], Suite | None]) -> None:
    """Make ``get_suite(name)`` return ``factory()``; a factory returning ``None`` marks the
    suite as unavailable in this installation (e.g. its environments are not registered).

    :raises ValueError: when ``name`` is already registered.
    """
    _SUITES.register(name, factory)


def available_suites() -> list[str]:
    """Names of the suites whose environments exist here."""
    return sorted(name for name, factory in _SUITES.items() if factory() is not None)


def get_suite(name: str | Suite) -> Suite:
    """A suite by name (or the suite itself)."""
    if isinstance(name, Suite):
        return name
    suite = _SUITES[name]() if name in _SUITES else None
    if suite is None:
        raise ValueError(f"unknown or unavailable suite {name!r}; available: {available_suites()}")
    return suite


def _linear_suite() -> Suite:
    er, sf, shift = (
        "caasl/LinearGaussian-v0",
        "caasl/LinearGaussianScaleFree-v0",
        "caasl/LinearGaussianShift-v0",
    )
    return Suite(
        name="linear",
        version=1,
        description="CAASL's linear training setting and every linear OOD setting",
        settings=(
            Setting("in-distribution", er, {}, "ER degree 3, d=10, Gaussian noise, do"),
            Setting("scale-free", sf, {}, "scale-free graphs"),
            Setting(
                "scale-free-mu0.1", sf, {"coeff_mean": 0.1}, "scale-free, coefficient mean 0.1"
            ),
            Setting(
                "scale-free-mu0.1-gumbel",
                sf,
                {"coeff_mean": 0.1, "noise": "gumbel"},
                "scale-free, coefficient mean 0.1, Gumbel noise",
            ),
            Setting("scale-free-gumbel", sf, {"noise": "gumbel"}, "scale-free, Gumbel noise"),
            *(Setting(f"d{d}", er, {"d": d}, f"ER degree 3, d={d}") for d in (12, 15, 20, 30)),
            Setting("shift", shift, {}, "shift interventions"),
        ),
    )


def _registered_d(env_id: str) -> int | None:
    """The default number of variables of ``env_id``, or None when it is not registered."""
    if env_id not in gym.registry:
        return None
    return int(gym.spec(env_id).kwargs.get("d", 10))


def _sergio_suite() -> Suite | None:
    env_id = "caasl/SERGIO-v0"
    d = _registered_d(env_id)
    if d is None:
        return None
    return Suite(
        name="sergio",
        version=1,
        description="SERGIO training setting and its OOD settings",
        settings=(
            Setting("in-distribution", env_id, {}, "SERGIO training setting"),
            Setting("scale-free", env_id, {"graph": "scale_free"}, "scale-free graphs"),
            *(Setting(f"d+{k}", env_id, {"d": d + k}, f"d={d + k}") for k in (2, 5, 10)),
            Setting("knockdown", env_id, {"intervention": "knockdown"}, "knockdown (x0.5)"),
            Setting("drop-seq", env_id, {"technical_noise": "drop-seq"}, "drop-seq noise"),
            Setting(
                "noisy-interventions",
                env_id,
                {"intervention_noise": 0.1},
                "each target bit flipped with probability 0.1",
            ),
        ),
    )


def _sergio_perturbseq_suite() -> Suite | None:
    env_id = "caasl/SERGIOPerturbSeq-v0"
    d = _registered_d(env_id)
    if d is None:
        return None
    return Suite(
        name="sergio-perturbseq",
        version=1,
        description="Perturb-seq-like SERGIO setting (k cells per knockout) and its OOD settings",
        settings=(
            Setting("in-distribution", env_id, {}, "10 cells per knockout, ER degree 1"),
            Setting("knockdown", env_id, {"intervention": "knockdown"}, "knockdown (x0.5)"),
            Setting("drop-seq", env_id, {"technical_noise": "drop-seq"}, "drop-seq noise"),
            Setting("d+5", env_id, {"d": d + 5}, f"d={d + 5}"),
            Setting("scale-free", env_id, {"graph": "scale_free"}, "scale-free graphs (BA, m=2)"),
        ),
    )


def _tiny_suite() -> Suite:
    er, shift = "caasl/LinearGaussian-v0", "caasl/LinearGaussianShift-v0"
    small = {"n0": 8, "budget": 3, "graph_degree": 1.0, "reward_model": "partial-correlation"}
    return Suite(
        name="tiny",
        version=1,
        episodes=4,
        description="two small settings for tests and smoke runs",
        settings=(
            Setting("d4", er, {**small, "d": 4}, "ER, d=4, budget 3"),
            Setting("d5-shift", shift, {**small, "d": 5}, "ER, d=5, budget 3, shift"),
        ),
    )


def _real_suite() -> Suite | None:
    sachs, genes = "caasl/Sachs-v0", "caasl/GeneNetwork-v0"
    if _registered_d(sachs) is None or _registered_d(genes) is None:
        return None
    return Suite(
        name="real",
        version=1,
        episodes=30,
        description="Sachs et al. (2005) cell pools and sub-networks of fitted gene networks",
        settings=(
            Setting("sachs", sachs, {}, "Sachs cells, 17-edge reference of Sachs et al. 2005"),
            Setting(
                "sachs-cdt", sachs, {"reference": "cdt"}, "Sachs cells, cdt's 18-edge reference"
            ),
            *(
                Setting(net, genes, {"network": net}, f"d=12 sub-networks of {net}")
                for net in ("ecoli70", "magic-niab", "magic-irri", "arth150")
            ),
        ),
    )


register_suite("linear", _linear_suite)
register_suite("sergio", _sergio_suite)
register_suite("sergio-perturbseq", _sergio_perturbseq_suite)
register_suite("tiny", _tiny_suite)


def _nonlinear_suite() -> Suite | None:
    """Random-Fourier-feature mechanisms (AVICI's rff family; docs/nonlinear.md)."""
    env_id, shift = "caasl/NonlinearRFF-v0", "caasl/NonlinearRFFShift-v0"
    d = _registered_d(env_id)
    if d is None or shift not in gym.registry:
        return None
    return Suite(
        name="nonlinear",
        version=1,
        episodes=30,
        description="RFF (nonlinear) mechanisms: training setting and OOD settings",
        settings=(
            Setting("in-distribution", env_id, {}, "RFF, ER degree 3, d=10, Gaussian noise, do"),
            Setting("shift", shift, {}, "shift interventions"),
            Setting("laplace", env_id, {"noise": "laplace"}, "Laplace noise"),
            Setting(
                "heteroscedastic",
                env_id,
                {"mechanism": "heteroscedastic"},
                "noise scale an RFF function of the parents",
            ),
            Setting("scale-free", env_id, {"graph": "scale_free"}, "scale-free graphs"),
            Setting("d+5", env_id, {"d": d + 5}, f"d={d + 5}"),
        ),
    )


register_suite("nonlinear", _nonlinear_suite)
register_suite("real", _real_suite)
