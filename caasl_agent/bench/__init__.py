"""caasl_agent.bench: the agent-agnostic benchmark harness.

The agent protocol (:mod:`~caasl_agent.bench.agents`), agent loaders
(:mod:`~caasl_agent.bench.loaders`), baselines
(:mod:`~caasl_agent.bench.baselines`, :mod:`~caasl_agent.bench.eig`), versioned suites of settings
(:mod:`~caasl_agent.bench.suites`), the batched runner (:mod:`~caasl_agent.bench.runner`),
result tables and plots (:mod:`~caasl_agent.bench.reports`) and the ``caasl bench | demo``
subcommands (:mod:`~caasl_agent.bench.cli`). Any agent with ``predict(obs, deterministic)``
can be benchmarked; CAASL policies are loaded only when asked for (``caasl:NAME``, ``sb3:PATH``).
"""

from caasl_agent.bench.agents import (
    BASELINES,
    Agent,
    Baseline,
    CallableAgent,
    IncompatibleAgentError,
    register_baseline,
)
from caasl_agent.bench.backends import InProcess, ProcessPool, RayCluster, make_executor
from caasl_agent.bench.baselines import make_baseline
from caasl_agent.bench.loaders import agent_label, load_agent, load_sb3
from caasl_agent.bench.reports import BenchmarkResults
from caasl_agent.bench.runner import benchmark
from caasl_agent.bench.suites import available_suites, get_suite

__all__ = [
    "BASELINES",
    "Agent",
    "Baseline",
    "BenchmarkResults",
    "CallableAgent",
    "InProcess",
    "IncompatibleAgentError",
    "ProcessPool",
    "RayCluster",
    "agent_label",
    "available_suites",
    "benchmark",
    "get_suite",
    "load_agent",
    "load_sb3",
    "make_baseline",
    "make_executor",
    "register_baseline",
]
