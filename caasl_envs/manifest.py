"""SHA-256 manifests of the shipped files: reward-model weights and pretrained policies.

Each shipped folder holds a ``MANIFEST.json``::

    {"format": "caasl-manifest-v1",
     "files": {"avici-linear-v0.pt": {"sha256": "9f0c...", "bytes": 244801}, ...}}

and :func:`verify` checks a file against it before it is loaded, so that a truncated or altered
file is one ``ValueError`` naming it instead of an unpickling error (or a silently different
model). The shipped folders are :data:`SHIPPED` (``*.pt`` under ``caasl_envs/reward/weights``,
``*.zip`` under ``caasl_agent/pretrained``).

Adding or retraining a shipped file is one command, which rewrites both manifests::

    python -m caasl_envs.manifest update      # hash every shipped file, drop entries of gone ones
    python -m caasl_envs.manifest check       # exit status 1 naming each file that differs
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

MANIFEST = "MANIFEST.json"
FORMAT = "caasl-manifest-v1"
UPDATE_COMMAND = "python -m caasl_envs.manifest update"


def _package_dir(package: str) -> Path:
    """The folder of a top-level package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


#: ``(package, folder inside it, file pattern)`` of every shipped folder
SHIPPED: tuple[tuple[str, str, str], ...] = (
    ("caasl_envs", "reward/weights", "*.pt"),
    ("caasl_agent", "pretrained", "*.zip"),
)


def shipped_folders() -> list[tuple[Path, str]]:
    """``(folder, pattern)`` of each shipped folder (see :data:`SHIPPED`)."""
    return [(_package_dir(package) / sub, pattern) for package, sub, pattern in SHIPPED]


def sha256(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict[str, dict]:
    """``{file name: {"sha256", "bytes"}}`` of ``folder/MANIFEST.json`` (empty if absent);
    ``ValueError`` naming the file when it is not a manifest."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        files = data["files"] if data.get("format") == FORMAT else None
    except (ValueError, TypeError, KeyError, AttributeError):
        files = None
    if not isinstance(files, dict):
        raise ValueError(f"{path} is not a {FORMAT} manifest; rebuild it: {UPDATE_COMMAND}")
    return files


def verify(path: str | Path) -> Path:
    """``path`` if its SHA-256 is the one its folder's ``MANIFEST.json`` lists; else a
    ``ValueError`` naming the file (truncated or altered, or not listed)."""
    path = Path(path)
    entry = read_manifest(path.parent).get(path.name)
    if entry is None:
        raise ValueError(
            f"{path} is not listed in {path.parent / MANIFEST}; "
            f"if it is a new shipped file, run: {UPDATE_COMMAND}"
        )
    size, digest = path.stat().st_size, sha256(path)
    if digest != entry["sha256"]:
        raise ValueError(
            f"{path} is truncated or altered ({size} bytes, SHA-256 {digest[:12]}...; "
            f"{MANIFEST} lists {entry['bytes']} bytes, {entry['sha256'][:12]}...): "
            "reinstall caasl, or after retraining it run: " + UPDATE_COMMAND
        )
    return path


def build_manifest(folder: Path, pattern: str) -> dict[str, dict]:
    """The entries of every file in ``folder`` matching ``pattern``, by name."""
    return {
        p.name: {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.glob(pattern))
    }


def update(folders: Sequence[tuple[Path, str]] | None = None) -> list[str]:
    """Rewrite the manifest of each shipped folder; returns ``"+ name"`` / ``"~ name"`` /
    ``"- name"`` for each added, changed or dropped entry."""
    changes = []
    for folder, pattern in folders or shipped_folders():
        old, new = read_manifest(folder), build_manifest(folder, pattern)
        changes += [f"+ {folder / n}" for n in new if n not in old]
        changes += [f"~ {folder / n}" for n in new if n in old and old[n] != new[n]]
        changes += [f"- {folder / n}" for n in old if n not in new]
        text = json.dumps({"format": FORMAT, "files": new}, indent=2) + "\n"
        (folder / MANIFEST).write_text(text)
    return changes


def problems(folders: Sequence[tuple[Path, str]] | None = None) -> list[str]:
    """One line per shipped file that is unlisted or differs, and per entry without a file."""
    found = []
    for folder, pattern in folders or shipped_folders():
        listed = read_manifest(folder)
        for path in sorted(folder.glob(pattern)):
            try:
                verify(path)
            except ValueError as err:
                found.append(str(err))
        absent = [n for n in listed if not (folder / n).is_file()]
        found += [f"{folder / n} is listed in {MANIFEST} but absent" for n in absent]
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m caasl_envs.manifest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=["update", "check"])
    args = parser.parse_args(argv)
    if args.command == "update":
        changes = update()
        print("\n".join(changes) if changes else "manifests up to date")
        return
    found = problems()
    if found:
        parser.exit(1, "\n".join(found) + "\n")
    print("every shipped file matches its manifest")


if __name__ == "__main__":
    main()
