"""Safe loading of SB3/CAASL zips: crafted zips whose pickles run a payload under SB3's plain
loading are refused on every path (CAASL.load, load_policy, caasl train --resume, caasl bench
sb3:), and the shipped policies and ordinary SB3 models still load."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import cloudpickle
import pytest
from zip_payloads import zip_with_data

import caasl_agent
import caasl_agent.pretrained
from caasl_agent import CAASL
from caasl_agent.bench.loaders import load_sb3
from caasl_agent.cli import main
from caasl_agent.serialization import UnsafePickleError, restricted_loads, safe_custom_objects

SHIPPED = caasl_agent.pretrained.policy_path(caasl_agent.available_policies()[0])


class _System:
    """Pickles as a call of ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Eval:
    """Pickles as a call of ``builtins.eval(source)``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self):
        return eval, (self.source,)


def _payloads(marker: Path) -> dict[str, bytes]:
    """Pickles that create ``marker`` when plainly unpickled (or, for the last, when called)."""
    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": pickle.dumps(_System(f"touch {marker}")),
        "builtins.eval": pickle.dumps(_Eval(touch)),
        "cloudpickled lambda": cloudpickle.dumps(lambda _: exec(touch)),  # noqa: S102
    }


def _crafted(tmp_path: Path, key: str, payload: bytes, name: str = "crafted.zip") -> Path:
    """A copy of a shipped policy whose ``data`` entry ``key`` is ``payload``."""
    return zip_with_data(SHIPPED, tmp_path / name, **{key: payload})


def test_shipped_policies_load_safely():
    for name in caasl_agent.available_policies():
        objects = safe_custom_objects(caasl_agent.pretrained.policy_path(name))
        # saved under the old module name caasl_agent.policy, resolved to the current one
        assert objects["policy_class"] is caasl_agent.CAASLPolicy
        assert objects["observation_space"]["history"].shape[-1] == 2
    model = caasl_agent.load_policy(caasl_agent.available_policies()[0])
    assert isinstance(model, CAASL)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "cloudpickled lambda"])
@pytest.mark.parametrize("key", ["lr_schedule", "policy_class", "observation_space"])
def test_caasl_load_refuses_payload(tmp_path, kind, key):
    marker = tmp_path / "ran"
    path = _crafted(tmp_path, key, _payloads(marker)[kind])
    with pytest.raises(UnsafePickleError, match=f"entry '{key}'.*trust_pickles=True"):
        CAASL.load(path, device="cpu")
    assert not marker.exists()


def test_plain_loading_runs_the_payload(tmp_path):
    """The crafted zip is a real attack: SB3's unpickling (trust_pickles=True) runs it."""
    marker = tmp_path / "ran"
    path = _crafted(tmp_path, "lr_schedule", _payloads(marker)["os.system"])
    CAASL.load(path, device="cpu", trust_pickles=True)
    assert marker.exists()


def test_env_entry_that_imports_a_module_refused(tmp_path, monkeypatch):
    """A plain JSON ``env`` entry is handed to ``gym.make``, which imports the module it
    names: code runs without any pickle."""
    marker = tmp_path / "ran"
    (tmp_path / "evil_env_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "env.zip"
    with zipfile.ZipFile(SHIPPED) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "data":
                content = json.dumps({**json.loads(content), "env": "evil_env_module:X-v0"})
            target.writestr(item, content)
    with pytest.raises(UnsafePickleError, match="entry 'env'"):
        CAASL.load(path, device="cpu")
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017  (plain loading imports it, then fails)
        CAASL.load(path, device="cpu", trust_pickles=True)
    assert marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [
        ("builtins", "getattr"),
        ("builtins", "eval"),
        ("os", "system"),
        ("subprocess", "Popen"),
        ("torch.storage", "_load_from_bytes"),  # would torch.load(weights_only=False)
        ("torch", "load"),
        ("numpy", "load"),
        ("numpy", "memmap"),  # an ndarray subclass that opens files
        ("numpy", "dtype.__init__.__globals__"),
        ("caasl_agent.serialization", "restricted_loads"),
        ("__main__", "MyPolicy"),
    ],
)
def test_globals_outside_the_allow_list_are_refused(module, name):
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        restricted_loads(f"c{module}\n{name}\n.".encode())


def test_attribute_writes_on_classes_refused():
    # BUILD on the CAASLPolicy class itself: would monkey-patch it for the whole process
    crafted = b"ccaasl_agent.policies\nCAASLPolicy\n(N}S'predict'\nI1\nstb."
    with pytest.raises(UnsafePickleError, match="setting attributes"):
        restricted_loads(crafted)
    assert callable(caasl_agent.CAASLPolicy.predict)


def test_corrupt_zips_are_clear_errors(tmp_path):
    (tmp_path / "notzip.zip").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a zip file"):
        CAASL.load(tmp_path / "notzip.zip", device="cpu")
    with pytest.raises(ValueError, match="not a zip file"):  # caasl bench --agents sb3:PATH
        load_sb3(tmp_path / "notzip.zip")
    truncated = _crafted(tmp_path, "lr_schedule", pickle.dumps(_System("true"))[:9])
    with pytest.raises(ValueError, match="entry 'lr_schedule' is corrupt"):
        CAASL.load(truncated, device="cpu")
    with zipfile.ZipFile(tmp_path / "nodata.zip", "w") as archive:
        archive.writestr("policy.pth", b"")
    with pytest.raises(ValueError, match="no 'data' entry"):
        CAASL.load(tmp_path / "nodata.zip", device="cpu")


def test_corrupt_weights_are_a_clear_error(tmp_path):
    path = tmp_path / "weights.zip"
    with zipfile.ZipFile(SHIPPED) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            target.writestr(
                item, content[: len(content) // 2] if item.filename == "policy.pth" else content
            )
    with pytest.raises(ValueError, match="weights.zip: cannot load the model's weights"):
        CAASL.load(path, device="cpu")


def test_load_policy_refuses_payload(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    _crafted(tmp_path, "train_freq", _payloads(marker)["os.system"], name="evil-v0.zip")
    # listed in its folder's manifest (whoever can replace a shipped file can edit it too)
    from caasl_envs.manifest import FORMAT, MANIFEST, build_manifest

    files = build_manifest(tmp_path, "*.zip")
    (tmp_path / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": files}))
    monkeypatch.setattr(caasl_agent.pretrained, "_DIR", tmp_path)
    with pytest.raises(UnsafePickleError, match="entry 'train_freq'"):
        caasl_agent.load_policy("evil-v0")
    assert not marker.exists()


def test_train_resume_refuses_payload_before_writing(tmp_path, capsys):
    marker, out = tmp_path / "ran", tmp_path / "run"
    path = _crafted(tmp_path, "lr_schedule", _payloads(marker)["os.system"])
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--resume", str(path), "--output-dir", str(out), "--device", "cpu"])
    assert exit_info.value.code == 2
    assert "--trust-pickles" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()


def test_bench_sb3_refuses_payload(tmp_path, capsys):
    marker, out = tmp_path / "ran", tmp_path / "bench"
    path = _crafted(tmp_path, "action_space", _payloads(marker)["os.system"])
    argv = ["bench", "--agents", f"sb3:{path}", "--suite", "tiny", "--episodes", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(out)])
    assert exit_info.value.code == 2
    assert "entry 'action_space'" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()


def test_sb3_algorithms_load_safely(tmp_path):
    import torch
    from stable_baselines3 import PPO, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    ppo = PPO("MlpPolicy", "CartPole-v1", n_steps=8, batch_size=8)
    ppo.policy_kwargs = {"activation_fn": torch.nn.Tanh}
    td3 = TD3("MlpPolicy", "Pendulum-v1", action_noise=NormalActionNoise([0.0], [0.1]))
    for model in (ppo, td3):
        model.save(tmp_path / type(model).__name__)
        loaded = load_sb3(tmp_path / f"{type(model).__name__}.zip")
        assert type(loaded) is type(model)
        assert loaded.observation_space == model.observation_space
    assert isinstance(loaded.action_noise, NormalActionNoise)
    assert isinstance(load_sb3(SHIPPED), CAASL)  # pickled under the old module names
