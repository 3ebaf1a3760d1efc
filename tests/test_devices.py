"""One device policy: a device this machine lacks is a ``ValueError`` naming it, wherever a
device is accepted; only ``"auto"`` falls back to the CPU."""

from __future__ import annotations

import pytest
import torch

import caasl_agent
from caasl_agent.bench.loaders import load_sb3
from caasl_agent.bench.runner import benchmark
from caasl_agent.train import load_config, train
from caasl_envs import CausalDesignEnv, load_reward_model
from caasl_envs.core import resolve_device

#: a CUDA device index no machine running the tests has
ABSENT = f"cuda:{torch.cuda.device_count()}"


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for device in [ABSENT, *(["cuda"] if not torch.cuda.is_available() else [])]:
        with pytest.raises(ValueError, match=f"device '{device}' is not available"):
            resolve_device(device)
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_every_entry_point_refuses_an_absent_device(tmp_path):
    match = f"device '{ABSENT}' is not available"
    with pytest.raises(ValueError, match=match):
        CausalDesignEnv(d=3, budget=2, reward_model="constant-prior", device=ABSENT)
    name = caasl_agent.available_policies()[0]
    with pytest.raises(ValueError, match=match):
        caasl_agent.load_policy(name, device=ABSENT)
    with pytest.raises(ValueError, match=match):
        load_sb3(caasl_agent.pretrained.policy_path(name), device=ABSENT)
    with pytest.raises(ValueError, match=match):
        benchmark(["random"], suite="tiny", episodes=1, device=ABSENT, progress=False)
    with pytest.raises(ValueError, match=match):
        load_reward_model("avici-linear-v0", device=ABSENT)
    with pytest.raises(ValueError, match=match):
        train(load_config("cpu-quick"), tmp_path / "run", device=ABSENT)
    assert not (tmp_path / "run").exists()
