import numpy as np
import pytest

import caasl_agent
from caasl_envs import CausalDesignVectorEnv
from caasl_envs.histories import has_belief


def test_unknown_policy_name_lists_the_choices():
    with pytest.raises(ValueError, match="no shipped policy 'nope'"):
        caasl_agent.load_policy("nope")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        caasl_agent.load_policy(caasl_agent.available_policies()[0], device="gpu0")


@pytest.mark.parametrize("name", caasl_agent.available_policies())
def test_shipped_policies_load_by_name_and_act_on_any_d(name):
    model = caasl_agent.load_policy(name)
    assert "command" in caasl_agent.policy_card(name).lower()
    target_only = "sergio" in name
    for d in (6, 13):
        kwargs = {"simulator": "sergio"} if target_only else {}
        vec = CausalDesignVectorEnv(3, d=d, n0=8, budget=2, reward_model="constant-prior", **kwargs)
        vec.set_observe_belief(has_belief(model.observation_space))  # the ones that read it
        obs, _ = vec.reset(seed=0)
        action, _ = model.predict(obs, deterministic=True)
        assert action.shape == (3, d if target_only else 2 * d)
        assert np.all(np.abs(action) <= 1)
