"""The package layout: the algorithm imports without the harness, old import paths still work."""

import subprocess
import sys

import pytest


def test_importing_caasl_does_not_import_the_harness_or_pandas():
    code = (
        "import sys; from caasl_agent import CAASL; "
        "bad = [m for m in sys.modules if m == 'pandas' or m.startswith('caasl_agent.bench')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


MOVED = [
    ("caasl_agent.redq", "caasl_agent.caasl", "CAASL"),
    ("caasl_agent.policy", "caasl_agent.policies", "CAASLPolicy"),
    ("caasl_agent.networks", "caasl_agent.torch_layers", "CAASLEncoder"),
    ("caasl_agent.evaluation", "caasl_agent.bench.runner", "benchmark"),
    ("caasl_agent.baselines", "caasl_agent.bench.baselines", "BASELINES"),
    ("caasl_agent.suites", "caasl_agent.bench.suites", "get_suite"),
    ("caasl_agent.reports", "caasl_agent.bench.reports", "BenchmarkResults"),
    ("caasl_agent.bench_cli", "caasl_agent.bench.cli", "add_bench_parser"),
    ("caasl_envs.reward.train", "caasl_envs.reward.training.train", "Trainer"),
    (
        "caasl_envs.reward.train_sergio",
        "caasl_envs.reward.training.train_sergio",
        "SergioDatasetSampler",
    ),
]


def test_old_module_paths_import_the_new_module_with_a_warning():
    # A fresh interpreter: the old names must not be in sys.modules already.
    code = (
        "import importlib, warnings; import caasl_agent\n"
        f"for old, new, name in {MOVED!r}:\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        old_module = importlib.import_module(old)\n"
        "    new_module = importlib.import_module(new)\n"
        "    assert getattr(old_module, name) is getattr(new_module, name), old\n"
        "    assert any(new in str(x.message) for x in w), (old, [str(x.message) for x in w])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_harness_names_on_the_top_package_warn_and_resolve():
    import caasl_agent
    from caasl_agent import bench

    with pytest.warns(DeprecationWarning, match="caasl_agent.bench.benchmark"):
        assert caasl_agent.benchmark is bench.benchmark
    with pytest.raises(AttributeError, match="no_such_name"):
        caasl_agent.no_such_name  # noqa: B018
