"""Clear errors for bad inputs a user review found unclear or silently accepted: each names the
argument or the file and says what is expected."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from caasl_agent import CAASL
from caasl_agent.bench.runner import benchmark
from caasl_agent.train import load_config, with_overrides
from caasl_envs import CausalDesignEnv
from caasl_envs.reward.avici import AVICIModel

SMALL = {"d": 3, "budget": 2, "reward_model": "constant-prior"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"coeff_mean": float("nan")}, "coeff_mean must be a finite number"),
        ({"bias": float("inf")}, "bias must be True or False"),
        ({"bias": 1}, "bias must be True or False"),
        ({"value_scale": "big"}, "value_scale must be a number"),
        ({"value_scale": True}, "value_scale must be a number"),
        ({"simulator": "sergio", "counts": "no"}, "counts must be True or False"),
        ({"simulator": "sergio", "hill": "2"}, "hill must be a number"),
        ({"simulator": "sergio", "dt": float("inf")}, "dt must be a finite number"),
        ({"d": 10**6}, "d=1000000 .* GiB"),
        ({"budget": 10**12}, "history rows .* GiB"),
    ],
)
def test_env_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CausalDesignEnv(**{**SMALL, **kwargs})


class _NumpyModel:
    def edge_probs(self, history: torch.Tensor) -> np.ndarray:
        b, _, d, _ = history.shape
        return np.full((b, d, d), 0.5, dtype=np.float32)


class _ListModel:
    def edge_probs(self, history: torch.Tensor) -> list:
        return [[0.5]]


def test_reward_model_outputs():
    env = CausalDesignEnv(**{**SMALL, "reward_model": _NumpyModel()})
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert reward == 0.0  # a constant posterior gains nothing
    with pytest.raises(TypeError, match="_ListModel.edge_probs returned list"):
        CausalDesignEnv(**{**SMALL, "reward_model": _ListModel()}).reset(seed=0)


def test_corrupt_reward_model_files(tmp_path):
    model = AVICIModel(dim=8, layers=1, num_heads=2, key_size=4)
    model.save(tmp_path / "good.pt")
    raw = (tmp_path / "good.pt").read_bytes()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "no-config.pt")
    bad = {
        "empty.pt": b"",
        "text.pt": b"hello world",
        "truncated.pt": raw[: len(raw) // 2],
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "object.pt").write_bytes(
        pickle.dumps({"config": {}, "state_dict": object()}, protocol=2)
    )
    expected = {name: "truncated, corrupt or of another format" for name in bad}
    expected |= {"no-config.pt": "'config' and 'state_dict'", "object.pt": "other than tensors"}
    for name, match in expected.items():
        with pytest.raises(ValueError, match=f"{name} is not a reward-model file.*{match}"):
            CausalDesignEnv(**{**SMALL, "reward_model": str(tmp_path / name)})
    assert isinstance(AVICIModel.load(tmp_path / "good.pt"), AVICIModel)


def test_caasl_needs_an_env():
    with pytest.raises(ValueError, match="CAASL needs an env"):
        CAASL(None)


def test_user_config_is_merged_over_its_base_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: linear-exact\ntotal_timesteps: 64\nalgorithm: {batch_size: 8}\n")
    config, preset = load_config(path), load_config("linear-exact")
    assert config["total_timesteps"] == 64 and config["n_envs"] == preset["n_envs"]
    assert config["algorithm"] == {**preset["algorithm"], "batch_size": 8}
    for text, match in [
        ("n_env: 4\n", "unknown setting 'n_env'"),
        ("evaluation: {every: 3}\n", "evaluation: unknown setting 'every'"),
        ("algorithm: {learning_rat: 0.1}\n", r"no algorithm setting\(s\) \['learning_rat'\]"),
        ("n_envs: [4\n", "is not valid YAML"),
        ("- 4\n", "must hold a mapping"),
        ("base: nope\n", "base must be one of"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            load_config(path)


def test_seeds_and_counts_are_integers():
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got True"):
        with_overrides(load_config("cpu-quick"), seed=True)
    with pytest.raises(ValueError, match="n_envs must be an integer >= 1, got 2.5"):
        with_overrides(load_config("cpu-quick"), n_envs=2.5)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got True"):
        benchmark(["random"], suite="tiny", episodes=1, seed=True, progress=False)
