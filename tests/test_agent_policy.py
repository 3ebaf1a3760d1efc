"""CAASLPolicy and CAASL: action layout, zero-shot across d, save/load, resume, REDQ, buffer."""

import numpy as np
import pytest
import torch
from agent_toy_env import ToyDesignEnv, tiny_policy_kwargs
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv

from caasl_agent import CAASL, CAASLPolicy
from caasl_agent.buffers import HistoryReplayBuffer
from caasl_agent.policies import env_layout_actions, per_variable_actions

POLICY_KWARGS = tiny_policy_kwargs(16)


def toy_vec_env(d=5, n_envs=2, targets_only=False):
    return DummyVecEnv([lambda: ToyDesignEnv(d=d, targets_only=targets_only)] * n_envs)


def tiny_model(env, **kwargs):
    defaults = dict(
        seed=0, learning_starts=8, batch_size=8, policy_kwargs=POLICY_KWARGS, device="cpu"
    )
    return CAASL(env, **{**defaults, **kwargs})


def toy_obs(d, n_envs=3, seed=0):
    env = toy_vec_env(d, n_envs)
    env.seed(seed)
    obs = env.reset()
    obs, *_ = env.step(
        np.random.default_rng(seed).uniform(-1, 1, (n_envs, 2 * d)).astype(np.float32)
    )
    return obs


def test_action_layout_round_trip_pairs_target_and_value_of_each_variable():
    actions = torch.tensor([[10.0, 11.0, 12.0, 20.0, 21.0, 22.0]])  # targets 1x, values 2x
    per_variable = per_variable_actions(actions, 3)
    assert per_variable[0].tolist() == [[10.0, 20.0], [11.0, 21.0], [12.0, 22.0]]
    torch.testing.assert_close(env_layout_actions(per_variable), actions)


def test_critic_pairs_action_entries_with_their_variable():
    """Swapping the action entries of variables 0 and 1 (in env layout) together with the
    variables of the observation leaves every Q-value unchanged (defect 1 of the original)."""
    model = tiny_model(toy_vec_env(d=4))
    obs = {k: torch.as_tensor(v) for k, v in toy_obs(4).items()}
    actions = torch.rand(3, 8) * 2 - 1
    perm = torch.tensor([1, 0, 2, 3])
    swapped_obs = {"history": obs["history"][:, :, perm], "mask": obs["mask"]}
    swapped_actions = torch.cat([actions[:, :4][:, perm], actions[:, 4:][:, perm]], dim=1)
    with torch.no_grad():
        for q, q_swapped in zip(
            model.critic(obs, actions), model.critic(swapped_obs, swapped_actions)
        ):
            torch.testing.assert_close(q, q_swapped, atol=1e-5, rtol=0)
        # pairing (2j, 2j+1) instead would change the value
        wrong = actions.reshape(3, 4, 2).transpose(1, 2).flatten(1)
        assert not torch.allclose(
            model.critic(obs, actions)[0], model.critic(obs, wrong)[0], atol=1e-4
        )


def test_trained_at_d5_acts_on_d8_and_permuting_variables_permutes_the_action():
    model = tiny_model(toy_vec_env(d=5))
    model.learn(64)
    obs = toy_obs(8)
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (3, 16) and np.all(np.abs(actions) <= 1)
    single, _ = model.predict({k: v[0] for k, v in obs.items()}, deterministic=True)
    np.testing.assert_allclose(single, actions[0], atol=1e-6)
    perm = np.random.default_rng(0).permutation(8)
    permuted, _ = model.predict(
        {"history": obs["history"][:, :, perm], "mask": obs["mask"]}, deterministic=True
    )
    np.testing.assert_allclose(
        permuted, np.concatenate([actions[:, :8][:, perm], actions[:, 8:][:, perm]], 1), atol=1e-5
    )


def test_target_only_action_space():
    model = tiny_model(toy_vec_env(d=4, targets_only=True))
    model.learn(32)
    assert model.predict(toy_obs(6), deterministic=True)[0].shape == (3, 6)


def test_bad_observations_raise():
    model = tiny_model(toy_vec_env(d=3))
    obs = toy_obs(3)
    with pytest.raises(ValueError, match="keys 'history' and 'mask'"):
        model.predict({"history": obs["history"]})
    with pytest.raises(ValueError, match="does not match"):
        model.predict({"history": obs["history"], "mask": obs["mask"][:, :-1]})
    bad = obs["history"].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict({"history": bad, "mask": obs["mask"]})
    with pytest.raises(ValueError, match="target_subset_size"):
        tiny_model(toy_vec_env(d=3), ensemble_size=2, target_subset_size=3)


def test_save_load_identical_actions_and_resume(tmp_path):
    model = tiny_model(
        toy_vec_env(d=4), ensemble_size=3, target_subset_size=2, critic_updates_per_actor_update=2
    )
    model.learn(48)
    model.save(tmp_path / "m")
    obs = toy_obs(4)
    loaded = CAASL.load(tmp_path / "m", device="cpu")
    for deterministic in (True, False):
        torch.manual_seed(1)
        a = model.predict(obs, deterministic=deterministic)[0]
        torch.manual_seed(1)
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=deterministic)[0], a)
    assert len(loaded.critic.q_networks) == 3 and loaded.target_subset_size == 2
    before = [p.detach().clone() for p in loaded.critic.parameters()]
    loaded.set_env(toy_vec_env(d=4))
    loaded.learn(48, reset_num_timesteps=False)
    assert loaded.num_timesteps == 96 and loaded._n_updates > model._n_updates
    assert any(not torch.equal(p, q) for p, q in zip(before, loaded.critic.parameters()))
    # continuing at another d and number of envs starts a new buffer of the new shape
    other = CAASL.load(tmp_path / "m", env=toy_vec_env(d=6, n_envs=3), device="cpu")
    other.learn(48)
    assert other.replay_buffer.histories.shape[2:] == (6, 6, 2)


def test_target_entropy_is_annealed_linearly_in_the_training_progress(monkeypatch):
    """Each gradient step uses ``-6 + (-12 - -6) * t / T`` at ``t`` of ``T`` env steps."""
    model = tiny_model(toy_vec_env(d=3), target_entropy=-6.0, target_entropy_final=-12.0)
    used = []
    train = model.train

    def recording(gradient_steps, batch_size=64):
        train(gradient_steps, batch_size)
        used.append((model.num_timesteps, model.target_entropy))

    monkeypatch.setattr(model, "train", recording)
    model.learn(96)
    # one train() per vector step (2 envs) once past learning_starts = 8
    assert [t for t, _ in used] == list(range(10, 97, 2))
    for t, target in used:
        assert target == pytest.approx(-6.0 - 6.0 * t / 96, abs=1e-12), t
    assert used[-1] == (96, -12.0)


def test_history_buffer_rebuilds_what_dict_buffer_stores():
    env = toy_vec_env(d=3, n_envs=2)
    kwargs = dict(
        buffer_size=64,
        observation_space=env.observation_space,
        action_space=env.action_space,
        n_envs=2,
    )
    compact, full = (
        HistoryReplayBuffer(**kwargs, device="cpu"),
        DictReplayBuffer(**kwargs, device="cpu"),
    )
    env.seed(0)
    obs = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(12):  # several episodes, terminal observations included
        action = rng.uniform(-1, 1, (2, 6)).astype(np.float32)
        new_obs, reward, done, infos = env.step(action)
        next_obs = {k: v.copy() for k, v in new_obs.items()}
        for i in np.flatnonzero(done):
            for k in next_obs:
                next_obs[k][i] = infos[i]["terminal_observation"][k]
        for buffer in (compact, full):
            buffer.add(obs, next_obs, action, reward, done, infos)
        obs = new_obs
    inds = np.arange(12)
    np.random.seed(3)  # noqa: NPY002 (SB3 buffers draw from the global generator)
    a = compact._get_samples(inds)
    np.random.seed(3)  # noqa: NPY002 (SB3 buffers draw from the global generator)
    b = full._get_samples(inds)
    for key in ("history", "mask"):  # rows are copied, never computed: exactly equal
        assert torch.equal(a.observations[key], b.observations[key])
        assert torch.equal(a.next_observations[key], b.next_observations[key])
    for field in ("actions", "rewards", "dones"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert a.dones.sum() > 0


def allocated_bytes(buffer) -> int:
    """Bytes of every array a buffer holds (dicts of arrays included)."""
    total = 0
    for value in vars(buffer).values():
        arrays = value.values() if isinstance(value, dict) else [value]
        total += sum(v.nbytes for v in arrays if isinstance(v, np.ndarray))
    return total


def test_history_buffer_allocates_what_bytes_per_transition_says_half_of_dict_buffer():
    import gymnasium as gym

    import caasl_envs  # noqa: F401 (registers the ids)

    env = gym.make("caasl/LinearGaussian-v0", reward_model="partial-correlation")  # d=10, N=60
    n_envs, size = 4, 64
    kwargs = dict(
        buffer_size=size * n_envs,
        observation_space=env.observation_space,
        action_space=env.action_space,
        n_envs=n_envs,
        device="cpu",
    )
    compact = HistoryReplayBuffer(**kwargs, rows_per_step=1)
    full = DictReplayBuffer(**kwargs)
    per_transition = allocated_bytes(compact) / (size * n_envs)
    assert per_transition == HistoryReplayBuffer.bytes_per_transition(60, 10, 1, 20) == 4978
    assert allocated_bytes(full) / (size * n_envs) == 10172  # the module docstring's figures


def test_history_buffer_rejects_observations_that_are_not_growing_histories():
    env = toy_vec_env(d=3, n_envs=1)
    buffer = HistoryReplayBuffer(8, env.observation_space, env.action_space, device="cpu")
    obs = env.reset()
    other = {k: v.copy() for k, v in obs.items()}
    other["history"][0, 0, 0, 0] += 1.0
    with pytest.raises(ValueError, match="not the observation plus appended rows"):
        buffer.add(obs, other, np.zeros((1, 6)), np.zeros(1), np.zeros(1), [{}])


def test_policy_class_is_a_sac_policy():
    from stable_baselines3.sac.policies import SACPolicy

    assert issubclass(CAASLPolicy, SACPolicy)


def test_predict_switches_to_evaluation_mode_whatever_the_mode_before():
    """predict puts the actor and the critics in evaluation mode, whatever the mode before
    (SB3 semantics; the switch is skipped only when nothing would change)."""
    policy = tiny_model(toy_vec_env(d=3)).policy
    for _ in range(2):  # from training mode, then from evaluation mode
        policy.set_training_mode(True)
        assert policy.training and policy.actor.training and policy.critic.training
        policy.predict(toy_obs(3), deterministic=True)
        modules = [policy, policy.actor, policy.critic, *policy.actor.modules()]
        assert not any(module.training for module in modules)
    policy.actor.train()  # the actor alone switched back: predict still switches it
    policy.predict(toy_obs(3), deterministic=True)
    assert not any(module.training for module in policy.actor.modules())
