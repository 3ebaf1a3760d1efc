"""caasl_agent.bench: the agent-agnostic benchmark harness.

Baselines (:mod:`~caasl_agent.bench.baselines`), versioned suites of settings
(:mod:`~caasl_agent.bench.suites`), the batched runner (:mod:`~caasl_agent.bench.runner`),
result tables and plots (:mod:`~caasl_agent.bench.reports`) and the ``caasl bench | demo``
subcommands (:mod:`~caasl_agent.bench.cli`). Any agent with ``predict(obs, deterministic)``
can be benchmarked; CAASL policies are loaded only when asked for (``caasl:NAME``, ``sb3:PATH``).
"""

from caasl_agent.bench.baselines import BASELINES, make_baseline
from caasl_agent.bench.reports import BenchmarkResults
from caasl_agent.bench.runner import benchmark, load_agent
from caasl_agent.bench.suites import available_suites, get_suite

__all__ = [
    "BASELINES",
    "BenchmarkResults",
    "available_suites",
    "benchmark",
    "get_suite",
    "load_agent",
    "make_baseline",
]
