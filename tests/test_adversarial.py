"""Adversarial inputs (issue 30): hostile model files, typos with ``--overwrite``, interrupted
runs, stale reruns and hostile run files. Every case either ends in a one-line error naming
the argument or file, or in documented correct behaviour; marker files prove that no payload
ran, and byte-identical earlier results prove that nothing was lost."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from zip_payloads import zip_with_data

import caasl_agent
import caasl_agent.pretrained
import caasl_envs
from caasl_agent import CAASL
from caasl_agent.cli import main
from caasl_agent.interrupts import CONNECT_TIMEOUT
from caasl_agent.serialization import UnsafePickleError, pickled_globals, restricted_loads

SHIPPED = caasl_agent.pretrained.policy_path(caasl_agent.available_policies()[0])
#: modules whose import runs their ``main()`` on ``sys.argv`` (the issue's payloads)
SCRIPT_MODULES = ("numpy.f2py.__main__", "torch.utils.model_dump.__main__")


def _global_call(module: str, name: str = "main") -> bytes:
    """A protocol-4 pickle of ``module.name()`` with memoized names (STACK_GLOBAL)."""
    text = b"".join(b"\x8c" + bytes([len(s)]) + s.encode() + b"\x94" for s in (module, name))
    return b"\x80\x04" + text + b"\x93\x94)R\x94."


def _with_data(tmp_path: Path, name: str, **entries) -> Path:
    """A copy of a shipped policy whose ``data`` entries are replaced by ``entries``."""
    return zip_with_data(SHIPPED, tmp_path / name, **entries)


@pytest.fixture
def payload_module(tmp_path, monkeypatch):
    """``(module name, marker)``: a module inside ``caasl_envs`` whose import creates
    ``marker`` (the old loader imported any module of an allowed package before checking)."""
    marker, folder = tmp_path / "payload-ran", tmp_path / "payload_pkg"
    folder.mkdir()
    (folder / "adversarial_payload.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef main():\n    pass\n"
    )
    monkeypatch.setattr(caasl_envs, "__path__", [*caasl_envs.__path__, str(folder)])
    yield "caasl_envs.adversarial_payload", marker
    sys.modules.pop("caasl_envs.adversarial_payload", None)


# --------------------------------------------------------------------------- payload modules
@pytest.mark.parametrize("module", SCRIPT_MODULES)
def test_script_modules_are_refused_by_name_before_import(module, tmp_path, capsys):
    payload = _global_call(module)
    assert pickled_globals(payload) == [(module, "main")]
    with pytest.raises(UnsafePickleError, match=f"{module}.main"):
        restricted_loads(payload)
    path = _with_data(tmp_path, "script.zip", lr_schedule=payload)  # the zip
    with pytest.raises(UnsafePickleError, match=f"entry 'lr_schedule' needs {module}.main"):
        CAASL.load(path, device="cpu")
    bench = ["bench", "--agents", f"sb3:{path}", "--suite", "tiny", "--out", str(tmp_path / "b")]
    assert f"{module}.main" in _one_line_error(bench, capsys)  # main() would exit 0
    assert module not in sys.modules


def test_payload_module_never_imported_on_any_path(tmp_path, payload_module, capsys):
    module, marker = payload_module
    path = _with_data(tmp_path, "evil.zip", lr_schedule=_global_call(module))
    with pytest.raises(UnsafePickleError, match=f"entry 'lr_schedule' needs {module}.main"):
        CAASL.load(path, device="cpu")
    train = ["train", "--resume", str(path), "--output-dir", str(tmp_path / "run")]
    bench = ["bench", "--agents", f"sb3:{path}", "--suite", "tiny", "--out", str(tmp_path / "b")]
    for argv in (train, bench):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"{module}.main" in err and err.count("\n") == 1
    assert not marker.exists() and module not in sys.modules
    assert not (tmp_path / "run").exists() and not (tmp_path / "b").exists()


def test_names_are_read_through_the_memo_and_stack(payload_module):
    """A global whose names were memoized, or hidden under popped items, is still read."""
    module, marker = payload_module
    hidden = (
        b"\x80\x04\x8c" + bytes([len(module)]) + module.encode() + b"\x94\x8c\x04main\x94"
        b"\x8c\x05numpy\x8c\x05dtype00\x93)R."  # push, push, POP, POP: the module's main
    )
    for payload in (hidden, b"\x80\x04\x8c\x05numpy\x94h\x00\x93."):
        with pytest.raises(UnsafePickleError):
            restricted_loads(payload)
    assert pickled_globals(hidden) == [(module, "main")]
    assert not marker.exists()


def test_plain_unpickling_would_run_the_payload(payload_module):
    """The payload is real: plain unpickling (SB3's, ``trust_pickles=True``) imports it."""
    module, marker = payload_module
    assert pickle.loads(_global_call(module)) is None  # noqa: S301  (main() ran)
    assert marker.exists()


def test_tensorboard_log_of_a_file_is_dropped(tmp_path):
    outside = tmp_path / "elsewhere"
    path = _with_data(tmp_path, "tb.zip", tensorboard_log=str(outside))
    assert CAASL.load(path, device="cpu").tensorboard_log is None
    mine = str(tmp_path / "mine")
    assert CAASL.load(path, device="cpu", tensorboard_log=mine).tensorboard_log == mine
    # plain loading keeps it (the policy class: shipped files name a module renamed since)
    policy = {"policy_class": caasl_agent.CAASLPolicy}
    trusted = CAASL.load(path, device="cpu", trust_pickles=True, custom_objects=policy)
    assert trusted.tensorboard_log == str(outside)


@pytest.mark.parametrize(
    "policy_kwargs, match",
    [
        ({"net_arch": [2**40]}, "policy_kwargs"),
        ({"net_arch": [64, 64], "actor_encoder_kwargs": {"embed_dim": 2**16}}, "policy_kwargs"),
    ],
)
def test_network_sizes_from_a_file_are_bounded(tmp_path, policy_kwargs, match):
    path = _with_data(tmp_path, "big.zip", policy_kwargs=policy_kwargs)
    with pytest.raises(ValueError, match=f"big.zip: '{match}' ask for networks of at least"):
        CAASL.load(path, device="cpu")


def test_replay_buffer_size_from_a_file_is_bounded(tmp_path):
    path = _with_data(tmp_path, "buffer.zip", buffer_size=2**50)
    with pytest.raises(ValueError, match="buffer.zip: 'buffer_size' 1125899906842624 needs"):
        CAASL.load(path, device="cpu")


def test_truncated_pickle_is_named(tmp_path):
    path = _with_data(tmp_path, "cut.zip", lr_schedule=pickle.dumps(list(range(50)))[:20])
    with pytest.raises(ValueError, match="cut.zip: entry 'lr_schedule' is corrupt"):
        CAASL.load(path, device="cpu")


# --------------------------------------------------------------------------- typo with overwrite
BENCH = ["bench", "--agents", "random", "--suite", "tiny", "--episodes", "1", "--no-plots"]
TINY_TRAIN = """\
base: cpu-quick
env_kwargs: {d: 4, budget: 3, n0: 8, reward_model: partial-correlation}
n_envs: 2
total_timesteps: TOTAL
device: cpu
algorithm: {learning_starts: 6, batch_size: 4, buffer_size: 100}
policy_kwargs:
  net_arch: [8]
  actor_encoder_kwargs: {embed_dim: 4, n_layers: 1, n_heads: 1, ff_dim: 4, dropout: 0.0}
  critic_encoder_kwargs: {embed_dim: 4, n_layers: 1, n_heads: 1, ff_dim: 4, dropout: 0.0}
evaluation: {every_steps: 12, n_envs: 2, seed: 100, heldout_n_envs: 2, heldout_seed: 200}
checkpoint_every_steps: 12
"""


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _one_line_error(argv: list[str], capsys, code: int = 2) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == code, err
    return err


def _tiny_config(tmp_path: Path, total: int = 24, **env) -> Path:
    text = TINY_TRAIN.replace("TOTAL", str(total))
    if env:
        text = text.replace("reward_model: partial-correlation", env["reward_model"])
    path = tmp_path / f"tiny-{total}-{len(env)}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def finished_bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "out"
    main([*BENCH, "--out", str(out)])
    return out


@pytest.mark.parametrize(
    "typo, named",
    [
        (["--agents", "randomm"], "randomm"),
        (["--suite", "tinyy"], "tinyy"),
        (["--settings", "d44"], "d44"),
        (["--reward-model", "nope-model"], "nope-model"),
        (["--scorer", "nope-scorer"], "nope-scorer"),
        (["--agents", "sb3:missing.zip"], "missing.zip"),
    ],
)
def test_bench_typo_with_overwrite_keeps_the_results(finished_bench, typo, named, capsys):
    before = _snapshot(finished_bench)
    command = [*BENCH, "--out", str(finished_bench), "--overwrite"]
    if typo[0] in command:
        command[command.index(typo[0]) + 1] = typo[1]
    else:
        command += typo
    assert named in _one_line_error(command, capsys)
    assert _snapshot(finished_bench) == before


def test_demo_refuses_a_bench_folder_and_keeps_a_demo_on_a_typo(finished_bench, tmp_path, capsys):
    before = _snapshot(finished_bench)
    for extra in ([], ["--overwrite"]):
        err = _one_line_error(
            ["demo", "--episodes", "1", "--out", str(finished_bench), *extra], capsys
        )
        assert "holds a caasl bench run" in err
    assert _snapshot(finished_bench) == before
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "results.json").write_text("an earlier demo")
    argv = ["demo", "--episodes", "1", "--out", str(demo), "--overwrite"]
    assert "nope-model" in _one_line_error([*argv, "--reward-model", "nope-model"], capsys)
    assert _snapshot(demo) == {"results.json": b"an earlier demo"}


def test_train_typo_with_overwrite_keeps_the_run_and_a_failed_run_leaves_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in (
        "config.yaml",
        "evaluations.csv",
        "best_model.zip",
        "checkpoints/caasl_12_steps.zip",
    ):
        (run / name).write_text(f"earlier {name}")
    (run / "notes.txt").write_text("mine")
    before = _snapshot(run)
    typo = _tiny_config(tmp_path, reward_model="reward_model: nope-model")
    argv = ["train", "--config", str(typo), "--output-dir", str(run), "--no-progress-bar"]
    assert "nope-model" in _one_line_error([*argv, "--overwrite"], capsys)
    assert _snapshot(run) == before  # nothing moved aside is left there either
    assert "tinyy" in _one_line_error([*argv[:2], "tinyy", *argv[3:], "--overwrite"], capsys)
    assert _snapshot(run) == before
    fresh = tmp_path / "fresh"
    argv[argv.index(str(run))] = str(fresh)
    assert "nope-model" in _one_line_error(argv, capsys)
    assert not fresh.exists()  # no config.yaml, no checkpoints/: the corrected rerun may go


def test_train_resume_into_its_run_appends_and_keeps_the_best(tmp_path, capsys):
    run = tmp_path / "run"
    quiet = "--no-progress-bar"
    main(["train", "--config", str(_tiny_config(tmp_path)), "--output-dir", str(run), quiet])
    rows = (run / "evaluations.csv").read_text().splitlines()
    assert len(rows) == 3  # header, steps 12 and 24
    rows[1] = rows[1].replace(rows[1].split(",")[1], "1000000.0", 1)  # a best none can beat
    (run / "evaluations.csv").write_text("\n".join(rows) + "\n")
    best = (run / "best_model.zip").read_bytes()
    resume = ["--resume", str(run / "checkpoints" / "caasl_24_steps.zip")]
    main(["train", "--config", str(run / "config.yaml"), "--output-dir", str(run), *resume, quiet])
    after = (run / "evaluations.csv").read_text().splitlines()
    assert after[:3] == rows and [r.split(",")[0] for r in after[3:]] == ["36", "48"]
    assert (run / "best_model.zip").read_bytes() == best
    capsys.readouterr()


# --------------------------------------------------------------------------- interrupts
def test_ctrl_c_stops_train_with_a_checkpoint_and_the_resume_command(tmp_path):
    run, config = tmp_path / "run", _tiny_config(tmp_path, total=10**6)
    argv = ["train", "--config", str(config), "--output-dir", str(run), "--no-progress-bar"]
    process = subprocess.Popen(
        [sys.executable, "-m", "caasl_agent.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while not list(run.glob("checkpoints/*.zip")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.2)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    took = time.monotonic() - sent
    assert process.returncode == 130, err
    assert took < 20, f"stopped {took:.1f} s after Ctrl-C"
    resume = err.split("--resume ")[-1].split()[0]
    assert f"--output-dir {run}" in err and Path(resume).is_file(), err
    assert (run / "config.yaml").is_file() and (run / "evaluations.csv").is_file()


def test_dead_ray_address_fails_fast_with_one_line(tmp_path, capsys):
    start = time.monotonic()
    err = _one_line_error(
        [*BENCH, "--backend", "ray", "--address", "127.0.0.1:1", "--out", str(tmp_path / "o")],
        capsys,
        code=1,
    )
    assert "'127.0.0.1:1'" in err and "nothing answers" in err
    assert time.monotonic() - start < CONNECT_TIMEOUT + 5
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- stale reruns
def _head(run_file: Path) -> dict:
    import numpy as np

    with np.load(run_file) as npz:
        return json.loads(str(npz["head"]))


def test_reruns_recompute_runs_of_another_agent_file_or_scorer(tmp_path, capsys):
    policies = caasl_agent.available_policies()
    agent = tmp_path / "agent.zip"
    agent.write_bytes(caasl_agent.pretrained.policy_path(policies[0]).read_bytes())
    out = tmp_path / "out"
    argv = [*BENCH, "--settings", "d4", "--agents", f"random,sb3:{agent}", "--out", str(out)]
    argv.remove("random")  # BENCH's own --agents value
    argv.remove("--agents")
    main(argv)
    first = {p.name: _head(p)["fingerprint"] for p in out.glob("runs/*.npz")}
    assert len(first) == 2 and capsys.readouterr().err.count("recomputing") == 0
    main(argv)  # the same command: everything reused
    assert capsys.readouterr().err.count("recomputing") == 0
    agent.write_bytes(caasl_agent.pretrained.policy_path(policies[1]).read_bytes())
    main(argv)
    err = capsys.readouterr().err
    assert "runs/1.npz (d4 / sb3:" in err and "another agent_sha256" in err
    assert "runs/0.npz" not in err  # the random run is reused
    main([*argv, "--scorer", "reward"])
    err = capsys.readouterr().err
    assert err.count("another scorer; recomputing") == 2
    scorers = {p.name: _head(p)["fingerprint"]["scorer"] for p in out.glob("runs/*.npz")}
    assert scorers == {"0.npz": None, "1.npz": None}  # None: the reward model scores
    assert first["0.npz"]["scorer"] == "exact-linear-scm"  # auto: the exact posterior, d=4


def test_truncated_run_file_is_named_and_recomputed(finished_bench, capsys):
    run = finished_bench / "runs" / "0.npz"
    data = run.read_bytes()
    run.write_bytes(data[: len(data) // 2])
    main([*BENCH, "--out", str(finished_bench)])
    assert f"{run} is corrupt" in capsys.readouterr().err
    assert _head(run)["fingerprint"]["setting"] == "d4"
