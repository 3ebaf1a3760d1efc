"""Stock SB3 / sb3-contrib agents and CAASL on the real environments (tiny settings)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from agent_toy_env import TINY_ENCODER
from sb3_contrib import TQC
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.vec_env import DummyVecEnv

import caasl_envs
from caasl_agent import CAASL, CAASLFeaturesExtractor

ENV_KWARGS = dict(d=3, n0=5, budget=3, reward_model="partial-correlation")
OFF_POLICY = dict(learning_starts=150, batch_size=16, buffer_size=1000)
ALGORITHMS = {
    "SAC": (SAC, OFF_POLICY),
    "TD3": (TD3, OFF_POLICY),
    "TQC": (TQC, OFF_POLICY),
    "PPO": (PPO, dict(n_steps=32, batch_size=16, n_epochs=1)),
    "A2C": (A2C, dict(n_steps=8)),
}


@pytest.mark.parametrize("extractor", ["default", "caasl"])
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_stock_agent_trains_and_acts(name, extractor):
    algorithm, kwargs = ALGORITHMS[name]
    env = caasl_envs.make_sb3_vec_env("caasl/LinearGaussian-v0", n_envs=2, seed=0, **ENV_KWARGS)
    policy_kwargs = dict(net_arch=[16])
    if extractor == "caasl":
        policy_kwargs.update(
            features_extractor_class=CAASLFeaturesExtractor, features_extractor_kwargs=TINY_ENCODER
        )
    model = algorithm(
        "MultiInputPolicy", env, seed=0, device="cpu", policy_kwargs=policy_kwargs, **kwargs
    )
    obs = env.reset()
    acted = model.predict(obs, deterministic=True)[0]
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(200)
    assert model.num_timesteps >= 200
    # training updated the policy: its action on a fixed observation moved
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (2, 6) and np.isfinite(actions).all()
    assert not np.array_equal(actions, acted)
    # the CAASL encoder is trained (target networks move by Polyak rounding alone: not counted)
    trained = {
        k
        for k, v in model.policy.state_dict().items()
        if "_target." not in k and not torch.equal(v, before[k])
    }
    if extractor == "caasl":
        assert any("features_extractor.encoder" in k for k in trained), sorted(trained)


def test_caasl_on_gym_make_dummy_vec_env_and_on_the_batched_adapter(tiny_policy_kwargs):
    single = DummyVecEnv([lambda: gym.make("caasl/LinearGaussian-v0", **ENV_KWARGS)] * 2)
    batched = caasl_envs.make_sb3_vec_env("caasl/LinearGaussian-v0", n_envs=4, seed=0, **ENV_KWARGS)
    policy_kwargs = tiny_policy_kwargs(16)
    for env in (single, batched):
        model = CAASL(
            env,
            seed=0,
            device="cpu",
            learning_starts=24,
            batch_size=16,
            policy_kwargs=policy_kwargs,
        )
        model.learn(120)
        assert model.replay_buffer.size() > 0
    big = caasl_envs.make_sb3_vec_env(
        "caasl/LinearGaussian-v0", n_envs=2, seed=1, **{**ENV_KWARGS, "d": 5}
    )
    assert model.predict(big.reset(), deterministic=True)[0].shape == (2, 10)
