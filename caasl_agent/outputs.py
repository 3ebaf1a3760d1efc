"""Output folders of ``caasl train``/``bench``/``demo``: checked before any work, never
silently overwritten."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path


def check_output_dir(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path`; ``ValueError`` naming it when it is a file, lies
    under a file, or its nearest existing folder is not writable (so that a long run does not
    fail only when it writes its results)."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise ValueError(f"output folder {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {path}: {existing} is not writable")
    return path


def refuse_existing(folder: Path, names: Iterable[str], option: str) -> None:
    """``ValueError`` when ``folder`` already holds any of ``names`` (results of an earlier
    run), naming them and ``option``, the way to replace them."""
    found = [name for name in names if (folder / name).exists()]
    if found:
        raise ValueError(
            f"{folder} already holds {', '.join(found)} from an earlier run; pass {option} to "
            "replace them, or choose another output folder"
        )


def remove_outputs(folder: Path, names: Iterable[str]) -> None:
    """Delete the files and folders ``names`` of ``folder`` (an earlier run's outputs), and
    nothing else in it."""
    for name in names:
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename, so
    that a crash or Ctrl-C leaves either the old file or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


__all__ = ["check_output_dir", "refuse_existing", "remove_outputs", "write_atomic"]
