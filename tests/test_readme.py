"""The README's doctest: every ```python block runs as written, each in a fresh interpreter
started in an empty temporary folder (so a block relies on nothing but the installed package),
except at most two whose first line is ``# not run``."""

from __future__ import annotations

import re

import pytest
from markdown_blocks import ROOT, assert_runs, python_blocks

README = ROOT / "README.md"
BLOCKS = python_blocks(README)


def test_readme_is_short_and_has_runnable_examples():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200
    assert sum(b.runnable for b in BLOCKS) >= 3
    assert sum(not b.runnable for b in BLOCKS) <= 2


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.runnable], ids=str)
def test_readme_block_runs_in_a_fresh_interpreter(block, tmp_path):
    assert_runs(block.code, str(block), tmp_path)


def test_headline_numbers_are_the_benchmarks_numbers():
    """The README quotes BENCHMARKS.md, the one place of every number: each decimal of the
    README's results section appears there."""
    readme = README.read_text(encoding="utf-8")
    results = readme[readme.index("## Headline results") :]
    results = results[: results.index("\n## ", 1)]
    benchmarks = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8").replace("−", "-")
    numbers = set(re.findall(r"\d+\.\d+", results))
    assert len(numbers) >= 8
    assert not sorted(n for n in numbers if n not in benchmarks)
