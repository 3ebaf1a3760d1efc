"""caasl_agent: the CAASL agent (REDQ-style SAC with alternating-attention networks) on
Stable-Baselines3.

The agent-agnostic benchmark harness (baselines, suites, runner, reports) lives in
:mod:`caasl_agent.bench`; importing :class:`CAASL` does not import it.
"""

from caasl_agent.caasl import CAASL
from caasl_agent.cut_head import CutEnergy
from caasl_agent.policies import CAASLPolicy
from caasl_agent.pretrained import available_policies, load_policy, policy_card
from caasl_agent.torch_layers import CAASLEncoder, CAASLFeaturesExtractor
from caasl_envs._version import __version__

__all__ = [
    "CAASL",
    "CAASLEncoder",
    "CAASLFeaturesExtractor",
    "CAASLPolicy",
    "CutEnergy",
    "__version__",
    "available_policies",
    "load_policy",
    "policy_card",
]
