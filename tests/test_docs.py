"""The documentation's examples cannot rot: the ```python blocks of every page under docs/ run
in the order they appear, all blocks of a page in one fresh interpreter started in an empty
temporary folder, except blocks whose first line is ``# not run``. (``mkdocs build --strict``,
which checks the site's links and API pages, runs in ``make test``.)"""

from __future__ import annotations

import pytest
from markdown_blocks import ROOT, assert_runs, python_blocks

PAGES = sorted((ROOT / "docs").rglob("*.md"))
RUNNABLE = {p: [b for b in python_blocks(p) if b.runnable] for p in PAGES}


def test_the_docs_have_runnable_examples():
    assert sum(map(len, RUNNABLE.values())) >= 8


@pytest.mark.parametrize(
    "page", [p for p in PAGES if RUNNABLE[p]], ids=lambda p: str(p.relative_to(ROOT))
)
def test_page_examples_run_in_a_fresh_interpreter(page, tmp_path):
    blocks = RUNNABLE[page]
    code = "\n".join(f"# --- {b} ---\n{b.code}" for b in blocks)
    assert_runs(
        code, f"{page.relative_to(ROOT)} (blocks at lines {[b.line for b in blocks]})", tmp_path
    )
