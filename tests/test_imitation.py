"""Imitation of a planning designer: labels, resumable collection, the loss, belief channel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from caasl_agent import CAASL
from caasl_agent.bench.baselines import Baseline
from caasl_agent.buffers import HistoryReplayBuffer
from caasl_agent.imitation import (
    LabelDataset,
    LabelSetting,
    collect,
    fit_actor,
    imitation_loss,
    load_chunk,
    load_chunks,
)
from caasl_agent.imitation.labels import chunk_path, run_fingerprint
from caasl_agent.torch_layers import CAASLEncoder
from caasl_envs.env import CausalDesignEnv
from caasl_envs.sb3 import SB3VecEnvAdapter
from caasl_envs.vector import CausalDesignVectorEnv

TINY = {"d": 4, "n0": 6, "budget": 3, "reward_model": "partial-correlation"}
SETTING = LabelSetting("tiny", "caasl/LinearGaussian-v0", TINY)


class NewVariables(Baseline):
    """A toy teacher: intervene, with value +1, on every variable not intervened on yet."""

    def choose(self, history, mask, state, episode_start, deterministic):
        seen = ((history[..., 1] > 0) & (mask[..., None] > 0)).any(axis=1)  # (B, d)
        return ~seen, np.ones(seen.shape), None


def new_variables(vec, seed):
    return NewVariables(seed=seed)


def _collect(folder, chunks, teacher="random", **kwargs):
    return collect(
        folder, [SETTING], chunks, teacher, episodes_per_chunk=4, progress=False, **kwargs
    )


def test_resumed_collection_gives_the_same_labels(tmp_path):
    whole = _collect(tmp_path / "a", 3)
    _collect(tmp_path / "b", 1)
    (tmp_path / "b" / whole[0].name).unlink()  # interrupted: chunk 0 lost, chunk 1-2 never made
    parts = _collect(tmp_path / "b", 3, shard=(1, 2)) + _collect(tmp_path / "b", 3, shard=(0, 2))
    assert sorted(p.name for p in parts) == [p.name for p in whole]
    for path in whole:
        a, b = load_chunk(path), load_chunk(tmp_path / "b" / path.name)
        for key in ("history", "rows", "targets", "values", "belief", "executed"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    # chunks differ from one another (their seeds come from the chunk index)
    assert not np.array_equal(load_chunk(whole[0]).history, load_chunk(whole[1]).history)


def test_labels_are_the_teachers_design_on_the_visited_history(tmp_path):
    (path,) = _collect(tmp_path, 1, teacher=new_variables, beta=0.5)
    chunk = load_chunk(path)
    flags = chunk.history[:, TINY["n0"] :, :, 1] > 0  # (E, T, d) executed designs
    seen = np.cumsum(flags, axis=1) - flags > 0  # intervened on before step t
    np.testing.assert_array_equal(chunk.targets, ~seen)
    assert (chunk.values == 1).all()
    executed = chunk.executed
    assert 0 < executed.mean() < 1
    np.testing.assert_array_equal(flags[executed], chunk.targets[executed])
    assert chunk.belief.shape == (4, 3, 4, 4) and ((chunk.belief >= 0) & (chunk.belief <= 1)).all()


def test_corrupt_and_foreign_chunks_are_named(tmp_path):
    (path,) = _collect(tmp_path, 1)
    fingerprint = run_fingerprint([SETTING], "random", 0)
    with pytest.raises(ValueError, match="another run"):
        load_chunks(tmp_path, run_fingerprint([SETTING], "random", 1))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=path.name):
        load_chunks(tmp_path, fingerprint)
    with pytest.raises(ValueError, match=path.name):  # never skipped, never overwritten
        _collect(tmp_path, 1)


def test_teacher_that_cannot_act_is_refused_before_any_work(tmp_path):
    big = LabelSetting("d31", "caasl/LinearGaussian-v0", {**TINY, "d": 31})  # beyond order MCMC
    with pytest.raises(ValueError, match="teacher 'eig-batch' cannot act on setting 'd31'"):
        collect(tmp_path, [big], 1, "eig-batch", episodes_per_chunk=2, progress=False)
    assert not chunk_path(tmp_path, 0, 0).exists()


def test_imitation_loss_parts():
    mean = torch.tensor([[[5.0, 0.0], [-5.0, 3.0]]])  # (B=1, d=2, a=2)
    targets = torch.tensor([[True, False]])
    loss, parts = imitation_loss(mean, targets, torch.tensor([[0.0, 1.0]]))
    assert parts["target_accuracy"] == 1.0
    assert parts["value_mse"] == pytest.approx(0.0)  # only the target's value counts
    _, wrong = imitation_loss(mean, targets, torch.tensor([[0.9, 1.0]]))
    assert wrong["value_mse"] == pytest.approx(float(torch.atanh(torch.tensor(0.9))) ** 2)
    _, flipped = imitation_loss(mean, targets, torch.tensor([[-0.9, 1.0]]))
    assert flipped["value_mse"] == pytest.approx(wrong["value_mse"])  # the sign is free


def _tiny_model(env_kwargs, **algorithm):
    vec = CausalDesignVectorEnv(2, **env_kwargs)
    encoder = {"embed_dim": 8, "n_layers": 1, "n_heads": 2, "ff_dim": 16, "dropout": 0.0}
    return CAASL(
        SB3VecEnvAdapter(vec),
        batch_size=8,
        learning_starts=4,
        seed=0,
        policy_kwargs={
            "net_arch": [16],
            "actor_encoder_kwargs": {**encoder, "belief_layers": 1},
            "critic_encoder_kwargs": {**encoder, "belief_layers": 1},
        },
        **algorithm,
    )


def assert_reproduces_toy_teacher(model, tmp_path, learning_rate: float) -> dict:
    """Fit ``model`` to the toy teacher's labels; on held-out histories (other seeds, states
    visited by random designs only) its deterministic targets must be the teacher's, with
    values of magnitude > 0.5. Returns the held-out observations."""
    _collect(tmp_path / "train", 4, teacher=new_variables, beta=0.3)
    dataset = LabelDataset(load_chunks(tmp_path / "train"))
    fit_actor(model, dataset, steps=300, batch_size=32, learning_rate=learning_rate, progress=False)
    _collect(tmp_path / "test", 2, teacher=new_variables, beta=0.0, seed=7)
    batch = LabelDataset(load_chunks(tmp_path / "test")).sample(64, np.random.default_rng(0))
    obs = {k: batch[k].numpy() for k in ("history", "mask", "belief")}
    action, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action[:, :4] > 0, batch["targets"].numpy())
    assert (np.abs(action[:, 4:][batch["targets"].numpy()]) > 0.5).all()
    return obs


def test_toy_teacher_is_reproduced_exactly_by_imitation(tmp_path):
    assert_reproduces_toy_teacher(_tiny_model({**TINY, "observe_belief": True}), tmp_path, 3e-3)


def test_actor_waits_for_the_critics_then_imitation_term_applies(tmp_path):
    _collect(tmp_path, 1, teacher=new_variables)
    model = _tiny_model(
        {**TINY, "observe_belief": True},
        actor_warmup_steps=1000,
        imitation_coef=1.0,
        imitation_decay_steps=10,
        imitation_labels=str(tmp_path),
    )
    actor = [p.detach().clone() for p in model.actor.parameters()]
    critic = [p.detach().clone() for p in model.critic.parameters()]
    model.learn(24)
    assert all(torch.equal(a, p) for a, p in zip(actor, model.actor.parameters()))
    assert not all(torch.equal(c, p) for c, p in zip(critic, model.critic.parameters()))
    model.actor_warmup_steps = 0
    model.learn(12, reset_num_timesteps=False)
    assert not all(torch.equal(a, p) for a, p in zip(actor, model.actor.parameters()))


def test_belief_channel_is_permutation_equivariant():
    torch.manual_seed(0)
    encoder = CAASLEncoder(embed_dim=8, n_layers=1, n_heads=2, ff_dim=16, belief_layers=2)
    encoder.eval()
    history, mask = torch.randn(3, 7, 5, 2), torch.ones(3, 7)
    belief = torch.rand(3, 5, 5) * (1 - torch.eye(5))
    perm = torch.tensor([3, 0, 4, 1, 2])
    out = encoder(history, mask, belief)
    permuted = encoder(history[:, :, perm], mask, belief[:, perm][:, :, perm])
    torch.testing.assert_close(permuted, out[:, perm], atol=1e-5, rtol=1e-5)
    changed = encoder(history, mask, belief.flip(0))
    assert not torch.allclose(changed, out, atol=1e-3)  # the belief is read
    with pytest.raises(ValueError, match="observe_belief=True"):
        encoder(history, mask)


def test_environment_observes_its_belief_and_buffer_keeps_it():
    env = CausalDesignEnv(**TINY, observe_belief=True)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["belief"], env.core.probs[0].numpy().astype(np.float32))
    vec = CausalDesignVectorEnv(2, **TINY, observe_belief=True)
    buffer = HistoryReplayBuffer(
        10, vec.single_observation_space, vec.single_action_space, n_envs=2
    )
    obs, _ = vec.reset(seed=0)
    action = np.zeros((2, 8), dtype=np.float32)
    next_obs, reward, done, _, _ = vec.step(action)
    buffer.add(obs, next_obs, action, reward, done, [{}, {}])
    sample = buffer.sample(4)
    beliefs = {tuple(b.flatten().tolist()) for b in sample.observations["belief"].numpy()}
    assert beliefs <= {tuple(b.flatten().tolist()) for b in obs["belief"]}
    plain = CausalDesignEnv(**TINY)
    assert "belief" not in plain.reset(seed=0)[0]


def test_recommended_policy_is_the_default_and_benchmarks_as_caasl():
    from caasl_agent import load_policy
    from caasl_agent.bench import benchmark
    from caasl_agent.pretrained import RECOMMENDED, policy_path

    assert policy_path(RECOMMENDED["linear"]).is_file()
    assert policy_path(RECOMMENDED["sergio"]).is_file()
    default = load_policy()
    named = load_policy(RECOMMENDED["linear"])
    for a, b in zip(default.policy.parameters(), named.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    # "caasl" is the recommended policy of the family; a belief-reading policy gets its channel
    agents = ["caasl", "caasl:caasl-linear-imitation-v0", "random"]
    results = benchmark(agents, suite="tiny", episodes=2, seed=0, progress=False)
    assert {run.agent for run in results.runs} == set(agents)
    assert "belief" in load_policy("caasl-linear-imitation-v0").observation_space.spaces
