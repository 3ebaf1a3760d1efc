import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def fast_reward():
    """A cheap real scorer for env tests that are not about the reward model."""
    from caasl_envs.reward import PartialCorrelationRewardModel

    return PartialCorrelationRewardModel()
