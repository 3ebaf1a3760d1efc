"""``samples_per_step = 3``: the env, HistoryReplayBuffer and the agent, compared exactly.

Every comparison here is exact (``array_equal`` / ``torch.equal``): the env copies simulator
samples into its history, the buffer copies rows, so nothing may round.
"""

import numpy as np
import pytest
import torch
from gymnasium.utils import seeding
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv

import caasl_envs
from caasl_agent import CAASL
from caasl_agent.buffers import HistoryReplayBuffer
from caasl_envs import CausalDesignEnv, CausalDesignVectorEnv
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import LinearSCMPrior

K = 3
ENV = dict(d=4, n0=5, budget=3, samples_per_step=K, reward_model="partial-correlation")
N_ROWS = ENV["n0"] + ENV["budget"] * K


def actions(n_steps: int, n_envs: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (n_steps, 2 * ENV["d"]) if n_envs is None else (n_steps, n_envs, 2 * ENV["d"])
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def test_each_step_appends_k_simulator_samples_after_the_history():
    env = CausalDesignEnv(**ENV, value_scale=2.0)
    obs, _ = env.reset(seed=11)
    # the same process by hand: prior draw, n0 observational rows, then k rows per experiment
    rng = BatchedRNG([seeding.np_random(11)[0]])
    system = LinearSCMPrior(ENV["d"]).sample(rng)
    expected = np.zeros((N_ROWS, ENV["d"], 2), np.float32)
    expected[: ENV["n0"], :, 0] = system.sample(rng, ENV["n0"])[0].numpy()
    np.testing.assert_array_equal(obs["history"], expected)
    for t, action in enumerate(actions(ENV["budget"])):
        obs, _, terminated, _, _ = env.step(action)
        targets = torch.as_tensor(action[None, : ENV["d"]] > 0)
        values = torch.as_tensor(action[None, ENV["d"] :] * 2.0)
        rows = slice(ENV["n0"] + t * K, ENV["n0"] + (t + 1) * K)
        expected[rows, :, 0] = system.sample(rng, K, targets, values)[0].numpy()
        expected[rows, :, 1] = targets.numpy().astype(np.float32)
        np.testing.assert_array_equal(obs["history"], expected)  # padding rows stay zero
        np.testing.assert_array_equal(obs["mask"], np.arange(N_ROWS) < rows.stop)
        assert terminated == (t == ENV["budget"] - 1)
    # a do-target row holds the clamped value in all k samples
    target = int(np.flatnonzero(action[: ENV["d"]] > 0)[0])
    assert np.all(obs["history"][-K:, target, 0] == np.float32(action[ENV["d"] + target] * 2.0))


def test_batched_env_with_k_samples_equals_single_envs():
    seeds, acts = [3, 8], actions(ENV["budget"], n_envs=2, seed=1)
    vec = CausalDesignVectorEnv(2, **ENV)
    batched = [vec.reset(seed=seeds)[0]] + [vec.step(a)[0] for a in acts]
    for i, seed in enumerate(seeds):
        env = CausalDesignEnv(**ENV)
        single = [env.reset(seed=seed)[0]] + [env.step(a)[0] for a in acts[:, i]]
        for s, b in zip(single, batched):
            np.testing.assert_array_equal(s["history"], b["history"][i])
            np.testing.assert_array_equal(s["mask"], b["mask"][i])


def truncating_vec_env() -> DummyVecEnv:
    """Env 0 terminates after its budget of 3 steps; env 1 is truncated after 2 steps."""
    return DummyVecEnv(
        [
            lambda: CausalDesignEnv(**ENV),
            lambda: TimeLimit(CausalDesignEnv(**ENV), max_episode_steps=2),
        ]
    )


def fill(buffers, n_steps: int = 9) -> list[tuple]:
    """Step :func:`truncating_vec_env` and add every transition to each buffer (as SB3 does:
    the next observation of an ended episode is its terminal observation)."""
    env = truncating_vec_env()
    env.seed(0)
    obs = env.reset()
    transitions = []
    for action in actions(n_steps, n_envs=2, seed=2):
        new_obs, reward, done, infos = env.step(action)
        next_obs = {k: v.copy() for k, v in new_obs.items()}
        for i in np.flatnonzero(done):
            for k in next_obs:
                next_obs[k][i] = infos[i]["terminal_observation"][k]
        for buffer in buffers:
            buffer.add(obs, next_obs, action, reward, done, infos)
        transitions.append((obs, next_obs, done, infos))
        obs = new_obs
    return transitions


def buffer_pair(rows_per_step=None):
    env = truncating_vec_env()
    kwargs = dict(
        buffer_size=64,
        observation_space=env.observation_space,
        action_space=env.action_space,
        n_envs=2,
        device="cpu",
    )
    return HistoryReplayBuffer(**kwargs, rows_per_step=rows_per_step), DictReplayBuffer(**kwargs)


@pytest.mark.parametrize("rows_per_step", [None, K, K + 2])
def test_history_buffer_rebuilds_k_row_transitions_exactly(rows_per_step):
    compact, full = buffer_pair(rows_per_step)
    transitions = fill((compact, full))
    assert compact.rows_per_step == (rows_per_step or K)
    inds = np.arange(len(transitions)).repeat(4)  # every transition, both envs (w.h.p.)
    np.random.seed(3)  # noqa: NPY002 (SB3 buffers draw from the global generator)
    a = compact._get_samples(inds)
    np.random.seed(3)  # noqa: NPY002
    b = full._get_samples(inds)
    for key in ("history", "mask"):
        assert torch.equal(a.observations[key], b.observations[key])
        assert torch.equal(a.next_observations[key], b.next_observations[key])
    for field in ("actions", "rewards", "dones"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    added = a.next_observations["mask"].sum(1) - a.observations["mask"].sum(1)
    assert torch.all(added == K)
    # rows after the new ones are padding: exactly zero
    rows = torch.arange(N_ROWS)[None, :, None, None]
    after = rows >= a.next_observations["mask"].sum(1)[:, None, None, None]
    assert torch.all(a.next_observations["history"].masked_select(after) == 0)


def test_truncated_steps_bootstrap_and_terminated_steps_do_not():
    compact, _ = buffer_pair()
    transitions = fill((compact,))
    ended = [(t, i) for t, (_, _, done, _) in enumerate(transitions) for i in np.flatnonzero(done)]
    truncated = {(t, i) for t, i in ended if transitions[t][3][i]["TimeLimit.truncated"]}
    assert truncated and len(truncated) < len(ended)  # both kinds of ends happened
    assert all(i == 1 for _, i in truncated) and all(i == 0 for t, i in set(ended) - truncated)
    for t, i in ended:
        # transition t of both envs (each drawn with probability 1/2 per row)
        sample = compact._get_samples(np.full(64, t))
        obs, next_obs = transitions[t][0], transitions[t][1]
        rows = [
            r
            for r in range(64)
            if torch.equal(sample.observations["history"][r], torch.as_tensor(obs["history"][i]))
        ]
        assert rows
        for r in rows:
            assert sample.dones[r].item() == (0.0 if (t, i) in truncated else 1.0)
            for key in ("history", "mask"):
                assert torch.equal(
                    sample.next_observations[key][r], torch.as_tensor(next_obs[key][i])
                )
        ended_rows = ENV["n0"] + (2 if (t, i) in truncated else 3) * K
        assert next_obs["mask"][i].sum() == ended_rows


def growing(history: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The first ``n`` rows of ``history (1, N, d, 2)`` as an observation, padding zero."""
    kept = history.copy()
    kept[0, n:] = 0
    return {"history": kept, "mask": (np.arange(N_ROWS) < n).astype(np.float32)[None]}


def test_a_step_may_append_fewer_rows_than_rows_per_step():
    space = truncating_vec_env()
    spaces = (space.observation_space, space.action_space)
    compact = HistoryReplayBuffer(8, *spaces, device="cpu", rows_per_step=K)
    full = DictReplayBuffer(8, *spaces, device="cpu")
    history = np.random.default_rng(0).normal(size=(1, N_ROWS, ENV["d"], 2)).astype(np.float32)
    for n, added in ((5, 2), (7, 1), (8, 0)):
        for buffer in (compact, full):
            buffer.add(
                growing(history, n),
                growing(history, n + added),
                np.zeros((1, 2 * ENV["d"])),
                np.zeros(1),
                np.zeros(1),
                [{}],
            )
    a, b = compact._get_samples(np.arange(3)), full._get_samples(np.arange(3))
    for key in ("history", "mask"):
        assert torch.equal(a.next_observations[key], b.next_observations[key])
    assert a.next_observations["mask"].sum(1).tolist() == [7.0, 8.0, 8.0]


@pytest.mark.parametrize("env_kind", ["dummy-with-time-limit", "batched"])
def test_agent_trains_identically_with_history_and_dict_buffers(env_kind, tiny_policy_kwargs):
    """Same seed, same samples: only the buffer differs, so any difference in what it returns
    (a wrong row, mask, padding or done for k = 3) changes the weights."""
    weights = []
    for buffer_class in (HistoryReplayBuffer, DictReplayBuffer):
        if env_kind == "batched":
            env = caasl_envs.make_sb3_vec_env("caasl/LinearGaussian-v0", n_envs=2, seed=0, **ENV)
        else:
            env = truncating_vec_env()
            env.seed(0)
        model = CAASL(
            env,
            seed=0,
            device="cpu",
            learning_starts=8,
            batch_size=8,
            replay_buffer_class=buffer_class,
            policy_kwargs=tiny_policy_kwargs(8),
        )
        model.learn(32)
        assert model._n_updates >= 10
        weights.append({k: v.clone() for k, v in model.policy.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
