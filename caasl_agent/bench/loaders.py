"""Agent loaders of the benchmark harness: agent specs (strings, files, objects) to agents.

:func:`load_agent` resolves

* a baseline name (:data:`~caasl_agent.bench.agents.BASELINES`): refused here, since the runner
  builds a baseline per setting, for its ``d``, action layout and reward model;
* ``sb3:PATH`` — a Stable-Baselines3 ``.zip`` of any algorithm (SB3, sb3-contrib, CAASL), the
  class read from the zip's ``data`` without unpickling anything (:func:`load_sb3`);
* ``caasl:NAME`` — a shipped CAASL policy, via ``caasl_agent.load_policy(NAME)``;
* ``module:attr`` — an importable agent class (instantiated without arguments), agent object,
  or callable;
* an agent object (returned as it is) or a plain callable (wrapped in
  :class:`~caasl_agent.bench.agents.CallableAgent`).

:func:`check_compatible` tells whether a loaded model can act in a setting.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from caasl_agent.bench.agents import (
    BASELINES,
    Agent,
    CallableAgent,
    IncompatibleAgentError,
)
from caasl_agent.caasl import CAASL
from caasl_agent.policies import action_entries_per_variable
from caasl_agent.pretrained import load_policy
from caasl_agent.serialization import (
    load_checked,
    pickled_class,
    read_zip_data,
    safe_custom_objects,
)
from caasl_envs import CausalDesignVectorEnv
from caasl_envs.core import resolve_device

__all__ = ["agent_label", "check_compatible", "load_agent", "load_sb3"]


def _algorithm_classes() -> list[type]:
    """Every SB3-style algorithm class: SB3's, sb3-contrib's when it is installed, CAASL."""
    classes: list[type] = [PPO, A2C, SAC, TD3, DDPG, DQN]
    try:
        contrib = importlib.import_module("sb3_contrib")
    except ImportError:  # an optional dependency
        contrib = None
    names = ("TQC", "TRPO", "ARS", "CrossQ", "QRDQN", "RecurrentPPO", "MaskablePPO")
    classes += [getattr(contrib, n) for n in names if hasattr(contrib, n)]
    return [*classes, CAASL]


def _sb3_algorithm(path: Path) -> type:
    """The algorithm class that saved ``path``: the one whose policy aliases contain the saved
    policy class and whose constructor arguments best match the saved hyperparameters."""
    data = read_zip_data(path)[1]  # nothing unpickled
    policy = data.get("policy_class", {})
    found = pickled_class(policy.get(":serialized:", "")) if isinstance(policy, dict) else None
    candidates = []
    for cls in _algorithm_classes():
        policies = getattr(cls, "policy_aliases", {}).values()
        if found is None or any((p.__module__, p.__qualname__) == found for p in policies):
            params = set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env"}
            saved = set(data)
            candidates.append((len(params & saved) - len(params - saved), cls))
    if not candidates:
        raise ValueError(
            f"{path}: no installed algorithm uses the saved policy class {found}; "
            "pass the algorithm class explicitly: load_sb3(path, algorithm=...)"
        )
    # Highest score wins; among equals the first listed (PPO before A2C) stays first.
    return max(candidates, key=lambda c: c[0])[1]


def load_sb3(
    path: str | Path,
    algorithm: type | None = None,
    device: str = "cpu",
    trust_pickles: bool = False,
):
    """Load a Stable-Baselines3 model of any algorithm from its ``.zip``.

    Safe by default: the zip's pickled entries are rebuilt from an allow-list
    (:mod:`caasl_agent.serialization`); ``trust_pickles=True`` unpickles them as SB3 does, for
    a file one trusts.

    :param algorithm: the algorithm class; detected from the zip when ``None``.
    """
    path = Path(path)
    if not path.exists() and path.with_suffix(".zip").exists():
        path = path.with_suffix(".zip")
    if not path.is_file():
        raise FileNotFoundError(f"no Stable-Baselines3 model at {path}")
    resolve_device(device)  # SB3 would silently fall back to the CPU
    cls = algorithm or _sb3_algorithm(path)
    if not trust_pickles:
        return load_checked(cls.load, path, device=device, custom_objects=safe_custom_objects(path))
    if "trust_pickles" in inspect.signature(cls.load).parameters:  # CAASL
        return cls.load(path, device=device, trust_pickles=True)
    return load_checked(cls.load, path, device=device)


def load_agent(spec: Any) -> Any:
    """Resolve an agent spec (see the module docstring) that is not a baseline name."""
    if not isinstance(spec, str):
        if isinstance(spec, Agent):
            return spec
        if callable(spec):
            return CallableAgent(spec)
        raise TypeError(f"an agent needs a predict() method or must be callable, got {spec!r}")
    if spec in BASELINES:
        raise ValueError(f"{spec!r} is a baseline: it is built per setting by benchmark()")
    if spec.startswith("sb3:"):
        return load_sb3(spec[4:])
    if spec.startswith("caasl:"):
        return load_policy(spec[6:])
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            obj = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"cannot import module {module_name!r} of agent {spec!r}") from err
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ValueError(f"agent {spec!r}: {module_name} has no attribute {attr!r}")
            obj = getattr(obj, part)
        return load_agent(obj() if inspect.isclass(obj) else obj)
    raise ValueError(
        f"unknown agent {spec!r}: expected a baseline ({', '.join(BASELINES)}), 'sb3:PATH', "
        "'caasl:NAME' or 'module:attr'"
    )


def agent_label(spec: Any) -> str:
    """The name an agent has in tables and files."""
    if isinstance(spec, str):
        return spec
    return str(
        getattr(spec, "name", None) or getattr(spec, "__name__", None) or type(spec).__name__
    )


def check_compatible(agent: Any, vec: CausalDesignVectorEnv) -> None:
    """SB3 models with a fixed observation space cannot act at another ``d``; CAASL policies act
    at any ``d`` but only with the action layout they were trained for."""
    if not isinstance(agent, BaseAlgorithm):
        return
    if type(agent).__module__.startswith("caasl_agent"):
        layouts = {1: "targets only", 2: "targets and values"}
        have = action_entries_per_variable(agent.observation_space, agent.action_space)
        want = 1 if vec.core.target_only else 2
        if have != want:
            raise IncompatibleAgentError(
                f"this CAASL policy acts with {layouts[have]} per variable, the setting takes "
                f"{layouts[want]} (a policy trained on another simulator?)"
            )
        return
    want = vec.single_observation_space
    have = agent.observation_space
    for key in ("history", "mask"):
        if key not in getattr(have, "spaces", {}) or have[key].shape != want[key].shape:
            raise IncompatibleAgentError(
                f"{type(agent).__name__} was trained on observations {have}, this setting has {want}"
            )
    if agent.action_space.shape != vec.single_action_space.shape:
        raise IncompatibleAgentError(
            f"action shape {agent.action_space.shape} != the setting's {vec.single_action_space.shape}"
        )
