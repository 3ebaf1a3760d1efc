"""What the distribution ships: manifests of the shipped files, one version, the optional
dependencies' messages, ``caasl --version`` and a light ``import caasl_envs``."""

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch

import caasl_agent
import caasl_envs
from caasl_agent import pretrained
from caasl_envs import manifest, reward
from caasl_envs.optional import EXTRAS, MissingDependencyError, available, require

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter of this venv (one torch thread), from ``cwd``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


# --- manifests -------------------------------------------------------------------------------


def test_every_shipped_file_is_listed_with_its_sha256():
    """Adding a policy or weights without ``python -m caasl_envs.manifest update`` fails here."""
    folders = manifest.shipped_folders()
    assert [f.name for f, _ in folders] == ["weights", "pretrained"]
    for folder, pattern in folders:
        assert sorted(manifest.read_manifest(folder)) == sorted(
            p.name for p in folder.glob(pattern)
        )
    assert manifest.problems() == []


def copy_shipped(folder: Path, name: str, to: Path) -> Path:
    """``to`` holding ``folder/name`` and ``folder``'s manifest."""
    to.mkdir()
    shutil.copy(folder / name, to / name)
    shutil.copy(folder / manifest.MANIFEST, to / manifest.MANIFEST)
    return to / name


def one_line_error_naming(path: Path, call) -> str:
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


def test_a_truncated_reward_model_is_one_error_naming_it(tmp_path, monkeypatch):
    name = "avici-linear-v0.pt"
    path = copy_shipped(reward.WEIGHTS_DIR, name, tmp_path / "weights")
    assert manifest.verify(path) == path  # the copy itself is fine
    path.write_bytes(path.read_bytes()[:-100])
    monkeypatch.setattr(reward, "WEIGHTS_DIR", tmp_path / "weights")
    message = one_line_error_naming(path, lambda: caasl_envs.load_reward_model("avici-linear-v0"))
    assert "truncated or altered" in message and "244701 bytes" in message


def test_an_altered_policy_is_one_error_naming_it(tmp_path, monkeypatch):
    name = "caasl-linear-cpu-quick-v0"
    path = copy_shipped(pretrained._DIR, f"{name}.zip", tmp_path / "pretrained")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "_DIR", tmp_path / "pretrained")
    message = one_line_error_naming(path, lambda: caasl_agent.load_policy(name))
    assert "truncated or altered" in message


def test_update_lists_new_changed_and_gone_files_and_unlisted_files_are_refused(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "a.pt").write_bytes(b"a")
    (folder / "b.pt").write_bytes(b"b")
    with pytest.raises(ValueError, match="not listed.*python -m caasl_envs.manifest update"):
        manifest.verify(folder / "a.pt")
    assert manifest.update([(folder, "*.pt")]) == [f"+ {folder / 'a.pt'}", f"+ {folder / 'b.pt'}"]
    (folder / "a.pt").write_bytes(b"A")
    (folder / "b.pt").unlink()
    (folder / "c.pt").write_bytes(b"c")
    assert len(manifest.problems([(folder, "*.pt")])) == 3  # a altered, c unlisted, b absent
    changes = manifest.update([(folder, "*.pt")])
    assert changes == [f"+ {folder / 'c.pt'}", f"~ {folder / 'a.pt'}", f"- {folder / 'b.pt'}"]
    assert manifest.problems([(folder, "*.pt")]) == []
    entry = json.loads((folder / manifest.MANIFEST).read_text())["files"]["a.pt"]
    assert entry == {"sha256": manifest.sha256(folder / "a.pt"), "bytes": 1}


def test_a_broken_manifest_is_one_error_naming_it(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"a")
    (tmp_path / manifest.MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match=f"{tmp_path / manifest.MANIFEST} is not a"):
        manifest.verify(tmp_path / "a.pt")


# --- version ---------------------------------------------------------------------------------


def test_one_version_for_the_metadata_both_packages_and_the_changelog():
    assert caasl_envs.__version__ == caasl_agent.__version__ == version("caasl")
    assert "version = attr: caasl_envs._version.__version__" in (ROOT / "setup.cfg").read_text()
    assert f"## [{caasl_envs.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_caasl_version_lists_what_a_bug_report_needs(capsys):
    import gymnasium
    import stable_baselines3

    from caasl_agent.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code in (0, None)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"caasl {caasl_envs.__version__}"
    expected = {
        "Python": ".".join(map(str, sys.version_info[:3])),
        "PyTorch": torch.__version__,
        "Stable-Baselines3": stable_baselines3.__version__,
        "Gymnasium": gymnasium.__version__,
        "NumPy": np.__version__,
        "torch device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    listed = dict(line[2:].split(": ", 1) for line in lines[1:])
    for name, value in expected.items():
        assert listed[name].startswith(value), (name, listed[name])


def test_both_packages_are_typed():
    assert (ROOT / "caasl_envs" / "py.typed").is_file()
    assert (ROOT / "caasl_agent" / "py.typed").is_file()
    package_data = (ROOT / "setup.cfg").read_text().split("[options.package_data]")[1]
    assert package_data.count("py.typed") == 2 and package_data.count("MANIFEST.json") == 2


# --- optional dependencies -------------------------------------------------------------------


def test_require_names_the_extra_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert not available("ray")
    with pytest.raises(MissingDependencyError) as err:
        require("ray", purpose="backend 'ray'")
    assert str(err.value) == (
        "backend 'ray' needs ray, an optional dependency: pip install 'caasl[ray]'"
    )
    assert require("json", purpose="x") is json


def test_every_extra_named_in_a_message_exists_in_setup_cfg():
    extras = (ROOT / "setup.cfg").read_text().split("[options.extras_require]")[1]
    for extra in set(EXTRAS.values()):
        assert f"\n{extra} =\n" in extras, extra


def test_library_calls_without_their_optional_dependency(monkeypatch, tmp_path):
    from caasl_envs.reward.official import load_official_avici
    from caasl_envs.reward.training.distributed import Distributed

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(MissingDependencyError, match=r"load_official_avici .* 'caasl\[hub\]'"):
        load_official_avici("scm-v0")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingDependencyError, match=r"caasl\[tensorboard\]"):
        Distributed().summary_writer(tmp_path)


TINY_PRESET = """base: cpu-quick
n_envs: 2
total_timesteps: 16
checkpoint_every_steps: 16
env_kwargs: {d: 3, n0: 5, budget: 3, reward_model: partial-correlation}
algorithm: {learning_starts: 8, batch_size: 4, buffer_size: 100}
policy_kwargs:
  net_arch: [8]
  actor_encoder_kwargs: {embed_dim: 8, n_layers: 1, n_heads: 2, ff_dim: 8, dropout: 0.0}
  critic_encoder_kwargs: {embed_dim: 8, n_layers: 1, n_heads: 2, ff_dim: 8, dropout: 0.0}
evaluation: {every_steps: 16, n_envs: 2, seed: 1, heldout_n_envs: 2, heldout_seed: 2}
"""


def test_caasl_train_without_tensorboard_logs_to_csv_and_says_so(tmp_path, monkeypatch, capsys):
    from caasl_agent.cli import main

    (tmp_path / "tiny.yaml").write_text(TINY_PRESET)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as SB3 imports it
    out = tmp_path / "out"
    main(["train", "--config", str(tmp_path / "tiny.yaml"), "--output-dir", str(out)]
         + ["--no-progress-bar"])  # fmt: skip
    said = [line for line in capsys.readouterr().err.splitlines() if "TensorBoard" in line]
    assert said == [
        f"TensorBoard is not installed: training logs go to {out / 'progress.csv'} "
        "(pip install 'caasl[tensorboard]' for TensorBoard logs)"
    ]
    assert (out / "progress.csv").is_file()
    assert (out / "results.json").is_file() and not (out / "tb").exists()


def test_caasl_bench_ray_without_ray_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    from caasl_agent.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SystemExit) as done:
        main(["bench", "--suite", "tiny", "--episodes", "1", "--agents", "random"]
             + ["--backend", "ray", "--out", str(tmp_path / "out")])  # fmt: skip
    assert done.value.code == 2
    assert capsys.readouterr().err == (
        "caasl bench: error: backend 'ray' needs ray, an optional dependency: "
        "pip install 'caasl[ray]'\n"
    )


# --- import cost -----------------------------------------------------------------------------


def test_import_caasl_envs_leaves_the_heavy_optional_paths_unloaded(tmp_path):
    """Plotting, igraph (its drawing stack), SB3, pandas, scikit-learn and SciPy load on first use
    (benchmarks/bench_import.py times it)."""
    heavy = [
        "matplotlib",
        "igraph",
        "stable_baselines3",
        "pandas",
        "sklearn",
        "scipy",
        "tensorboard",
    ]
    code = f"import sys, caasl_envs\nprint([m for m in {heavy!r} if m in sys.modules])"
    done = run_python(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
