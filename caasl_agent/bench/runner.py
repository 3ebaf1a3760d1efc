"""Benchmark harness: run experimental-design agents on a suite of fixed environments.

Agents follow the protocol of :mod:`caasl_agent.bench.agents` (Stable-Baselines3's
``predict`` on batched observations, or a plain callable); strings are resolved there
(:func:`~caasl_agent.bench.agents.load_agent`), baseline names here, per setting.

**Runner.** :func:`benchmark` runs, for every setting of a suite, each agent on *one* batched
:class:`~caasl_envs.CausalDesignVectorEnv` holding all of the setting's episodes (one
simulator call and one reward-model forward per step), seeded per episode by the suite, and
records after reset and after every experiment: the return so far and every metric of
:mod:`caasl_envs.metrics` computed from the environment's edge probabilities. Deterministic
and/or stochastic policy evaluation (``modes``); the reports say which. The runs execute where
an executor puts them (:mod:`caasl_agent.bench.backends`: this process, worker processes, Ray).
Results are reproducible: a run is a function of the suite, the seed, the agents and the reward
model. Reports (tables, CSV/JSON, plots, saved edge probabilities):
:mod:`caasl_agent.bench.reports`.
"""

from __future__ import annotations

import random
import time
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caasl_agent.bench.agents import BASELINES, IncompatibleAgentError
from caasl_agent.bench.backends import Executor, InProcess, execute
from caasl_agent.bench.baselines import baseline_for
from caasl_agent.bench.loaders import agent_label, check_compatible, load_agent
from caasl_agent.bench.reports import BenchmarkResults, RunRecord
from caasl_agent.bench.suites import Setting, Suite, get_suite
from caasl_agent.pretrained import load_policy, recommended_policy
from caasl_envs import CausalDesignVectorEnv, metrics
from caasl_envs.checks import check_int
from caasl_envs.core import resolve_device
from caasl_envs.histories import has_belief
from caasl_envs.reward import RewardModel, available_reward_models, is_reward_model_spec
from caasl_envs.reward.exact import MAX_EXACT_D
from caasl_envs.reward.gp import MAX_GP_D
from caasl_envs.reward.mcmc import MAX_MCMC_D
from caasl_envs.scm import SIMULATORS

__all__ = [
    "MODES",
    "benchmark",
    "run_setting",
    "setting_env",
]

MODES = ("deterministic", "stochastic")


# --------------------------------------------------------------------------- runner
class LastCallCache:
    """A reward model that returns its last result again for an identical unmasked input.

    The environment and a baseline that reads the posterior from the observation (the
    uncertainty heuristic) then share one forward per step instead of two; results are
    unchanged.
    """

    def __init__(self, model: RewardModel):
        self.model = model
        self.expects_counts = getattr(model, "expects_counts", False)
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def edge_probs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None and self._last is not None:
            seen, probs = self._last
            if seen.shape == x.shape and seen.dtype == x.dtype and torch.equal(seen, x):
                return probs.clone()
        probs = self.model.edge_probs(x, mask)
        self._last = (x.clone(), probs.clone()) if mask is None else None
        return probs


def _stable_seed(*parts: Any) -> int:
    """A seed that depends only on ``parts`` (stable across processes, unlike ``hash``)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def reward_model_for(reward_model: Any, setting: Setting) -> Any:
    """The reward model of a setting: ``reward_model`` may be ``None`` (the setting's, else the
    simulator's default), a name, a model object, or a mapping ``{setting name or "*": model}``."""
    if isinstance(reward_model, Mapping):
        reward_model = reward_model.get(setting.name, reward_model.get("*"))
    if reward_model is None:
        kwargs = setting.env_kwargs()
        reward_model = kwargs.get("reward_model") or getattr(
            SIMULATORS[kwargs.get("simulator", "linear")], "default_reward_model", None
        )
    return reward_model


def _check_reward_models(reward_model: Any, model_of: dict[str, Any], suite: Suite) -> None:
    """Fail before any run, not when the setting with the typo comes up hours later."""
    if isinstance(reward_model, Mapping):
        unknown = sorted(set(reward_model) - {"*", *suite.names()})
        if unknown:
            raise ValueError(
                f"reward-model overrides for settings that suite {suite.name!r} does not have: "
                f"{unknown}; its settings: {suite.names()}"
            )
    for setting, model in model_of.items():
        if isinstance(model, str) and not is_reward_model_spec(model):
            raise ValueError(
                f"unknown reward model {model!r} for setting {setting!r}; registered: "
                f"{available_reward_models()} (or an AVICIModel .pt file, or a folder with an "
                "official AVICI checkpoint)"
            )


def reward_model_name(model: Any) -> str:
    return model if isinstance(model, str) else f"{type(model).__name__} (object)"


AUTO_SCORER = "exact-linear-scm"
"""What ``scorer="auto"`` scores linear settings with ``d <= MAX_EXACT_D`` with: the exact
posterior of the environments' prior (Gaussian noise, up to in-degree 3; an approximation for
scale-free graphs, non-Gaussian noise and shift interventions)."""
AUTO_MCMC_SCORER = "mcmc-linear-scm"
"""What ``scorer="auto"`` scores linear settings with ``MAX_EXACT_D < d <= MAX_MCMC_D`` with: the
same posterior by order MCMC (caasl_envs/reward/mcmc.py; its accuracy contract: docs/mcmc.md)."""


def scorer_for(scorer: Any, setting: Setting) -> Any:
    """The model that computes a setting's metrics: ``"auto"`` (the default) is
    :data:`AUTO_SCORER` for linear settings with ``d <= MAX_EXACT_D`` (:data:`AUTO_MCMC_SCORER`
    up to ``MAX_MCMC_D``), ``exact-gp`` for RFF
    settings with ``d <= MAX_GP_D``, and ``None`` otherwise;
    ``None`` or ``"reward"`` is the environment's own reward model; a name or model is itself;
    a mapping ``{setting name or "*": scorer}`` picks per setting."""
    if isinstance(scorer, Mapping):
        scorer = scorer.get(setting.name, scorer.get("*", "auto"))
    if scorer == "reward":
        return None
    if scorer == "auto":
        kwargs = setting.env_kwargs()
        if kwargs.get("simulator") == "rff":  # nonlinear mechanisms: the GP posterior, d <= 10
            return "exact-gp" if kwargs.get("d", 10) <= MAX_GP_D else None
        if kwargs.get("simulator", "linear") != "linear":
            return None
        d = kwargs.get("d", 10)
        return AUTO_SCORER if d <= MAX_EXACT_D else AUTO_MCMC_SCORER if d <= MAX_MCMC_D else None
    return scorer


def resolve_model(setting: Setting, model: Any, device: str = "cpu") -> RewardModel:
    """``model`` (a name, ``.pt`` path or object) as the setting's environment resolves its reward
    model (a name gets the environment's prior, e.g. its graph degree)."""
    return setting_env(setting, 1, model, device).core.reward_model


def run_setting(
    agent: Any,
    setting: Setting,
    seeds: Sequence[int],
    deterministic: bool,
    reward_model: RewardModel | str | None = None,
    agent_seed: int = 0,
    device: str = "cpu",
    scorer: RewardModel | str | None = None,
) -> dict[str, Any]:
    """Run one agent on all episodes of one setting as one batched environment.

    :param agent: an :class:`Agent`, a callable, or a baseline name.
    :param seeds: one environment seed per episode (``E`` episodes).
    :param agent_seed: seeds the baseline's generator and the global torch/numpy/random
        generators (stochastic SB3 policies and user callables draw from those).
    :param scorer: the model whose edge probabilities give the metrics (default: the reward
        model's); ``return`` is always the environment's reward.
    :return: ``metrics`` ``{name: (E, T + 1) float64}`` (column ``t``: after ``t``
        experiments; ``return`` is the cumulative reward), ``probs`` ``(E, d, d)`` final edge
        probabilities (the scorer's), ``graphs`` ``(E, d, d)`` true graphs, ``history`` ``(E, N, d, 2)`` and
        ``mask`` ``(E, N)`` the final observations (every experiment's rows, in order).
    """
    vec = setting_env(setting, len(seeds), reward_model, device)
    score_model = None if scorer is None else resolve_model(setting, scorer, device)
    agent = _prepare_agent(agent, vec, agent_seed)
    _seed_global_generators(agent_seed)
    records, probs = _roll_out(agent, vec, seeds, deterministic, score_model)
    return {
        "metrics": records,
        "probs": probs.cpu().numpy(),
        "graphs": vec.core.graph.cpu().numpy(),
        "history": vec.core.history.cpu().numpy(),
        "mask": vec.core.mask.cpu().numpy(),
    }


def setting_env(
    setting: Setting, n_envs: int, reward_model: Any, device: str
) -> CausalDesignVectorEnv:
    """One batched env of ``n_envs`` episodes of ``setting`` with dense rewards."""
    kwargs = {**setting.env_kwargs(), "reward_schedule": "dense", "device": device}
    if reward_model is not None:
        kwargs["reward_model"] = reward_model
    return CausalDesignVectorEnv(n_envs, **kwargs)


def _prepare_agent(agent: Any, vec: CausalDesignVectorEnv, agent_seed: int) -> Any:
    """A baseline name becomes a baseline built for ``vec``; anything else is loaded and checked
    against ``vec``'s spaces."""
    if isinstance(agent, str) and agent != "caasl":
        core = vec.core
        # The uncertainty baseline asks for the posterior the environment has just computed.
        core.reward_model = LastCallCache(core.reward_model)
        return baseline_for(agent, core, agent_seed)
    if agent == "caasl":  # the recommended policy of the family: SERGIO's, else the linear one
        family = "sergio" if vec.core.simulator.startswith("sergio") else "linear"
        agent = load_policy(recommended_policy(family))
    agent = load_agent(agent)
    check_compatible(agent, vec)
    if has_belief(getattr(agent, "observation_space", None)):
        vec.set_observe_belief(True)  # the policy reads the edge probabilities
    return agent


def _seed_global_generators(seed: int) -> None:
    """Seed torch, numpy and ``random`` (stochastic SB3 policies and user callables draw from
    those)."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (user callables may draw from the global state)
    random.seed(seed)


def _roll_out(
    agent: Any,
    vec: CausalDesignVectorEnv,
    seeds: Sequence[int],
    deterministic: bool,
    scorer: RewardModel | None = None,
) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """Reset ``vec`` with ``seeds`` and run ``agent`` for the whole budget.

    :return: ``{metric: (E, T + 1) float64}``, column ``t`` after ``t`` experiments (metrics
        from ``scorer``'s edge probabilities, default the environment's; ``return`` is the
        cumulative reward), and the final ``(E, d, d)`` edge probabilities they came from.
    """
    core = vec.core
    obs, _ = vec.reset(seed=[int(s) for s in seeds])
    e, budget = vec.num_envs, core.budget
    records = {"return": np.zeros((e, budget + 1))}
    total = np.zeros(e)
    probs = core.probs

    def record(t: int) -> None:
        nonlocal probs
        records["return"][:, t] = total
        probs = core.probs if scorer is None else core.posterior(scorer)
        for name, value in metrics.all_metrics(probs, core.graph).items():
            records.setdefault(name, np.zeros((e, budget + 1)))[:, t] = value.cpu().numpy()

    record(0)
    state, episode_start = None, np.ones(e, dtype=bool)
    for t in range(1, budget + 1):
        action, state = agent.predict(
            obs, state=state, episode_start=episode_start, deterministic=deterministic
        )
        obs, reward, _, _, _ = vec.step(np.asarray(action))
        total = total + reward
        record(t)
        episode_start = np.zeros(e, dtype=bool)
    return records, probs


@dataclass(frozen=True)
class _Task:
    """One (setting, agent, mode) run; picklable for worker processes."""

    setting: Setting
    label: str
    agent: Any
    mode: str
    seeds: tuple[int, ...]
    reward_model: Any
    agent_seed: int
    device: str
    scorer: Any = None


def _run_task(task: _Task) -> tuple[RunRecord | None, str | None, float]:
    start = time.perf_counter()
    try:
        out = run_setting(
            task.agent,
            task.setting,
            task.seeds,
            task.mode == "deterministic",
            task.reward_model,
            task.agent_seed,
            task.device,
            task.scorer,
        )
    except IncompatibleAgentError as err:
        return None, str(err), time.perf_counter() - start
    record = RunRecord(
        setting=task.setting.name,
        agent=task.label,
        mode=task.mode,
        seeds=task.seeds,
        metrics=out["metrics"],
        probs=out["probs"],
        graphs=out["graphs"],
    )
    return record, None, time.perf_counter() - start


def benchmark(
    agents: Sequence[Any] | Mapping[str, Any],
    suite: str | Suite = "linear",
    episodes: int | None = None,
    seed: int = 0,
    modes: Sequence[str] = ("deterministic",),
    reward_model: Any = None,
    settings: Sequence[str] | None = None,
    reference: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    out: str | Path | None = None,
    plots: bool = True,
    scorer: Any = "auto",
    executor: Executor | None = None,
) -> BenchmarkResults:
    """Benchmark agents on every setting of a suite.

    :param agents: specs (see :func:`load_agent`; baseline names, ``sb3:``/``caasl:``/
        ``module:attr`` strings, agent objects, callables), or ``{label: spec}``.
    :param suite: a suite name (``caasl_agent.bench.suites.available_suites()``) or a :class:`Suite`.
    :param episodes: episodes per setting (default: the suite's, 100 for ``linear``); the
        first ``k`` episodes are the same for any ``episodes >= k``.
    :param seed: the suite seed; every agent sees the same environments for the same seed.
    :param modes: any of ``"deterministic"``, ``"stochastic"`` (policy evaluation mode).
    :param reward_model: ``None`` (each setting's default), a registered name, a model, or
        ``{setting or "*": model}``.
    :param settings: names of the settings to run (default: all).
    :param reference: agent label for the paired comparison (default: the first agent).
    :param out: when given, keep every finished run in ``out/runs/`` and, once all have
        finished, write every report there (:meth:`BenchmarkResults.save`); rerunning the same
        call runs only the missing tasks, and a folder of another benchmark is refused
        (:mod:`caasl_agent.bench.backends`).
    :param plots: write the plots with the reports.
    :param scorer: the model whose edge probabilities give the metrics (see :func:`scorer_for`):
        by default the exact posterior for linear settings with ``d <= 14`` and the reward model
        elsewhere; ``"reward"`` always uses the reward model. ``return`` is always the reward.
    :param executor: where the (setting, agent, mode) runs execute
        (:mod:`caasl_agent.bench.backends`): :class:`~caasl_agent.bench.backends.InProcess`
        (the default), ``ProcessPool(workers)`` or ``RayCluster(address)`` (agents must be
        picklable for the last two); ``make_executor(backend, workers, address)`` builds one
        from the command line's options.
    :raises BenchmarkFailed: when some runs raised (named), after the others finished.
    """
    suite = get_suite(suite)
    episodes = check_int("episodes", suite.episodes if episodes is None else episodes, 1)
    seed = check_int("seed", seed, 0)
    if executor is not None and not callable(getattr(executor, "map_unordered", None)):
        raise TypeError(f"executor must have a map_unordered(fn, items) method, got {executor!r}")
    resolve_device(device)  # an absent device fails here, not inside the first run
    _check_options(suite, settings, modes)
    items = _labelled_agents(agents)
    labels = [label for label, _ in items]
    if reference is not None and reference not in labels:
        raise ValueError(f"reference agent {reference!r} is not among the agents {labels}")
    chosen = suite.select(list(settings) if settings is not None else None)
    model_of = {s.name: reward_model_for(reward_model, s) for s in chosen}
    _check_reward_models(reward_model, model_of, suite)
    scorer_of = {s.name: scorer_for(scorer, s) for s in chosen}
    _check_reward_models(None, scorer_of, suite)
    tasks = _make_tasks(suite, chosen, items, modes, episodes, seed, model_of, device, scorer_of)
    runs, skipped, timings = _collect(
        tasks, execute(_run_task, tasks, executor or InProcess(), out, progress)
    )
    meta = {
        "format": "caasl-benchmark/1",
        "suite": suite.name,
        "suite_version": suite.version,
        "seed": int(seed),
        "episodes": episodes,
        "modes": list(modes),
        "agents": labels,
        "reference": reference or labels[0],
        "settings": [_setting_meta(s, model_of[s.name], scorer_of[s.name]) for s in chosen],
        "skipped": skipped,
    }
    results = BenchmarkResults(meta, runs, timings)
    if out is not None:
        results.save(out, plots=plots)
    return results


def _check_options(suite: Suite, settings: Sequence[str] | None, modes: Sequence[str]) -> None:
    """Reject an empty setting selection and unknown evaluation modes."""
    if settings is not None and len(settings) == 0:
        raise ValueError(f"no settings selected; suite {suite.name!r} has {suite.names()}")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def _labelled_agents(agents: Sequence[Any] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``[(label, agent)]``: the mapping's labels, or :func:`agent_label` numbered ``#2``,
    ``#3``... on repeats; agents other than baseline names are loaded here, once."""
    if isinstance(agents, Mapping):
        items = list(agents.items())
    else:
        items, seen = [], {}
        for spec in agents:
            label = agent_label(spec)
            seen[label] = seen.get(label, 0) + 1
            items.append((label if seen[label] == 1 else f"{label}#{seen[label]}", spec))
    if not items:
        raise ValueError("no agents to benchmark")
    return [
        (
            label,
            spec if isinstance(spec, str) and spec in (*BASELINES, "caasl") else load_agent(spec),
        )
        for label, spec in items
    ]


def _make_tasks(
    suite: Suite,
    chosen: Sequence[Setting],
    items: Sequence[tuple[str, Any]],
    modes: Sequence[str],
    episodes: int,
    seed: int,
    model_of: Mapping[str, Any],
    device: str,
    scorer_of: Mapping[str, Any],
) -> list[_Task]:
    """One task per (setting, agent, mode), in that order; every agent of a setting gets the
    same episode seeds."""
    return [
        _Task(
            setting=s,
            label=label,
            agent=agent,
            mode=mode,
            seeds=tuple(suite.episode_seeds(s.name, episodes, seed)),
            reward_model=model_of[s.name],
            agent_seed=_stable_seed(seed, suite.name, suite.version, s.name, label),
            device=device,
            scorer=scorer_of[s.name],
        )
        for s in chosen
        for label, agent in items
        for mode in modes
    ]


def _collect(
    tasks: Sequence[_Task], outcomes: Sequence[tuple[RunRecord | None, str | None, float]]
) -> tuple[list[RunRecord], list[dict[str, Any]], list[dict[str, Any]]]:
    """Split the outcomes into runs, skipped tasks (with a warning each) and timings."""
    runs, skipped, timings = [], [], []
    for task, (record, why, seconds) in zip(tasks, outcomes):
        key = {"setting": task.setting.name, "agent": task.label, "mode": task.mode}
        timings.append({**key, "seconds": seconds})
        if record is None:
            warnings.warn(f"{task.label} skipped on {task.setting.name}: {why}", stacklevel=3)
            skipped.append({**key, "reason": why})
        else:
            runs.append(record)
    return runs, skipped, timings


def _setting_meta(setting: Setting, model: Any, scorer: Any = None) -> dict[str, Any]:
    """What the results record about a setting: its id, kwargs, reward model and the scorer of
    its metrics."""
    kwargs = setting.env_kwargs()
    return {
        "name": setting.name,
        "env_id": setting.env_id,
        "description": setting.description,
        "env_kwargs": {k: v for k, v in kwargs.items() if k not in ("reward_model", "device")},
        "reward_model": reward_model_name(model),
        "scorer": reward_model_name(model if scorer is None else scorer),
    }
