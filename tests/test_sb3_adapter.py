import numpy as np
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv

from caasl_envs import CausalDesignEnv, make_sb3_vec_env

SMALL = {"d": 3, "n0": 5, "budget": 2}


def test_adapter_matches_dummy_vec_env_over_single_envs(fast_reward):
    batched = make_sb3_vec_env(
        "caasl/LinearGaussian-v0", n_envs=3, seed=4, reward_model=fast_reward, **SMALL
    )
    dummy = DummyVecEnv([lambda: CausalDesignEnv(**SMALL, reward_model=fast_reward)] * 3)
    dummy.seed(4)
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 3, 6)).astype(np.float32)
    ob, od = batched.reset(), dummy.reset()
    np.testing.assert_allclose(ob["history"], od["history"], atol=1e-6)
    for a in actions:  # crosses an episode boundary: same-step autoreset in both
        ob, rb, db, ib = batched.step(a)
        od, rd, dd, id_ = dummy.step(a)
        np.testing.assert_allclose(ob["history"], od["history"], atol=1e-6)
        np.testing.assert_allclose(rb, rd, atol=1e-5)
        np.testing.assert_array_equal(db, dd)
        if db.any():
            np.testing.assert_allclose(
                ib[0]["terminal_observation"]["history"],
                id_[0]["terminal_observation"]["history"],
                atol=1e-6,
            )
            assert "episode" in ib[0]


@pytest.mark.parametrize("algo", [PPO, SAC])
def test_stock_sb3_algorithms_learn_on_the_batched_env(algo, fast_reward):
    env = make_sb3_vec_env(
        "caasl/LinearGaussian-v0", n_envs=4, seed=0, reward_model=fast_reward, **SMALL
    )
    kwargs = (
        {"n_steps": 16, "batch_size": 32}
        if algo is PPO
        else {"learning_starts": 16, "batch_size": 32}
    )
    model = algo("MultiInputPolicy", env, seed=0, device="cpu", **kwargs)
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    action, _ = model.predict(env.reset(), deterministic=True)
    assert action.shape == (4, 6)
