"""Code blocks of Markdown files, run as a reader would run them (``tests/test_readme.py``,
``tests/test_docs.py``).

A block is a fenced ```` ```python ```` block at the start of a line; it is *runnable* unless
its first line is ``# not run`` (for the few examples that train for minutes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_RUN = "# not run"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One ```` ```python ```` block: its file, first line number (1-based) and code."""

    path: Path
    line: int
    code: str

    @property
    def runnable(self) -> bool:
        return not self.code.lstrip().startswith(NOT_RUN)

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """Every ```` ```python ```` block of ``path``, in order."""
    text = path.read_text(encoding="utf-8")
    return [
        Block(path, text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _FENCE.finditer(text)
    ]


def run_python(code: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (this venv's) in ``cwd``, one torch thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_runs(code: str, where: str, cwd: Path) -> None:
    """Fail with the block's location and its stderr unless ``code`` exits 0."""
    done = run_python(code, cwd)
    assert done.returncode == 0, f"{where} failed:\n{code}\n--- stderr ---\n{done.stderr[-3000:]}"
