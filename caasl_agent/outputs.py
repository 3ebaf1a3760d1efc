"""Output folders of ``caasl train``/``bench``/``demo``: checked before any work, never
silently overwritten, and replaced only by a run that worked.

:class:`Replacement` is how ``--overwrite`` replaces an earlier run: the earlier outputs are
moved aside into ``FOLDER/.caasl-replaced/`` (nothing is deleted), the new run writes its own,
and only once it has produced a result (:meth:`Replacement.commit`) are the earlier ones
deleted; if it fails before that, what it wrote is removed and the earlier outputs are moved
back (:meth:`Replacement.rollback`), so a typo or a failed run loses nothing and leaves nothing
behind (:func:`replacing`). The arguments are validated before anything is moved where the
command can (the whole config, the resume file, the agents), and a run that fails on a bad
argument later still finds the earlier outputs back in place.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
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


#: where :class:`Replacement` keeps the earlier outputs until the new run has a result
ASIDE = ".caasl-replaced"


class Replacement:
    """The outputs ``names`` of ``folder`` being replaced by a new run (module docstring).

    :param aside: move the earlier outputs aside (``--overwrite``); without it there are none
        (the caller refused them) or they are the run's own (``--resume``), and are kept.
    """

    def __init__(self, folder: Path, names: Iterable[str], aside: bool) -> None:
        self.folder, self.names = Path(folder), tuple(names)
        self.created = not self.folder.exists()
        self.before = {n for n in self.names if _exists(self.folder / n)}
        self.done = False
        if aside and self.before:
            stash = self.folder / ASIDE
            if stash.exists():
                raise ValueError(
                    f"{stash} holds the outputs of an interrupted replacement: move them back "
                    "into the output folder or delete them, then run again"
                )
            stash.mkdir()
            for name in sorted(self.before):
                os.replace(self.folder / name, stash / name)

    def commit(self) -> None:
        """The new run has a result: delete the earlier outputs moved aside."""
        if not self.done:
            self.done = True
            shutil.rmtree(self.folder / ASIDE, ignore_errors=True)

    def rollback(self) -> None:
        """The new run failed before a result: remove what it wrote (all of ``names`` that
        were not there before, or all when they were moved aside) and move the earlier
        outputs back; remove the folder when this run created it and it is empty."""
        if self.done:
            return
        self.done = True
        stash = self.folder / ASIDE
        moved = stash.is_dir()
        new = [n for n in self.names if moved or n not in self.before]
        remove_outputs(self.folder, new)
        if moved:
            for item in stash.iterdir():
                os.replace(item, self.folder / item.name)
            stash.rmdir()
        if self.created and self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


@contextlib.contextmanager
def replacing(
    folder: Path, names: Iterable[str], aside: bool, has_result: Callable[[], bool]
) -> Iterator[Replacement]:
    """A :class:`Replacement` for the body (the new run): committed when the body returns, or
    when it raises (Ctrl-C included) after the new run produced a result (``has_result()``,
    e.g. a first finished run or evaluation: the run is then resumable and kept); rolled back
    when it raises before."""
    replacement = Replacement(folder, names, aside)
    try:
        yield replacement
    except BaseException:
        if has_result():
            replacement.commit()
        else:
            replacement.rollback()
        raise
    replacement.commit()


def read_csv_rows(path: Path) -> list[dict[str, float]]:
    """The rows of a numeric CSV file written by :func:`write_csv_atomic` (``[]`` when absent);
    ``ValueError`` naming the file when it is not one."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (ValueError, TypeError, csv.Error) as err:
        raise ValueError(f"{path} is not a numeric CSV file ({err})") from None


def _number(text: str) -> float:
    value = float(text)
    return int(value) if text.strip().lstrip("-").isdigit() else value


def write_csv_atomic(path: Path, rows: list[dict[str, float]]) -> Path:
    """Write ``rows`` (same keys) as CSV through :func:`write_atomic`."""
    text = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return write_atomic(path, text.getvalue())


__all__ = [
    "ASIDE",
    "Replacement",
    "check_output_dir",
    "read_csv_rows",
    "refuse_existing",
    "remove_outputs",
    "replacing",
    "write_atomic",
    "write_csv_atomic",
]
