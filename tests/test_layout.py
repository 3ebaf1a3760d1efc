"""The package layout: the algorithm imports without the harness; no deprecated module aliases."""

import importlib.util
import subprocess
import sys


def test_importing_caasl_does_not_import_the_harness_or_pandas():
    code = (
        "import sys; from caasl_agent import CAASL; "
        "bad = [m for m in sys.modules if m == 'pandas' or m.startswith('caasl_agent.bench')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_old_module_paths_are_gone():
    import caasl_agent
    from caasl_agent.serialization import RENAMED_MODULES

    assert not hasattr(caasl_agent, "benchmark")
    for old, new in RENAMED_MODULES.items():
        assert importlib.util.find_spec(old) is None, old
        assert importlib.util.find_spec(new) is not None, new
