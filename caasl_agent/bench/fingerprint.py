"""What produced a finished benchmark run, so that a rerun reuses only runs of the same inputs.

``caasl bench --out OUT`` keeps every finished run in ``OUT/runs/<index>.npz``
(:class:`~caasl_agent.bench.backends.RunStore`) and the same command reruns only the missing
ones. A run is reused only when its *fingerprint*, stored in the file when it was saved, equals
the fingerprint of the task now asking for it (:func:`run_fingerprint`):

* the task itself: setting, environment kwargs, agent label, mode, episode seeds, agent seed,
  reward model and device (:func:`caasl_agent.bench.backends.fingerprint`);
* the scorer of its metrics (``--scorer``: runs scored by the exact posterior are not
  relabelled as the reward model's);
* what the agent is: the SHA-256 of its file for ``sb3:PATH``, ``caasl:NAME`` and
  ``module:attr`` specs (a zip replaced behind the same name is a different agent), or of its
  weights for an agent object with a torch ``policy``;
* the code version (``caasl_envs.__version__``).

:func:`check_stored` reads a stored run before it is reused: a file that does not open or
whose arrays do not read (truncated, garbled) and a file from other inputs are not reused; a
line on standard error names the file and why (the fields that differ), and the run is
recomputed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

import caasl_envs
from caasl_envs.manifest import sha256


def run_fingerprint(task: Any, base: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of ``task`` (JSON-ready; module docstring): ``base`` (the task's own
    fields, :func:`~caasl_agent.bench.backends.fingerprint`) plus ``scorer``, ``agent_sha256``
    and ``code_version``."""
    fingerprint = {
        **base,
        "scorer": _model_name(task.scorer),
        "agent_sha256": agent_digest(task.label, task.agent),
        "code_version": caasl_envs.__version__,
    }
    return json.loads(json.dumps(fingerprint, default=repr))  # as the file will hold it


def _model_name(model: Any) -> str | None:
    if model is None or isinstance(model, str):
        return model
    return str(getattr(model, "name", None) or type(model).__qualname__)


def agent_digest(label: str, agent: Any) -> str | None:
    """SHA-256 of the file behind an agent spec (``sb3:PATH``, ``caasl:NAME``, ``module:attr``),
    else of the weights of an agent object's torch ``policy``; ``None`` for a baseline name or
    an object without weights (then the label and the code version identify it)."""
    path = agent_file(label)
    if path is not None:
        return file_digest(path)
    module = getattr(agent, "policy", agent)
    if isinstance(module, torch.nn.Module):
        digest = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            data = tensor.detach().cpu().contiguous().view(-1).view(torch.uint8)
            digest.update(data.numpy().tobytes())
        return digest.hexdigest()
    return None


def agent_file(label: str) -> Path | None:
    """The file an agent spec names, when it is one (``None`` for a baseline name, another
    label, or a ``module:attr`` whose module is not imported: nothing is imported here)."""
    kind, sep, rest = label.partition(":")
    if not sep:
        return None
    if kind == "sb3":
        path = Path(rest) if Path(rest).is_file() else Path(rest).with_suffix(".zip")
    elif kind == "caasl":
        from caasl_agent.pretrained import available_policies, policy_path

        path = policy_path(rest) if rest in available_policies() else None
    else:  # module:attr, which loading the agent imported
        path = getattr(sys.modules.get(kind), "__file__", None)
    return Path(path) if path is not None and Path(path).is_file() else None


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (cached on its path, size and modification time)."""
    stat = Path(path).stat()
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256(Path(path))


def check_stored(path: Path, fingerprint: dict[str, Any]) -> bool:
    """Whether the run stored at ``path`` can be reused for a task of ``fingerprint``: the file
    reads whole and was saved with the same fingerprint. Otherwise one line on standard error
    names the file and why, and the caller recomputes the run."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}  # reads (and CRC-checks) all
        stored = json.loads(str(arrays["head"])).get("fingerprint")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        _say(f"{path} is corrupt ({type(err).__name__}: {err}); recomputing the run")
        return False
    if stored == fingerprint:
        return True
    what = f"{fingerprint.get('setting')} / {fingerprint.get('agent')} / {fingerprint.get('mode')}"
    if not isinstance(stored, dict):
        _say(f"{path} ({what}) records no fingerprint of its inputs; recomputing the run")
        return False
    changed = sorted(k for k in {*stored, *fingerprint} if stored.get(k) != fingerprint.get(k))
    _say(f"{path} ({what}) was produced with another {', '.join(changed)}; recomputing the run")
    return False


def _say(line: str) -> None:
    print(f"caasl bench: {line}", file=sys.stderr, flush=True)


__all__ = ["agent_digest", "agent_file", "check_stored", "file_digest", "run_fingerprint"]
