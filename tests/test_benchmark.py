"""Benchmark harness: baselines, agent loaders, suites, runner, reports and CLI (tiny suite)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3 import A2C, PPO, SAC

from caasl_agent.bench.agents import CallableAgent, IncompatibleAgentError
from caasl_agent.bench.backends import make_executor
from caasl_agent.bench.baselines import (
    BASELINES,
    PLANNING_BASELINES,
    PosteriorUncertaintyAgent,
    RoundRobinAgent,
    make_baseline,
)
from caasl_agent.bench.cli import parse_reward_model
from caasl_agent.bench.loaders import load_agent, load_sb3
from caasl_agent.bench.reports import TABLE_METRICS, BenchmarkResults
from caasl_agent.bench.runner import benchmark
from caasl_agent.bench.suites import Setting, Suite, get_suite
from caasl_envs import make_sb3_vec_env, metrics

TINY = get_suite("tiny")
OUTPUTS = (
    "steps.csv",
    "episodes.csv",
    "summary.csv",
    "comparison.csv",
    "results.json",
    "table.md",
    "edge_probs.npz",
)


def observations(b: int, n: int, d: int, valid: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    history = np.zeros((b, n, d, 2), np.float32)
    history[:, :valid, :, 0] = rng.normal(size=(b, valid, d))
    mask = np.zeros((b, n), np.float32)
    mask[:, :valid] = 1
    return {"history": history, "mask": mask}


def all_off(obs):
    """A plain callable agent: never intervene."""
    b, d = obs["history"].shape[0], obs["history"].shape[2]
    return -np.ones((b, 2 * d), np.float32)


# ----------------------------------------------------------------------------- baselines
@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("d", [3, 7])
@pytest.mark.parametrize("target_only", [False, True])
def test_baselines_act_for_any_d_and_layout(name, d, target_only):
    if target_only and name in ("eig", "eig-batch"):  # no likelihood for targets-only actions
        with pytest.raises(IncompatibleAgentError, match="likelihood"):
            make_baseline(name, target_only, seed=1, reward_model="partial-correlation")
        return
    agent = make_baseline(name, target_only, seed=1, reward_model="partial-correlation")
    obs = observations(5, 12, d, 9)
    action, _ = agent.predict(obs, deterministic=True)
    assert action.shape == (5, d if target_only else 2 * d)
    assert action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    targets = action[:, :d] > 0
    if name == "observational":
        assert not targets.any()
    if name in ("random-single", "round-robin", "uncertainty", "eig"):
        assert (targets.sum(1) == 1).all()
    if name == "random-zero" and not target_only:
        assert (action[:, d:] == 0).all()
    single, _ = agent.predict({k: v[0] for k, v in obs.items()})
    assert single.shape == action.shape[1:]


@pytest.mark.parametrize("name", ["random", "random-single", "round-robin"])
def test_random_baselines_reach_every_variable(name):
    # Defect 4 of the original code: random targets only among the first d/2 variables.
    d = 10
    agent = make_baseline(name, seed=0)
    obs = observations(400, 4, d, 4)
    action, _ = agent.predict(obs, episode_start=np.ones(400, bool))
    counts = (action[:, :d] > 0).sum(0)
    assert (counts > 0).all(), counts


def test_round_robin_cycles_through_all_variables():
    d, b = 6, 3
    agent = RoundRobinAgent(seed=0)
    obs = observations(b, 8, d, 4)
    state, start, chosen = None, np.ones(b, bool), []
    for _ in range(d):
        action, state = agent.predict(obs, state=state, episode_start=start)
        chosen.append(action[:, :d].argmax(1))
        start = np.zeros(b, bool)
    chosen = np.stack(chosen, 1)  # (B, d)
    assert (np.sort(chosen, 1) == np.arange(d)).all()
    assert ((np.diff(chosen, axis=1) % d) == 1).all()


class FixedPosterior:
    """A reward model whose edge probabilities are certain except around one variable."""

    expects_counts = False

    def __init__(self, uncertain: int):
        self.uncertain = uncertain
        self.calls = []

    def edge_probs(self, x, mask=None):
        self.calls.append((tuple(x.shape), mask))
        b, _, d, _ = x.shape
        p = torch.zeros(b, d, d)
        p[:, self.uncertain, :] = 0.5
        p[:, 0, 1] = 0.9
        return p * (1 - torch.eye(d))


def test_uncertainty_agent_targets_the_most_uncertain_variable():
    d = 6
    model = FixedPosterior(uncertain=4)
    agent = PosteriorUncertaintyAgent(model, seed=0)
    action, _ = agent.predict(observations(64, 10, d, 7))
    assert (action[:, :d].argmax(1) == 4).all() and ((action[:, :d] > 0).sum(1) == 1).all()
    assert set(np.unique(action[:, d:])) == {-1.0, 1.0}
    # Only the valid rows reach the reward model, as in the environment's own call.
    assert model.calls[-1] == ((64, 7, d, 2), None)


# ----------------------------------------------------------------------------- loaders, suites
def tiny_sb3_env(algorithm_steps: int = 0):
    kwargs = TINY.setting("d4").env_kwargs()
    kwargs.pop("simulator")
    return make_sb3_vec_env("caasl/LinearGaussian-v0", n_envs=4, seed=0, **kwargs)


@pytest.mark.parametrize("cls", [PPO, A2C, SAC])
def test_sb3_zip_algorithm_is_detected(tmp_path, cls):
    model = cls("MultiInputPolicy", tiny_sb3_env(), seed=0)
    model.save(tmp_path / "model.zip")
    assert type(load_sb3(tmp_path / "model.zip")) is cls


def test_load_agent_specs():
    assert type(load_agent("caasl_agent.bench.baselines:ObservationalAgent")).__name__ == (
        "ObservationalAgent"
    )
    assert isinstance(load_agent(all_off), CallableAgent)
    with pytest.raises(ValueError, match="unknown agent"):
        load_agent("no-such-agent")
    with pytest.raises(ValueError, match="cannot import"):
        load_agent("no_such_module:Agent")
    with pytest.raises(ValueError, match="no shipped policy 'no-such-policy'"):
        load_agent("caasl:no-such-policy")


def test_linear_suite_settings_and_seeds():
    linear = get_suite("linear")
    names = [s.name for s in linear.settings]
    assert names == [
        "in-distribution",
        "scale-free",
        "scale-free-mu0.1",
        "scale-free-mu0.1-gumbel",
        "scale-free-gumbel",
        "d12",
        "d15",
        "d20",
        "d30",
        "shift",
    ]
    assert linear.setting("d30").env_kwargs()["d"] == 30
    assert linear.setting("scale-free-mu0.1-gumbel").env_kwargs()["noise"] == "gumbel"
    assert linear.setting("shift").env_kwargs()["intervention"] == "shift"
    seeds = linear.episode_seeds("d12", 100, seed=3)
    assert len(set(seeds)) == 100
    assert linear.episode_seeds("d12", 10, seed=3) == seeds[:10]
    assert linear.episode_seeds("d15", 10, seed=3) != seeds[:10]
    assert linear.episode_seeds("d12", 10, seed=4) != seeds[:10]


def test_reward_model_option_parsing():
    assert parse_reward_model("exact-linear-gaussian") == "exact-linear-gaussian"
    assert parse_reward_model("exact-linear-gaussian,d30=partial-correlation") == {
        "*": "exact-linear-gaussian",
        "d30": "partial-correlation",
    }


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def ppo_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("sb3") / "ppo.zip"
    model = PPO("MultiInputPolicy", tiny_sb3_env(), n_steps=16, batch_size=32, seed=0)
    model.learn(64)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def end_to_end(tmp_path_factory, ppo_zip):
    out = tmp_path_factory.mktemp("bench")
    agents = [*BASELINES, all_off, f"sb3:{ppo_zip}"]
    with pytest.warns(UserWarning, match="skipped on d5-shift"):
        results = benchmark(
            agents,
            suite="tiny",
            episodes=3,
            seed=0,
            modes=("deterministic", "stochastic"),
            reward_model="partial-correlation",
            scorer="reward",  # metrics from the reward model: the return telescopes them
            progress=False,
            out=out,
        )
    return results, out


def test_outputs_exist_and_agree(end_to_end):
    results, out = end_to_end
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for metric in TABLE_METRICS:
        for mode in ("deterministic", "stochastic"):
            assert (out / "plots" / f"{metric}-{mode}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The MLP policy was trained at d=4: it is skipped (and says so) on the d=5 setting.
    assert [(s["setting"], s["mode"]) for s in results.meta["skipped"]] == [
        ("d5-shift", "deterministic"),
        ("d5-shift", "stochastic"),
    ]
    steps = pd.read_csv(out / "steps.csv")
    episodes = pd.read_csv(out / "episodes.csv")
    summary = pd.read_csv(out / "summary.csv")
    data = json.loads((out / "results.json").read_text())
    assert data["suite"] == "tiny" and data["modes"] == ["deterministic", "stochastic"]
    assert {s["reward_model"] for s in data["settings"]} == {"partial-correlation"}
    assert len(data["runs"]) == 2 * 2 * (len(BASELINES) + 2) - 2
    assert len(steps) == sum(3 * 4 for _ in data["runs"])  # 3 episodes x (budget 3 + 1)
    for run in data["runs"]:
        rows = steps[
            (steps.setting == run["setting"])
            & (steps.agent == run["agent"])
            & (steps["mode"] == run["mode"])
        ]
        for metric, values in run["metrics"].items():
            per_step = rows.sort_values(["episode", "experiments"])[metric].to_numpy()
            np.testing.assert_allclose(
                per_step, np.array(values, float).reshape(-1), rtol=0, atol=0
            )
        last = episodes[
            (episodes.setting == run["setting"])
            & (episodes.agent == run["agent"])
            & (episodes["mode"] == run["mode"])
        ]
        final = np.array(run["metrics"]["expected_correct_entries"])[:, -1]
        np.testing.assert_array_equal(last["expected_correct_entries"].to_numpy(), final)
        mean = summary[
            (summary.setting == run["setting"])
            & (summary.agent == run["agent"])
            & (summary["mode"] == run["mode"])
            & (summary.metric == "expected_correct_entries")
        ]["mean"].item()
        assert mean == pytest.approx(final.mean(), rel=1e-12)
        # The reward is the increase of the expected number of correct entries.
        ece = np.array(run["metrics"]["expected_correct_entries"])
        np.testing.assert_allclose(
            np.array(run["metrics"]["return"]), ece - ece[:, :1], rtol=1e-5, atol=1e-5
        )
    table = (out / "table.md").read_text()
    for label in results.meta["agents"]:
        assert f"| {label} |" in table
    assert "Deterministic policies" in table and "Stochastic policies" in table
    assert "Paired difference vs `random`" in table


def test_metrics_recomputed_from_saved_edge_probabilities(end_to_end):
    results, out = end_to_end
    loaded = BenchmarkResults.load(out)
    assert len(loaded.runs) == len(results.runs)
    for run in loaded.runs:
        again = metrics.all_metrics(torch.as_tensor(run.probs), torch.as_tensor(run.graphs))
        for name, value in again.items():
            np.testing.assert_allclose(
                value.numpy(), run.metrics[name][:, -1], rtol=1e-12, atol=1e-12, err_msg=name
            )
    pd.testing.assert_frame_equal(loaded.summary(), results.summary())


def test_save_load_save_keeps_every_file_including_timings(end_to_end, tmp_path):
    results, out = end_to_end
    assert results.timings  # one entry per run
    again = BenchmarkResults.load(out).save(tmp_path / "again", plots=False)
    assert json.loads((again / "timings.json").read_text()) == results.timings
    for name in OUTPUTS:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_paired_vs_script_keeps_modes_apart_and_uses_the_harness_intervals(end_to_end):
    import runpy

    results, out = end_to_end
    paired_tables = runpy.run_path("benchmarks/paired_vs.py")["paired_tables"]
    text = paired_tables(BenchmarkResults.load(out), "random-zero", "random")
    assert "deterministic policies" in text and "stochastic policies" in text
    comparison = results.comparison("random")
    for mode, section in zip(("deterministic", "stochastic"), text.split("Paired")[1:]):
        row = comparison[
            (comparison.agent == "random-zero")
            & (comparison["mode"] == mode)
            & (comparison.setting == TINY.settings[0].name)
            & (comparison.metric == "expected_correct_entries")
        ].iloc[0]
        cell = f"{row.mean_diff:.3f} [{row.ci95_low:.3f}, {row.ci95_high:.3f}]"
        assert f"| {TINY.settings[0].name} | {cell} |" in section, (mode, cell)


def test_designer_table_pools_draws_and_pairs_by_environment_seed(end_to_end):
    """Runs of an agent over other environments (another --seed) are pooled, a repeated
    environment is kept once, pairs form by environment seed, and two different results for
    one environment are refused."""
    import dataclasses
    import runpy

    results, _ = end_to_end
    script = runpy.run_path("benchmarks/designer_table.py")
    label_runs, paired_difference = script["label_runs"], script["paired_difference"]
    setting = TINY.settings[0].name
    pick = {
        run.agent: run
        for run in results.runs
        if run.setting == setting and run.mode == "deterministic"
    }
    mine, ref = pick["random-zero"], pick["random"]

    def other_draw(run, shift=1.0):  # the same run on other environments
        return dataclasses.replace(
            run,
            seeds=tuple(seed + 10**6 for seed in run.seeds),
            metrics={name: values + shift for name, values in run.metrics.items()},
        )

    runs = [mine, other_draw(mine, 2.0), mine, ref, other_draw(ref)]
    pooled = label_runs(runs)
    assert len(pooled[setting, "random-zero"].seeds) == 2 * len(mine.seeds)  # the repeat kept once
    diff = paired_difference(pooled[setting, "random-zero"], pooled[setting, "random"], "shd")
    first = mine.metrics["shd"][:, -1] - ref.metrics["shd"][:, -1]
    np.testing.assert_allclose(diff, np.concatenate([first, first + 1.0]))
    # the reference on the second draw only: pairs over the shared environments
    alone = label_runs([mine, other_draw(mine, 2.0), other_draw(ref)])
    diff = paired_difference(alone[setting, "random-zero"], alone[setting, "random"], "shd")
    np.testing.assert_allclose(diff, first + 1.0)
    with pytest.raises(ValueError, match="two different results"):
        label_runs([mine, dataclasses.replace(mine, metrics=other_draw(mine).metrics)])
    both = [mine, dataclasses.replace(mine, mode="stochastic", metrics=other_draw(mine).metrics)]
    assert set(label_runs(both)) == {
        (setting, "random-zero (deterministic)"),
        (setting, "random-zero (stochastic)"),
    }
    with pytest.raises(ValueError, match="two different results"):  # its modes differ
        label_runs(both, frozenset({"random-zero"}))
    # after k experiments instead of all: the k-th column of the per-step metric
    early = paired_difference(mine, ref, "shd", experiments=1)
    np.testing.assert_allclose(early, mine.metrics["shd"][:, 1] - ref.metrics["shd"][:, 1])
    steps = mine.metrics["shd"].shape[1]
    with pytest.raises(ValueError, match="--experiments"):
        paired_difference(mine, ref, "shd", experiments=steps)


def test_every_agent_sees_the_same_environments(end_to_end):
    results, _ = end_to_end
    seen: dict[str, list[np.ndarray]] = {}

    def recorder(label):
        def act(obs):
            seen.setdefault(label, []).append(obs["history"].copy())
            return all_off(obs)

        act.__name__ = label
        return act

    benchmark(
        [recorder("first"), "random", recorder("second")],
        suite="tiny",
        settings=["d4"],
        episodes=3,
        reward_model="partial-correlation",
        progress=False,
    )
    # Same hidden systems and initial data for every agent, in this run and the one above.
    np.testing.assert_array_equal(seen["first"][0], seen["second"][0])
    first = {}
    for run in results.runs:
        ref = first.setdefault(run.setting, run)
        np.testing.assert_array_equal(run.graphs, ref.graphs)
        np.testing.assert_array_equal(
            run.metrics["expected_correct_entries"][:, 0],
            ref.metrics["expected_correct_entries"][:, 0],
        )
        assert run.seeds == ref.seeds


def test_two_runs_are_byte_identical(tmp_path):
    def run(out, seed=0):
        benchmark(
            ["random", "uncertainty", all_off],
            suite="tiny",
            episodes=2,
            seed=seed,
            reward_model="partial-correlation",
            progress=False,
        ).save(out, plots=False)

    run(tmp_path / "a")
    run(tmp_path / "b")
    run(tmp_path / "c", seed=1)
    for name in OUTPUTS:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "steps.csv").read_bytes() != (
        tmp_path / "c" / "steps.csv"
    ).read_bytes()


@pytest.fixture
def keep_torch_threads():
    """The CLI sets torch's thread count; give the next tests back what they had."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_cli_bench_and_demo(tmp_path, keep_torch_threads):
    from caasl_agent.cli import main

    main(
        ["bench", "--agents", "random,observational", "--suite", "tiny", "--episodes", "2"]
        + ["--reward-model", "partial-correlation", "--out", str(tmp_path / "b"), "--no-plots"]
    )
    summary = pd.read_csv(tmp_path / "b" / "summary.csv")
    assert set(summary.agent) == {"random", "observational"}
    assert not (tmp_path / "b" / "plots").exists()
    main(
        ["demo", "--episodes", "2", "--reward-model", "partial-correlation"]
        + ["--out", str(tmp_path / "demo"), "--threads", "1"]
    )
    summary = pd.read_csv(tmp_path / "demo" / "summary.csv")
    assert set(BASELINES) - set(PLANNING_BASELINES) <= set(summary.agent)
    assert not set(PLANNING_BASELINES) & set(summary.agent)  # slow planners: only when named
    assert (tmp_path / "demo" / "plots" / "return.png").exists()


def test_uncertainty_baseline_shares_the_environments_forward():
    from caasl_agent.bench.runner import run_setting
    from caasl_envs.reward import PartialCorrelationRewardModel

    class Counting(PartialCorrelationRewardModel):
        calls = 0

        def edge_probs(self, x, mask=None):
            Counting.calls += 1
            return super().edge_probs(x, mask)

    setting = TINY.setting("d4")
    out = run_setting("uncertainty", setting, [1, 2, 3], True, Counting())
    assert Counting.calls == setting.env_kwargs()["budget"] + 1
    assert out["metrics"]["return"].shape == (3, 4)


def test_sergio_suite_runs_target_only_baselines():
    sergio = get_suite("sergio")
    assert [s.name for s in sergio.settings] == [
        "in-distribution",
        "scale-free",
        "d+2",
        "d+5",
        "d+10",
        "knockdown",
        "drop-seq",
        "noisy-interventions",
    ]
    knockdown = sergio.setting("knockdown")
    small = Setting(
        "knockdown", knockdown.env_id, {**knockdown.overrides, "d": 5, "n0": 10, "budget": 2}
    )
    results = benchmark(
        ["random-single", "uncertainty"],
        suite=Suite("sergio-small", 1, (small,), episodes=2),
        reward_model="partial-correlation",
        progress=False,
    )
    for run in results.runs:
        assert np.isfinite(run.metrics["expected_correct_entries"]).all()
        assert run.probs.shape == (2, 5, 5)


def test_worker_processes_give_the_same_results_as_one_process():
    def run(workers):
        return benchmark(
            ["random", "observational"],
            suite="tiny",
            episodes=2,
            reward_model="partial-correlation",
            executor=make_executor("local", workers, None),
            progress=False,
        )

    here, pooled = run(1), run(2)
    assert [(r.setting, r.agent) for r in pooled.runs] == [(r.setting, r.agent) for r in here.runs]
    for a, b in zip(here.runs, pooled.runs):
        np.testing.assert_array_equal(a.graphs, b.graphs)
        np.testing.assert_array_equal(a.probs, b.probs)
        for key in a.metrics:
            np.testing.assert_array_equal(a.metrics[key], b.metrics[key])


def test_policy_of_another_simulator_is_skipped_with_the_reason():
    knockdown = get_suite("sergio").setting("knockdown")
    small = Setting(
        "knockdown", knockdown.env_id, {**knockdown.overrides, "d": 5, "n0": 10, "budget": 2}
    )
    with pytest.warns(UserWarning, match="targets and values per variable, the setting takes"):
        results = benchmark(
            ["random", "caasl:caasl-linear-exact-v0"],
            suite=Suite("sergio-small", 1, (small,), episodes=2),
            reward_model="partial-correlation",
            progress=False,
        )
    assert [r.agent for r in results.runs] == ["random"]
    assert results.meta["skipped"][0]["agent"] == "caasl:caasl-linear-exact-v0"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"episodes": 1.7}, "episodes must be an integer"),
        ({"episodes": 0}, "episodes must be an integer"),
        ({"executor": "pool"}, "executor must have a map_unordered"),
        ({"settings": []}, "no settings selected"),
        ({"reward_model": {"d4": "nope"}}, "unknown reward model 'nope' for setting 'd4'"),
        ({"reward_model": {"nope": "constant-prior"}}, r"does not have: \['nope'\]"),
    ],
)
def test_bad_benchmark_arguments_fail_before_any_run(kwargs, match):
    ran = []

    def agent(obs):
        ran.append(1)
        return np.zeros((obs["history"].shape[0], 2 * obs["history"].shape[2]))

    with pytest.raises((ValueError, TypeError), match=match):
        benchmark([agent], suite="tiny", **{"episodes": 2, **kwargs}, progress=False)
    assert not ran


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "--suite", "nope"], "caasl bench: error: unknown or unavailable suite 'nope'"),
        (["bench", "--episodes", "0"], "expected an integer >= 1, got 0"),
        (["train", "--total-timesteps", "-5"], "expected an integer >= 1, got -5"),
        (["demo", "--env", "nope"], "invalid choice: 'nope'"),
    ],
)
def test_cli_reports_bad_input_as_a_one_line_usage_error(argv, message, capsys):
    from caasl_agent.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
