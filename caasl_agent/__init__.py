"""caasl_agent: the CAASL agent on Stable-Baselines3, baselines and the benchmark harness."""

from caasl_agent.baselines import BASELINES, make_baseline
from caasl_agent.evaluation import benchmark, load_agent
from caasl_agent.networks import CAASLEncoder, CAASLFeaturesExtractor
from caasl_agent.policy import CAASLPolicy
from caasl_agent.pretrained import available_policies, load_policy, policy_card
from caasl_agent.redq import CAASL
from caasl_agent.reports import BenchmarkResults
from caasl_agent.suites import available_suites, get_suite

__all__ = [
    "BASELINES",
    "CAASL",
    "BenchmarkResults",
    "CAASLEncoder",
    "CAASLFeaturesExtractor",
    "CAASLPolicy",
    "available_policies",
    "available_suites",
    "benchmark",
    "get_suite",
    "load_agent",
    "load_policy",
    "make_baseline",
    "policy_card",
]
