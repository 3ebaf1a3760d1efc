"""caasl_agent: the CAASL agent on Stable-Baselines3, baselines and the benchmark harness."""

from caasl_agent.networks import CAASLEncoder, CAASLFeaturesExtractor
from caasl_agent.policy import CAASLPolicy
from caasl_agent.pretrained import available_policies, load_policy, policy_card
from caasl_agent.redq import CAASL

__all__ = [
    "CAASL",
    "CAASLEncoder",
    "CAASLFeaturesExtractor",
    "CAASLPolicy",
    "available_policies",
    "load_policy",
    "policy_card",
]
