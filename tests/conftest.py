import pytest
import torch

# Small tensors: one thread is faster than two threads waiting on each other on a busy 2-core box.
torch.set_num_threads(1)


@pytest.fixture
def fast_reward():
    """A cheap real scorer for env tests that are not about the reward model."""
    from caasl_envs.reward import PartialCorrelationRewardModel

    return PartialCorrelationRewardModel()
