"""Benchmark backends (here, worker processes, Ray) and resuming an interrupted benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import ray

from caasl_agent.bench.backends import BenchmarkFailed, make_executor
from caasl_agent.bench.runner import benchmark
from caasl_agent.cli import main

TINY = {"suite": "tiny", "episodes": 2, "reward_model": "partial-correlation", "progress": False}
CLI_TINY = ["bench", "--suite", "tiny", "--episodes", "2", "--reward-model", "partial-correlation"]


def assert_same_reports(a, b) -> None:
    """Every report file (not ``timings.json``, nor the per-run files in ``runs/``) is equal."""
    names = sorted(p.name for p in a.iterdir() if p.is_file() and p.name != "timings.json")
    assert names == sorted(p.name for p in b.iterdir() if p.is_file() and p.name != "timings.json")
    assert "results.json" in names and "edge_probs.npz" in names
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def local_ray():
    """A 2-CPU Ray instance in this process (the backend uses it instead of starting one)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_in_process_worker_processes_and_ray_write_the_same_bytes(tmp_path, local_ray):
    agents = "random,uncertainty"
    benchmark(agents.split(","), **TINY, out=tmp_path / "here", plots=False)
    main([*CLI_TINY, "--agents", agents, "--workers", "2", "--out", str(tmp_path / "pool")])
    main([*CLI_TINY, "--agents", agents, "--backend", "ray", "--out", str(tmp_path / "ray")])
    assert_same_reports(tmp_path / "here", tmp_path / "pool")
    assert_same_reports(tmp_path / "here", tmp_path / "ray")


class FailsAtD5:
    """Never intervenes; raises on ``d = 5`` while ``broken``; counts its calls."""

    def __init__(self):
        self.broken = True
        self.calls = 0

    def __call__(self, obs):
        self.calls += 1
        b, d = obs["history"].shape[0], obs["history"].shape[2]
        if d == 5 and self.broken:
            raise RuntimeError("boom")
        return -np.ones((b, 2 * d), np.float32)


def test_a_failed_run_is_named_and_a_rerun_runs_only_what_is_missing(tmp_path):
    agent = FailsAtD5()
    agents = {"random": "random", "flaky": agent}
    with pytest.raises(
        BenchmarkFailed, match="d5-shift / flaky / deterministic: RuntimeError: boom"
    ):
        benchmark(agents, **TINY, out=tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "runs").glob("*.npz")) == [
        "0.npz",
        "1.npz",
        "2.npz",
    ]
    assert not (tmp_path / "out" / "results.json").exists()  # no half-written reports
    agent.broken, agent.calls = False, 0
    benchmark(agents, **TINY, out=tmp_path / "out", plots=False)
    assert agent.calls == 3  # the d5-shift run only: one call per experiment of budget 3
    benchmark(agents, **TINY, out=tmp_path / "fresh", plots=False)
    assert_same_reports(tmp_path / "out", tmp_path / "fresh")


def test_cli_names_the_failed_run_and_exits_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [*CLI_TINY, "--agents", "random,test_bench_backends:FailsAtD5"]
            + ["--out", str(tmp_path / "out"), "--no-plots"]
        )
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "d5-shift / test_bench_backends:FailsAtD5 / deterministic: RuntimeError: boom" in err
    assert "Traceback" not in err


def test_a_folder_of_another_benchmark_is_never_overwritten(tmp_path):
    benchmark(["random"], **TINY, out=tmp_path / "out", plots=False)
    before = (tmp_path / "out" / "steps.csv").read_bytes()
    with pytest.raises(ValueError, match="runs of a different benchmark"):
        benchmark(["random"], **TINY, seed=1, out=tmp_path / "out")
    assert (tmp_path / "out" / "steps.csv").read_bytes() == before
    benchmark(["random"], **TINY).save(tmp_path / "saved", plots=False)
    with pytest.raises(ValueError, match="already holds benchmark results"):
        benchmark(["random"], **TINY, out=tmp_path / "saved")


def test_cli_says_when_ray_does_not_start(tmp_path, monkeypatch, capsys):
    def no_start(**kwargs):
        raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_start)
    with pytest.raises(SystemExit) as exit_info:
        main([*CLI_TINY, "--agents", "random", "--backend", "ray", "--out", str(tmp_path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Ray did not start or join a local Ray instance: The current node timed out" in err


@pytest.mark.parametrize(
    "backend, workers, address, match",
    [
        ("dask", 1, None, "unknown backend 'dask'"),
        ("ray", 2, None, "workers is for the local backend"),
        ("local", 1, "auto", "address is for the ray backend"),
        ("local", 0, None, "workers must be an integer >= 1"),
    ],
)
def test_bad_backend_options(backend, workers, address, match):
    with pytest.raises(ValueError, match=match):
        make_executor(backend, workers, address)
