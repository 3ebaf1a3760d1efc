# `make test` is the project's test command (README, .ci/run). It builds the venv itself:
# torch is installed first, pinned, so that no dependency pulls a multi-GB CUDA build; Ray (an
# optional extra for users) is installed for the backend tests.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.caasl-installed

.PHONY: test lint demo bench wheel-check clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,ray,docs]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -q
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir build/site

demo: $(STAMP)
	$(VENV)/bin/caasl demo

bench: $(STAMP)
	$(PY) benchmarks/bench_env.py

# the wheel, installed alone in a fresh venv, run from outside the repository (.ci/run runs it)
wheel-check:
	.ci/wheel_check.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
