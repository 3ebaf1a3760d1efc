"""Write each ```python block of a Markdown file to its own script, to run as a user would.

    python .ci/readme_blocks.py README.md OUTDIR    # OUTDIR/readme_01.py, readme_02.py, ...

A block whose first line is ``# not run`` (long training) is left out. Prints one line per
block: the script it wrote, or why it left the block out. Uses only the standard library: the
wheel check runs it with the fresh virtual environment's Python.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NOT_RUN = "# not run"


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every ```python block, in order."""
    return [(markdown.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(markdown)]


def main(argv: list[str]) -> None:
    source, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for i, (line, code) in enumerate(python_blocks(source.read_text()), start=1):
        if code.lstrip().startswith(NOT_RUN):
            print(f"{source}:{line}: block {i} marked '{NOT_RUN}'")
            continue
        script = out / f"readme_{i:02d}.py"
        script.write_text(f"# {source}:{line}\n{code}")
        print(script)


if __name__ == "__main__":
    main(sys.argv[1:])
