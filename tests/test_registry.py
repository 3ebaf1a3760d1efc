"""One registry helper for simulators, reward models, suites and baselines: duplicates refused
everywhere, a user's baseline benchmarked by name."""

from __future__ import annotations

import numpy as np
import pytest

from caasl_agent.bench import BASELINES, Baseline, benchmark, make_baseline, register_baseline
from caasl_agent.bench.suites import get_suite, register_suite
from caasl_envs.registry import Registry
from caasl_envs.reward import PartialCorrelationRewardModel, register_reward_model
from caasl_envs.scm import SIMULATORS, LinearSCMPrior, register_simulator


def test_registry_refuses_duplicates_and_names_the_registered_on_lookup():
    reg: Registry[int] = Registry("widget")
    assert reg.register("a", 1) == 1
    reg["b"] = 2
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 3)
    with pytest.raises(ValueError, match="widget 'b' is already registered"):
        reg["b"] = 3
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", 4)
    assert dict(reg) == {"a": 1, "b": 2} and reg.lookup("a") == 1
    with pytest.raises(ValueError, match="unknown widget 'c'; registered: a, b"):
        reg.lookup("c")


@pytest.mark.parametrize(
    "register, name, entry",
    [
        (register_simulator, "linear", LinearSCMPrior),
        (register_reward_model, "partial-correlation", PartialCorrelationRewardModel),
        (register_suite, "tiny", lambda: get_suite("tiny")),
        (register_baseline, "random", Baseline),
    ],
)
def test_every_registry_refuses_a_taken_name(register, name, entry):
    with pytest.raises(ValueError, match=f"'{name}' is already registered"):
        register(name, entry)


def test_simulators_keep_their_order_and_refuse_overwrites():
    assert list(SIMULATORS)[:2] == ["linear", "sergio"]
    with pytest.raises(ValueError, match="simulator 'sergio' is already registered"):
        SIMULATORS["sergio"] = LinearSCMPrior


class AlwaysFirst(Baseline):
    """Intervene on variable 0 with value 1 at every step."""

    def choose(self, history, mask, state, episode_start, deterministic):
        b, d = history.shape[0], history.shape[2]
        targets = np.zeros((b, d), dtype=bool)
        targets[:, 0] = True
        return targets, np.ones((b, d)), None


def test_a_users_baseline_is_benchmarked_by_name():
    register_baseline("test-always-first", AlwaysFirst)
    try:
        assert isinstance(make_baseline("test-always-first", seed=1), AlwaysFirst)
        results = benchmark(
            ["test-always-first"],
            suite="tiny",
            episodes=2,
            reward_model="partial-correlation",
            settings=["d4"],
            progress=False,
        )
        assert [run.agent for run in results.runs] == ["test-always-first"]
        with pytest.raises(TypeError, match="must be a Baseline subclass"):
            register_baseline("test-not-a-baseline", object)
    finally:
        BASELINES.pop("test-always-first")
