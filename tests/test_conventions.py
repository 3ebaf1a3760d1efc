"""Gymnasium conventions: rendering, the true graph in the final ``info``, and what
"batched = single" means (observations bit for bit, rewards to float32 round-off)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import caasl_envs  # noqa: F401  (registers the ids)
from caasl_envs import CausalDesignEnv, CausalDesignVectorEnv
from caasl_envs.render import RENDER_MODES, posterior_image
from caasl_envs.scm import SIMULATORS, register_simulator

SMALL = {"d": 3, "budget": 2, "reward_model": "partial-correlation"}


def test_batched_envs_equal_single_envs_up_to_float32_rewards():
    seeds, kwargs = [0, 1, 2, 3], {"d": 4, "budget": 3, "reward_model": "avici-linear-v0"}
    actions = np.random.default_rng(0).uniform(-1, 1, (3, len(seeds), 8)).astype(np.float32)
    vec = CausalDesignVectorEnv(len(seeds), **kwargs)
    vec.reset(seed=seeds)
    batched = [vec.step(a)[:2] for a in actions]
    for i, seed in enumerate(seeds):
        env = CausalDesignEnv(**kwargs)
        env.reset(seed=seed)
        for (obs_b, rewards_b), action in zip(batched, actions[:, i], strict=True):
            obs, reward, *_ = env.step(action)
            np.testing.assert_array_equal(obs["history"], obs_b["history"][i])
            assert abs(reward - rewards_b[i]) <= 1e-6  # the tolerance the README states


def test_rgb_array_shows_the_posterior_beside_the_true_graph():
    env = gym.make("caasl/LinearGaussian-v0", render_mode="rgb_array", **SMALL)
    check_env(env.unwrapped, skip_render_check=False)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    image = env.render()
    d, cell = 3, 12
    assert image.shape == (d * cell, (2 * d + 1) * cell, 3) and image.dtype == np.uint8
    probs, graph = env.unwrapped.core.probs[0].numpy(), env.unwrapped.graph
    centre = image[cell // 2 :: cell, cell // 2 :: cell, 0]  # red channel at cell centres
    np.testing.assert_array_equal(centre[:, d + 1 :] < 128, graph > 0.5)
    # darker is more probable: the red channel decreases with the edge probability
    expected = np.round(255 + probs * (8 - 255)).astype(np.uint8)
    np.testing.assert_array_equal(centre[:, :d], expected)
    assert (centre[:, d] == 255).all()  # the white gap


def test_render_modes():
    assert CausalDesignEnv(**SMALL).render() is None
    with pytest.raises(ValueError, match="render_mode must be one of"):
        CausalDesignEnv(render_mode="video", **SMALL)
    assert posterior_image(np.full((2, 2), np.nan), np.eye(2)).shape == (24, 60, 3)
    if "human" not in RENDER_MODES:  # no display here
        with pytest.raises(ValueError, match="'human' needs a display"):
            CausalDesignEnv(render_mode="human", **SMALL)


def test_final_info_carries_the_true_graph():
    env = CausalDesignEnv(**SMALL)
    env.reset(seed=0)
    infos = [env.step(env.action_space.sample())[-1] for _ in range(2)]
    assert "graph" not in infos[0]
    np.testing.assert_array_equal(infos[1]["graph"], env.graph)
    vec = CausalDesignVectorEnv(2, **SMALL)
    vec.reset(seed=0)
    for _ in range(2):
        *_, info = vec.step(vec.action_space.sample())
    np.testing.assert_array_equal(info["graph"], vec.graphs)


def test_cli_help_describes_every_flag_and_has_a_version(capsys):
    from caasl_agent.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--version"])
    assert capsys.readouterr().out.startswith("caasl ")
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in subparsers.choices.items():
        for action in subparser._actions:
            assert action.help, f"caasl {name} {action.option_strings} has no description"
        assert "``" not in subparser.format_help()
    assert "``" not in parser.format_help()
    assert parser.parse_args(["train"]).progress_bar
    assert not parser.parse_args(["train", "--no-progress-bar"]).progress_bar


@dataclass
class ChainSystem:
    """``x_0 -> x_1 -> ... -> x_{d-1}``, ``x_j = x_{j-1} + N(0, 1)`` unless set by a do."""

    graph: torch.Tensor  # (B, d, d)

    def sample(self, rng, n, targets, values):
        eps = rng.normal(n, self.graph.shape[-1])  # (B, n, d)
        x = torch.zeros_like(eps)
        for j in range(eps.shape[-1]):
            x[..., j] = eps[..., j] + (x[..., j - 1] if j else 0.0)
            if targets is not None:
                x[..., j] = torch.where(targets[:, None, j], values[:, None, j], x[..., j])
        return x


@dataclass
class ChainPrior:
    d: int
    action_kind = "target_value"
    default_reward_model = "partial-correlation"

    def sample(self, rng):
        graph = torch.diag(torch.ones(self.d - 1), diagonal=1)
        return ChainSystem(graph.expand(len(rng), -1, -1).clone())


@pytest.fixture
def chain_simulator():
    register_simulator("test-chain", ChainPrior)
    yield "test-chain"
    SIMULATORS.pop("test-chain")


def test_custom_simulator(chain_simulator):
    env = CausalDesignEnv(simulator=chain_simulator, d=4, budget=3)
    obs, _ = env.reset(seed=0)
    action = np.zeros(8, dtype=np.float32)
    action[[1, 5]] = [1.0, 0.5]  # do(x_1 = 0.5)
    obs, reward, *_ = env.step(action)
    row = obs["history"][50]  # the first experiment's sample, after n0 = 50 observations
    assert row[1, 0] == pytest.approx(0.5) and row[:, 1].tolist() == [0, 1, 0, 0]
    *_, info = env.step(action)
    *_, info = env.step(action)
    np.testing.assert_array_equal(info["graph"], np.diag(np.ones(3), 1))
    with pytest.raises(ValueError, match="already registered"):
        register_simulator(chain_simulator, ChainPrior)
    with pytest.raises(TypeError, match="lacks \\['action_kind', 'default_reward_model'\\]"):
        register_simulator("broken", ChainSystem)


def test_rl_zoo_hyperparameters_cover_every_env():
    from caasl_envs.registration import ENV_IDS
    from caasl_envs.rl_zoo import hyperparams

    assert set(hyperparams) == set(ENV_IDS)
    assert all(h["policy"] == "MultiInputPolicy" for h in hyperparams.values())


def test_rl_zoo_trains_with_our_file(tmp_path):
    command = [sys.executable, "-m", "rl_zoo3.train", "--algo", "sac"]
    command += ["--env", "caasl/LinearGaussian-v0", "--gym-packages", "caasl_envs"]
    command += ["--conf-file", "caasl_envs.rl_zoo", "-n", "32", "--eval-freq", "-1"]
    command += ["--log-folder", str(tmp_path), "--env-kwargs", "reward_model:'partial-correlation'"]
    command += ["d:4", "budget:2"]
    subprocess.run(command, check=True, timeout=600, capture_output=True)
    assert list(tmp_path.glob("sac/caasl-LinearGaussian-v0_1/*.zip"))
