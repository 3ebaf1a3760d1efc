"""Output protection: output folders are checked before any work, earlier results are never
silently replaced, reports are written whole and leave no stale plots, and ``caasl demo``
writes only where asked (or into a new temporary folder it prints)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import caasl_agent.bench.cli
from caasl_agent.bench.reports import REPORT_FILES
from caasl_agent.bench.runner import benchmark
from caasl_agent.cli import main
from caasl_agent.outputs import check_output_dir
from caasl_agent.train import load_config, train

BENCH = ["bench", "--agents", "random", "--suite", "tiny", "--episodes", "1"]


@pytest.fixture(scope="module")
def tiny_results():
    return benchmark(["random"], suite="tiny", episodes=1, progress=False)


def _usage_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_check_output_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    for bad in (tmp_path / "file", tmp_path / "file" / "sub"):
        with pytest.raises(ValueError, match="is a file, not a folder"):
            check_output_dir(bad)


def test_train_refuses_an_earlier_run_before_any_work(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "final_model.zip").write_text("earlier model")
    with pytest.raises(ValueError, match="final_model.zip from an earlier run.*--overwrite"):
        train(load_config("cpu-quick"), run)
    assert (run / "final_model.zip").read_text() == "earlier model"
    assert sorted(p.name for p in run.iterdir()) == ["final_model.zip"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        train(load_config("cpu-quick"), tmp_path / "file")


def test_failed_resume_changes_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("the run's config")
    (tmp_path / "corrupt.zip").write_bytes(b"PK not really")
    with pytest.raises(ValueError, match="corrupt.zip is not a zip file"):
        train(load_config("sergio-cpu"), run, seed=5, resume=tmp_path / "corrupt.zip")
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    assert (run / "config.yaml").read_text() == "the run's config"


def test_bench_checks_the_output_folder_before_running(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert "is a file" in _usage_error([*BENCH, "--out", str(tmp_path / "file")], capsys)
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "results.json").write_text("{}")
    assert "--overwrite" in _usage_error([*BENCH, "--out", str(earlier)], capsys)
    assert (earlier / "results.json").read_text() == "{}"


def test_bench_overwrite_replaces_only_the_benchmark_files(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "stale.png").write_text("old")
    (out / "results.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    main([*BENCH, "--out", str(out), "--overwrite", "--no-plots"])
    assert not (out / "plots").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "results.json").read_text() != "{}"


def test_save_replaces_reports_whole_and_drops_stale_plots(tiny_results, tmp_path):
    out = tiny_results.save(tmp_path / "out")
    assert (out / "plots").is_dir()
    (out / "plots" / "stale.png").write_text("old")
    tiny_results.save(out, plots=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(set(REPORT_FILES) - {"plots"})


def test_demo_writes_only_into_a_new_temporary_folder(tiny_results, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(caasl_agent.bench.cli, "benchmark", lambda *a, **k: tiny_results)
    main(["demo", "--episodes", "1"])
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("plots and tables in ")
    folder = printed.removeprefix("plots and tables in ").rstrip("/")
    assert list(tmp_path.iterdir()) == []  # nothing in the working directory
    assert (Path(folder) / "results.json").is_file()
    shutil.rmtree(folder)


def test_write_atomic_leaves_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    from caasl_agent.outputs import write_atomic

    target = write_atomic(tmp_path / "results.json", '{"old": 1}')

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("caasl_agent.outputs.os.replace", fail)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, '{"new": 2}')
    assert target.read_text() == '{"old": 1}'
