"""caasl_agent: the CAASL agent (REDQ-style SAC with alternating-attention networks) on
Stable-Baselines3.

The agent-agnostic benchmark harness (baselines, suites, runner, reports) lives in
:mod:`caasl_agent.bench`; importing :class:`CAASL` does not import it.
"""

import warnings

from caasl_agent.caasl import CAASL
from caasl_agent.policies import CAASLPolicy
from caasl_agent.pretrained import available_policies, load_policy, policy_card
from caasl_agent.torch_layers import CAASLEncoder, CAASLFeaturesExtractor
from caasl_envs._version import __version__
from caasl_envs.moved import alias_modules

alias_modules(
    {
        "caasl_agent.redq": "caasl_agent.caasl",
        "caasl_agent.policy": "caasl_agent.policies",
        "caasl_agent.networks": "caasl_agent.torch_layers",
        "caasl_agent.evaluation": "caasl_agent.bench.runner",
        "caasl_agent.baselines": "caasl_agent.bench.baselines",
        "caasl_agent.suites": "caasl_agent.bench.suites",
        "caasl_agent.reports": "caasl_agent.bench.reports",
        "caasl_agent.bench_cli": "caasl_agent.bench.cli",
    }
)

_MOVED_TO_BENCH = (
    "BASELINES",
    "BenchmarkResults",
    "available_suites",
    "benchmark",
    "get_suite",
    "load_agent",
    "make_baseline",
)


def __getattr__(name: str):
    """The harness names this package exported before 0.2, loaded lazily from
    :mod:`caasl_agent.bench` with a ``DeprecationWarning``."""
    if name in _MOVED_TO_BENCH:
        warnings.warn(
            f"caasl_agent.{name} moved to caasl_agent.bench.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        from caasl_agent import bench

        return getattr(bench, name)
    raise AttributeError(f"module 'caasl_agent' has no attribute {name!r}")


__all__ = [
    "CAASL",
    "CAASLEncoder",
    "CAASLFeaturesExtractor",
    "CAASLPolicy",
    "__version__",
    "available_policies",
    "load_policy",
    "policy_card",
]
