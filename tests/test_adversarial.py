"""Adversarial inputs (issue 30): hostile model files, typos with ``--overwrite``, interrupted
runs, stale reruns and hostile run files. Every case either ends in a one-line error naming
the argument or file, or in documented correct behaviour; marker files prove that no payload
ran, and byte-identical earlier results prove that nothing was lost."""

from __future__ import annotations

import base64
import json
import pickle
import sys
import zipfile
from pathlib import Path

import pytest

import caasl_agent
import caasl_agent.pretrained
import caasl_envs
from caasl_agent import CAASL
from caasl_agent.cli import main
from caasl_agent.serialization import UnsafePickleError, pickled_globals, restricted_loads

SHIPPED = caasl_agent.pretrained.policy_path(caasl_agent.available_policies()[0])
#: modules whose import runs their ``main()`` on ``sys.argv`` (the issue's payloads)
SCRIPT_MODULES = ("numpy.f2py.__main__", "torch.utils.model_dump.__main__")


def _global_call(module: str, name: str = "main") -> bytes:
    """A protocol-4 pickle of ``module.name()`` with memoized names (STACK_GLOBAL)."""
    text = b"".join(b"\x8c" + bytes([len(s)]) + s.encode() + b"\x94" for s in (module, name))
    return b"\x80\x04" + text + b"\x93\x94)R\x94."


def _with_data(tmp_path: Path, name: str, **entries) -> Path:
    """A copy of a shipped policy whose ``data`` entries are replaced by ``entries``
    (bytes are pickles, stored as SB3 stores them)."""
    path = tmp_path / name
    with zipfile.ZipFile(SHIPPED) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "data":
                data = json.loads(content)
                for key, value in entries.items():
                    if isinstance(value, bytes):
                        value = {":type:": "x", ":serialized:": base64.b64encode(value).decode()}
                    data[key] = value
                content = json.dumps(data).encode()
            target.writestr(item, content)
    return path


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
def test_script_modules_are_refused_by_name_before_import(module):
    payload = _global_call(module)
    assert pickled_globals(payload) == [(module, "main")]
    with pytest.raises(UnsafePickleError, match=f"{module}.main"):
        restricted_loads(payload)
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
