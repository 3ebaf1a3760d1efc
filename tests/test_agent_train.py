"""The training loop of ``caasl train`` end to end, at toy size (checks the loop, not learning)."""

import json

import numpy as np
import pytest
import torch
from agent_toy_env import tiny_policy_kwargs
from stable_baselines3.common.vec_env import VecNormalize

import caasl_envs
from caasl_agent import CAASL
from caasl_agent.bench.reports import mean_sem, paired_interval
from caasl_agent.bench.runner import run_setting
from caasl_agent.bench.suites import Setting
from caasl_agent.cli import build_parser
from caasl_agent.train import (
    available_presets,
    evaluate_agent,
    load_config,
    make_model,
    model_from_config,
    train,
)


def tiny_config():
    config = load_config("cpu-quick")
    config.update(n_envs=4, total_timesteps=96, checkpoint_every_steps=48)
    config["env_kwargs"] = dict(d=3, n0=5, budget=3, reward_model="partial-correlation")
    config["algorithm"].update(learning_starts=24, batch_size=8, buffer_size=500)
    config["policy_kwargs"] = tiny_policy_kwargs(16)
    config["evaluation"] = dict(
        every_steps=48, n_envs=4, seed=100, heldout_n_envs=6, heldout_seed=200
    )
    return config


def test_a_file_over_a_preset_that_names_its_own_base(tmp_path):
    perturbseq = load_config("sergio-perturbseq-cpu")
    sergio = load_config("sergio-cpu")
    assert "base" not in perturbseq and perturbseq["env_id"] == "caasl/SERGIOPerturbSeq-v0"
    assert perturbseq["algorithm"] == sergio["algorithm"]
    assert perturbseq["total_timesteps"] != sergio["total_timesteps"]
    path = tmp_path / "mine.yaml"
    path.write_text("base: sergio-perturbseq-cpu\nseed: 3\nnormalize_reward: true\n")
    mine = load_config(path)
    assert mine == {**perturbseq, "seed": 3, "normalize_reward": True}


def test_presets_exist():
    assert {"paper", "cpu-quick", "sergio"} <= set(available_presets())
    paper = load_config("paper")
    assert paper["n_envs"] == 1000 and paper["algorithm"]["batch_size"] == 4096
    assert load_config("sergio")["policy_kwargs"]["standardization"] == "counts"


@pytest.mark.parametrize("preset", available_presets())
def test_every_preset_builds_a_model(preset):
    config = load_config(preset)
    config["algorithm"]["buffer_size"] = 100  # the presets' buffers are GBs
    if config["algorithm"].get("imitation_coef", 0) > 0:  # read only once training starts
        config["algorithm"]["imitation_labels"] = "labels"
    env_kwargs = dict(d=3, n0=4, budget=2, reward_model="partial-correlation")
    env = caasl_envs.make_sb3_vec_env(config["env_id"], n_envs=2, seed=0, **env_kwargs)
    model = model_from_config(config, env)
    assert len(model.critic.q_networks) == config["algorithm"]["ensemble_size"]
    assert model.gamma == config["algorithm"]["gamma"]
    expected_entries = 1 if "SERGIO" in config["env_id"] else 2  # targets only
    assert model.action_space.shape == (expected_entries * 3,)


def test_train_writes_models_curves_and_results_and_resumes(tmp_path):
    results = train(tiny_config(), tmp_path / "run", device="cpu", verbose=0)
    out = tmp_path / "run"
    for name in (
        "best_model.zip",
        "final_model.zip",
        "evaluations.csv",
        "learning_curve.png",
        "config.yaml",
    ):
        assert (out / name).is_file(), name
    assert any((out / "checkpoints").glob("caasl_*_steps.zip"))
    assert any((out / "tb").rglob("events.out.tfevents.*"))
    assert json.loads((out / "results.json").read_text()) == results
    assert results["timesteps"] == 96 and results["heldout_envs"]["n"] == 6
    # The held-out numbers are the harness's: its runner, its random baseline, its intervals.
    config = tiny_config()
    setting = Setting("training", config["env_id"], config["env_kwargs"])
    harness = run_setting("random", setting, range(200, 206), False, agent_seed=200)
    random_final = harness["metrics"]["expected_correct_entries"][:, -1]
    assert results["random_final_expected_correct_entries"] == pytest.approx(
        dict(zip(("mean", "sem", "n"), mean_sem(random_final)))
    )
    caasl = evaluate_agent(
        CAASL.load(out / "best_model"), config["env_id"], config["env_kwargs"], 6, 200
    )
    difference = caasl["final_expected_correct_entries"] - random_final
    assert results["paired_difference"] == pytest.approx(
        dict(zip(("mean_diff", "ci95_low", "ci95_high", "n"), paired_interval(difference)))
    )
    resumed = train(
        tiny_config(), tmp_path / "resumed", device="cpu", resume=out / "final_model.zip", verbose=0
    )
    assert resumed["timesteps"] == 192
    evaluated = (tmp_path / "resumed" / "evaluations.csv").read_text().splitlines()[1:]
    # the starting policy is evaluated too (it competes for best_model.zip)
    assert [int(row.split(",")[0]) for row in evaluated] == [96, 144, 192]


def test_cli_has_train_subcommand():
    args = build_parser().parse_args(
        ["train", "--config", "cpu-quick", "--n-envs", "8", "--device", "cpu"]
    )
    assert (
        args.config == "cpu-quick" and args.n_envs == 8 and args.func.__name__ == "_train_command"
    )


def test_exact_posterior_preset_trains_with_the_exact_reward(tmp_path):
    assert load_config("linear-exact")["env_kwargs"]["reward_model"] == "exact-linear-gaussian"
    config = tiny_config()
    config["env_kwargs"]["reward_model"] = "exact-linear-gaussian"
    results = train(config, tmp_path, device="cpu", verbose=0)
    assert results["timesteps"] == 96 and (tmp_path / "final_model.zip").is_file()


def test_evaluation_leaves_the_global_generators_as_it_found_them():
    config = tiny_config()
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    expected = np.random.rand(3), torch.rand(3)  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    evaluate_agent("random", config["env_id"], config["env_kwargs"], 2, 7)
    np.testing.assert_array_equal(np.random.rand(3), expected[0])  # noqa: NPY002
    torch.testing.assert_close(torch.rand(3), expected[1])


@pytest.mark.parametrize("gamma", [None, 0.95])
def test_reward_normalization_discounts_with_the_models_gamma(tmp_path, gamma):
    config = tiny_config()
    config["normalize_reward"] = True
    config["algorithm"].pop("gamma", None)
    if gamma is not None:
        config["algorithm"]["gamma"] = gamma
    model = make_model(config, config["env_kwargs"], tmp_path, verbose=0)
    env = model.get_env()
    assert isinstance(env, VecNormalize) and env.norm_reward and not env.norm_obs
    assert env.gamma == model.gamma == (0.9 if gamma is None else gamma)  # CAASL's default: 0.9


def test_normalized_rewards_are_rescaled_when_sampled_and_stored_raw(tmp_path):
    config = tiny_config()
    config["normalize_reward"] = True
    assert train(config, tmp_path, device="cpu", verbose=0)["timesteps"] == 96

    env = caasl_envs.make_sb3_vec_env(config["env_id"], n_envs=1, seed=0, **config["env_kwargs"])
    norm = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=0.9)
    model = model_from_config(config, norm)
    model.learn(30)
    buffer = model.replay_buffer
    rows = np.arange(buffer.pos)
    raw = buffer.rewards[rows, 0]
    sampled = buffer._get_samples(rows, env=norm).rewards.numpy().ravel()
    np.testing.assert_allclose(sampled, norm.normalize_reward(raw), rtol=1e-6)
    assert not np.allclose(sampled, raw)  # a real rescaling, not the identity
