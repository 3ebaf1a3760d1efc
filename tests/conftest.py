"""Shared fixtures: one torch thread per test, a cheap real reward model and the tiny network
configs (defined once, with the toy env, in ``agent_toy_env.py``)."""

import pytest
import torch
from agent_toy_env import tiny_policy_kwargs

# Small tensors: one thread is faster than two threads waiting on each other on a busy 2-core box.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test runs with one torch thread (tiny networks: on 2 shared cores, 2 threads are
    ~10x slower), whatever an earlier test set."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def fast_reward():
    """A cheap real scorer for env tests that are not about the reward model."""
    from caasl_envs.reward import PartialCorrelationRewardModel

    return PartialCorrelationRewardModel()


@pytest.fixture(name="tiny_policy_kwargs")
def tiny_policy_kwargs_fixture():
    """:func:`agent_toy_env.tiny_policy_kwargs`: ``tiny_policy_kwargs(net_arch=16)``."""
    return tiny_policy_kwargs
