import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import caasl_envs
from caasl_envs import CausalDesignEnv, CausalDesignVectorEnv

SMALL = {"d": 4, "n0": 8, "budget": 3}


# caasl/Sachs-v0 has d = 11 fixed by its data: tests/test_sachs.py runs both checkers on it.
@pytest.mark.parametrize("env_id", sorted(set(caasl_envs.ENV_IDS) - {"caasl/Sachs-v0"}))
def test_registered_ids_pass_gymnasium_and_sb3_checkers(env_id, fast_reward):
    env = gym.make(env_id, reward_model=fast_reward, **SMALL)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(
        CausalDesignEnv(**{**caasl_envs.ENV_IDS[env_id], **SMALL, "reward_model": fast_reward})
    )
    vec = gym.make_vec(
        env_id,
        num_envs=3,
        vectorization_mode="vector_entry_point",
        reward_model=fast_reward,
        **SMALL,
    )
    assert isinstance(vec, CausalDesignVectorEnv)
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)


def rollout_single(seed, actions, **kwargs):
    env = CausalDesignEnv(**kwargs)
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, info)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, info))
    assert term and not trunc
    return out


def test_batched_env_equals_single_envs_with_the_same_seeds(fast_reward):
    seeds, steps = [3, 7, 11], 3
    kwargs = {**SMALL, "reward_model": fast_reward}
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, len(seeds), 8)).astype(np.float32)
    vec = CausalDesignVectorEnv(len(seeds), **kwargs)
    obs, info = vec.reset(seed=seeds)
    batched = [(obs, np.zeros(len(seeds)), info)]
    for a in actions:
        obs, r, _, _, info = vec.step(a)
        batched.append((obs, r, info))
    for i, seed in enumerate(seeds):
        single = rollout_single(seed, actions[:, i], **kwargs)
        for (obs_s, r_s, _), (obs_b, r_b, _) in zip(single, batched):
            np.testing.assert_allclose(obs_s["history"], obs_b["history"][i], rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(obs_s["mask"], obs_b["mask"][i])
            assert r_s == pytest.approx(r_b[i], abs=1e-5)
        final_s, final_b = single[-1][2]["final_metrics"], batched[-1][2]["final_metrics"]
        assert final_s["auroc"] == pytest.approx(final_b["auroc"][i], abs=1e-6)


def test_integer_seed_gives_consecutive_seeds_like_gymnasium(fast_reward):
    vec = CausalDesignVectorEnv(2, **SMALL, reward_model=fast_reward)
    a, _ = vec.reset(seed=5)
    b, _ = vec.reset(seed=[5, 6])
    np.testing.assert_array_equal(a["history"], b["history"])


def test_vector_reset_seeds_np_random(fast_reward):
    def draws(seed) -> np.ndarray:
        vec = CausalDesignVectorEnv(2, **SMALL, reward_model=fast_reward)
        vec.reset(seed=seed)
        return vec.np_random.random(4)

    np.testing.assert_array_equal(draws(5), draws(5))
    assert not np.array_equal(draws(5), draws(6))
    np.testing.assert_array_equal(draws([5, 9]), draws([5, 9]))
    assert not np.array_equal(draws([5, 9]), draws([5, 8]))
    vec = CausalDesignVectorEnv(2, **SMALL, reward_model=fast_reward)
    vec.reset(seed=5)
    assert vec.np_random_seed == 5


def test_reset_seed_fixes_the_system_and_every_sample(fast_reward):
    actions = np.random.default_rng(1).uniform(-1, 1, (3, 8)).astype(np.float32)
    one = rollout_single(42, actions, **SMALL, reward_model=fast_reward)
    two = rollout_single(42, actions, **SMALL, reward_model=fast_reward)
    other = rollout_single(43, actions, **SMALL, reward_model=fast_reward)
    np.testing.assert_array_equal(one[-1][0]["history"], two[-1][0]["history"])
    assert not np.array_equal(one[-1][0]["history"], other[-1][0]["history"])


@pytest.mark.parametrize("reward", ["correct_entries", "bce"])
def test_return_plus_initial_score_is_final_score(reward, fast_reward):
    env = CausalDesignEnv(**SMALL, reward=reward, reward_model=fast_reward)
    _, info = env.reset(seed=0)
    total = 0.0
    for _ in range(SMALL["budget"]):
        _, r, term, _, step_info = env.step(env.action_space.sample())
        total += r
    assert term
    assert info["initial_score"] + total == pytest.approx(step_info["score"], abs=1e-9)
    if reward == "correct_entries":
        assert step_info["score"] == pytest.approx(
            step_info["final_metrics"]["expected_correct_entries"]
        )


class FixedPosteriors(torch.nn.Module):
    """A reward model whose edge probabilities depend only on the number of rows seen."""

    def __init__(self, d: int, n0: int, budget: int):
        super().__init__()
        rng = np.random.default_rng(0)
        self.n0 = n0
        self.table = torch.as_tensor(rng.uniform(0.05, 0.95, (budget + 1, d, d)))

    def edge_probs(self, x, mask=None):
        p = self.table[x.shape[1] - self.n0].clone()
        p.fill_diagonal_(0.0)
        return p.expand(x.shape[0], -1, -1).float()


@pytest.mark.parametrize("reward", ["correct_entries", "bce"])
def test_reward_is_the_increase_of_the_score_computed_by_hand(reward):
    model = FixedPosteriors(SMALL["d"], SMALL["n0"], SMALL["budget"])
    env = CausalDesignEnv(**SMALL, reward=reward, reward_model=model)
    env.reset(seed=4)
    g = env.graph.astype(bool)
    off = ~np.eye(SMALL["d"], dtype=bool)

    def score(t: int) -> float:
        p = model.table[t].float().double().numpy()
        if reward == "correct_entries":
            return float(np.where(g, p, 1 - p)[off].sum())
        return 1.0 + float(np.where(g, np.log(p), np.log(1 - p))[off].mean())

    for t in range(1, SMALL["budget"] + 1):
        _, r, _, _, info = env.step(env.action_space.sample())
        assert r == pytest.approx(score(t) - score(t - 1), abs=1e-9)
        assert info["score"] == pytest.approx(score(t), abs=1e-9)


def test_final_schedule_pays_the_dense_return_at_the_end(fast_reward):
    actions = np.random.default_rng(2).uniform(-1, 1, (3, 8)).astype(np.float32)
    dense = rollout_single(9, actions, **SMALL, reward_model=fast_reward)
    final = rollout_single(9, actions, **SMALL, reward_model=fast_reward, reward_schedule="final")
    assert [r for _, r, _ in final[1:-1]] == [0.0, 0.0]
    assert final[-1][1] == pytest.approx(sum(r for _, r, _ in dense), abs=1e-9)
    assert "expected_correct_entries" not in final[1][2]


def test_history_records_do_interventions():
    env = CausalDesignEnv(**SMALL, reward_model="constant-prior", value_scale=2.0)
    env.reset(seed=0)
    action = np.array(
        [1, -1, 0.5, -0.2, 0.25, 0, 7.0, 0], dtype=np.float32
    )  # value 7 is clipped to 1
    obs, *_ = env.step(action)
    row = obs["history"][SMALL["n0"]]
    np.testing.assert_array_equal(row[:, 1], [1, 0, 1, 0])
    assert row[0, 0] == pytest.approx(0.5) and row[2, 0] == pytest.approx(2.0)
    assert obs["mask"].sum() == SMALL["n0"] + 1
    assert np.all(obs["history"][SMALL["n0"] + 1 :] == 0)


def test_no_initial_data_starts_from_the_uninformative_posterior():
    env = CausalDesignEnv(d=3, n0=0, budget=2, reward_model="constant-prior")
    _, info = env.reset(seed=0)
    assert info["initial_expected_correct_entries"] == pytest.approx(3.0)
    env.step(env.action_space.sample())


def test_vector_env_autoresets_on_the_next_step(fast_reward):
    vec = CausalDesignVectorEnv(2, **SMALL, reward_model=fast_reward)
    vec.reset(seed=0)
    for _ in range(SMALL["budget"]):
        _, _, term, _, info = vec.step(vec.action_space.sample())
    assert term.all() and "final_metrics" in info
    obs, r, term, _, info = vec.step(vec.action_space.sample())
    assert not term.any() and np.all(r == 0) and obs["mask"].sum() == 2 * SMALL["n0"]
    assert "initial_score" in info


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d": 1}, "d must be"),
        ({"budget": 0}, "budget must be"),
        ({"n0": -1}, "n0 must be"),
        ({"graph": "grid"}, "graph prior"),
        ({"noise": "cauchy"}, "noise"),
        ({"intervention": "knockout"}, "intervention"),
        ({"reward": "mse"}, "reward"),
        ({"reward_schedule": "sometimes"}, "reward_schedule"),
        ({"simulator": "nonlinear"}, "simulator"),
        ({"value_scale": float("nan")}, "value_scale"),
        ({"graph_degree": -1.0}, "graph_degree must be finite and > 0"),
        ({"graph_degree": float("nan")}, "graph_degree must be finite and > 0"),
        ({"reward_model": "no-such-model"}, "unknown reward model"),
    ],
)
def test_invalid_kwargs_raise_clear_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CausalDesignEnv(**{**SMALL, "reward_model": "constant-prior", **kwargs})


def test_bad_actions_raise_clear_errors():
    env = CausalDesignEnv(**SMALL, reward_model="constant-prior")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(np.full(8, np.nan, dtype=np.float32))
    with pytest.raises(TypeError, match="dtype"):
        env.step(np.array(["a"] * 8))
    vec = CausalDesignVectorEnv(2, **SMALL, reward_model="constant-prior")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 8\)"):
        vec.step(np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(TypeError, match="seed must be"):
        vec.reset(seed=1.5)


def test_out_of_range_actions_are_clipped_whatever_their_dtype():
    core = CausalDesignVectorEnv(1, **SMALL, reward_model="constant-prior").core
    big = np.array([[1e308, -1e308, 0, 0, 2e300, -3e300, 0.5, 0]])  # finite, beyond float32
    targets, values = core.decode_action(big)
    assert targets.tolist() == [[True, False, False, False]]
    assert values.tolist() == [[1.0, -1.0, 0.5, 0.0]]
    for dtype in (np.uint8, np.int16, np.int64):
        targets, values = core.decode_action(np.array([[0, 1, 5, 0, 0, 7, 1, 0]], dtype=dtype))
        assert targets.tolist() == [[False, True, True, False]]
        assert values.tolist() == [[0.0, 1.0, 1.0, 0.0]]


def test_stepping_after_termination_without_reset_raises():
    env = CausalDesignEnv(**SMALL, reward_model="constant-prior")
    env.reset(seed=0)
    for _ in range(SMALL["budget"]):
        env.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_reward_model_output_shape_is_checked():
    class Broken:
        def edge_probs(self, x, mask=None):
            return torch.zeros(x.shape[0], 2, 2)

    with pytest.raises(ValueError, match="reward model returned shape"):
        CausalDesignEnv(**SMALL, reward_model=Broken()).reset(seed=0)


def test_reward_model_probabilities_outside_the_unit_interval_are_rejected():
    class TooSure:
        def edge_probs(self, x, mask=None):
            return torch.full((x.shape[0], x.shape[2], x.shape[2]), 2.0)

    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        CausalDesignEnv(**SMALL, reward_model=TooSure()).reset(seed=0)


def test_exact_posterior_loaded_by_name_follows_the_envs_graph_prior():
    sparse = CausalDesignEnv(**SMALL, graph_degree=1.0, reward_model="exact-linear-gaussian")
    default = CausalDesignEnv(**SMALL, reward_model="exact-linear-gaussian")
    assert sparse.core.reward_model.graph_degree == 1.0
    assert default.core.reward_model.graph_degree == 3.0
    # A model passed as an object is the user's choice and stays as it is.
    mine = caasl_envs.load_reward_model("exact-linear-gaussian")
    assert CausalDesignEnv(**SMALL, graph_degree=1.0, reward_model=mine).core.reward_model is mine


def test_sb3_vec_env_rejects_ids_that_are_not_causal_design_envs():
    with pytest.raises(ValueError, match="not a causal design env"):
        caasl_envs.make_sb3_vec_env("CartPole-v1")
