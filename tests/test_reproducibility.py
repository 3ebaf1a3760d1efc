"""Training is reproducible bit for bit on the CPU: two runs with one seed, and a run saved,
loaded and continued against the same run uninterrupted.

What SB3's ``save`` leaves out, the resume test carries over by hand and says so: the replay
buffer (``save_replay_buffer``), the environments (the same objects continue) and the global
random generators (SB3's ``load`` reseeds them with the model's seed).
"""

import random

import numpy as np
import pytest
import torch
from agent_toy_env import tiny_policy_kwargs
from test_agent_train import tiny_config

import caasl_envs
from caasl_agent import CAASL
from caasl_agent.train import train

ENV = dict(d=3, n0=4, budget=4, reward_model="partial-correlation")
SETTINGS = dict(
    device="cpu",
    learning_starts=24,
    batch_size=8,
    ensemble_size=3,
    target_subset_size=2,
    critic_updates_per_actor_update=2,
    ent_coef="auto_0.1",
    target_entropy=-3.0,
    target_entropy_final=-9.0,
    policy_kwargs=tiny_policy_kwargs(16),
)
STEPS = 96  # 24 rounds of 4 envs, 18 gradient steps


def env():
    return caasl_envs.make_sb3_vec_env("caasl/LinearGaussian-v0", n_envs=4, seed=0, **ENV)


def state(model: CAASL) -> dict[str, torch.Tensor]:
    """Every learned tensor: networks, target networks, entropy coefficient, optimizer moments."""
    out = {f"policy.{k}": v.clone() for k, v in model.policy.state_dict().items()}
    out["log_ent_coef"] = model.log_ent_coef.detach().clone()
    optimizers = {
        "actor": model.actor.optimizer,
        "critic": model.critic.optimizer,
        "ent_coef": model.ent_coef_optimizer,
    }
    for name, optimizer in optimizers.items():
        for i, param_state in enumerate(optimizer.state_dict()["state"].values()):
            for key, value in param_state.items():
                out[f"{name}.{i}.{key}"] = torch.as_tensor(value).clone()
    return out


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_two_runs_with_one_seed_give_identical_weights():
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("other", 1)):
        model = CAASL(env(), seed=seed, **SETTINGS)
        model.learn(STEPS)
        runs[name] = state(model)
    assert model._n_updates == 18
    assert_same(runs["a"], runs["b"])
    assert any(not torch.equal(runs["a"][k], runs["other"][k]) for k in runs["a"])


def global_rng_states() -> tuple:
    return random.getstate(), np.random.get_state(), torch.get_rng_state()  # noqa: NPY002


def set_global_rng_states(states: tuple) -> None:
    random.setstate(states[0])
    np.random.set_state(states[1])  # noqa: NPY002
    torch.set_rng_state(states[2])


@pytest.mark.parametrize("annealed", [False, True])
def test_saved_loaded_and_continued_equals_uninterrupted(annealed, tmp_path):
    """With constant schedules, ``learn(T)`` is the reference; an annealed target entropy is
    scheduled over each ``learn`` call (SB3's progress), so there the reference is
    ``learn(T / 2)`` then ``learn(T / 2, reset_num_timesteps=False)`` in one process."""
    settings = SETTINGS if annealed else {**SETTINGS, "target_entropy_final": None}
    uninterrupted = CAASL(env(), seed=0, **settings)
    if annealed:
        uninterrupted.learn(STEPS // 2)
        uninterrupted.learn(STEPS // 2, reset_num_timesteps=False)
    else:
        uninterrupted.learn(STEPS)

    first = CAASL(env(), seed=0, **settings)
    first.learn(STEPS // 2)
    first.save(tmp_path / "half")
    first.save_replay_buffer(tmp_path / "buffer")
    rng_states = global_rng_states()
    resumed = CAASL.load(tmp_path / "half", env=first.get_env(), device="cpu", force_reset=False)
    resumed.load_replay_buffer(tmp_path / "buffer")
    set_global_rng_states(rng_states)
    resumed.learn(STEPS // 2, reset_num_timesteps=False)

    assert resumed.num_timesteps == uninterrupted.num_timesteps == STEPS
    assert resumed._n_updates == uninterrupted._n_updates
    assert resumed.target_entropy == uninterrupted.target_entropy == (-9.0 if annealed else -3.0)
    assert_same(state(resumed), state(uninterrupted))


def test_caasl_train_with_one_seed_writes_identical_models(tmp_path):
    config = tiny_config()
    config.update(total_timesteps=48, checkpoint_every_steps=48)
    config["evaluation"].update(every_steps=48, n_envs=2, heldout_n_envs=2)
    finals = []
    for run in ("a", "b"):
        results = train(config, tmp_path / run, device="cpu", verbose=0)
        finals.append(CAASL.load(tmp_path / run / "final_model.zip", device="cpu"))
        results.pop("train_seconds")
        finals[-1].results = results
    assert finals[0]._n_updates > 0
    assert finals[0].results == finals[1].results
    assert_same(
        {k: v for k, v in finals[0].policy.state_dict().items()},
        {k: v for k, v in finals[1].policy.state_dict().items()},
    )
