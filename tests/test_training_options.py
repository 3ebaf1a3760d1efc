"""Reward-training command lines built from the configuration dataclasses (one place per knob)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from caasl_envs.reward.training import train
from caasl_envs.reward.training.data import LinearDatasetSampler
from caasl_envs.reward.training.options import add_options, int_range, option, read_options
from caasl_envs.reward.training.trainer import ModelConfig, TrainConfig


@dataclass
class Base:
    size: int = field(default=3, metadata=option(help="a size"))
    span: tuple[int, int] = field(default=(1, 2), metadata=option("--span", parse=int_range))
    fast: bool = field(default=False, metadata=option())
    hidden: int = 0  # no option


@dataclass
class Child(Base):
    size: int = 5  # a new default keeps the base's option


def test_options_from_fields_with_defaults_inheritance_and_switches():
    parser = argparse.ArgumentParser()
    add_options(parser, Child, defaults={"span": (7, 7)})
    assert read_options(parser.parse_args([]), Child) == {"size": 5, "span": (7, 7), "fast": False}
    args = parser.parse_args(["--size", "9", "--span", "2:4", "--fast"])
    assert read_options(args, Child) == {"size": 9, "span": (2, 4), "fast": True}
    assert "--hidden" not in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--size", "x"])


def test_caasl_train_reward_builds_its_config_from_the_dataclasses(monkeypatch):
    seen = {}
    monkeypatch.setattr(train, "start_trainer", lambda config, args, make: seen.update(c=config))
    monkeypatch.setattr(train, "run_and_export", lambda trainer, args: None)
    train.main(["--lr", "0.01", "--heads", "2", "--d", "4:6", "--degrees", "2,3", "--steps", "7"])
    config = seen["c"]
    assert (config.lr, config.steps, config.model["num_heads"]) == (0.01, 7, 2)
    assert config.data["d_range"] == (4, 6) and config.data["degrees"] == (2.0, 3.0)
    defaults = TrainConfig()
    assert config.weight_decay == defaults.weight_decay and config.out_dir == defaults.out_dir
    assert set(config.model) == set(ModelConfig.__dataclass_fields__)
    assert set(config.data) == set(train.LINEAR_DATA_OPTIONS)
    assert LinearDatasetSampler(**config.data).d_range == (4, 6)


def test_the_rff_and_sergio_command_lines_build_theirs_from_the_same_options(monkeypatch):
    from caasl_envs.reward.training import train_rff, train_sergio

    seen = []
    for module in (train_rff, train_sergio):
        monkeypatch.setattr(module, "start_trainer", lambda config, args, make: seen.append(config))
        monkeypatch.setattr(module, "run_and_export", lambda trainer, args: None)
    train_rff.main(["--variables", "3:4", "--noise-mix", "gauss:1,laplace:2", "--warmup", "9"])
    train_sergio.main(["--n-int", "2:3", "--cells-per-experiment", "4", "--time-limit", "5"])
    rff, sergio = seen
    assert rff.data["d_range"] == (3, 4) and rff.data["noise_mix"] == {"gauss": 1.0, "laplace": 2.0}
    assert rff.warmup_steps == 9 and rff.model == dict(dim=32, layers=2, num_heads=4, key_size=8)
    assert sergio.data["n_int_range"] == (2, 3) and sergio.data["cells_per_experiment"] == 4
    assert (sergio.batch_size, sergio.time_limit_s, sergio.out_dir) == (
        16,
        5.0,
        "runs/avici-sergio",
    )
