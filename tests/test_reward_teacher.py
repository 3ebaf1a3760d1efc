"""Reward-model training for design discrimination: design mixes, exact-posterior teacher targets,
fine-tuning from shipped weights, and the design-discrimination measurement itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from agent_toy_env import TINY_AVICI

from caasl_agent.bench.baselines import BASELINES, RepeatedTargetAgent
from caasl_agent.bench.discrimination import (
    discrimination_setting,
    discrimination_table,
    ranks_like_exact,
    roll_out_designs,
    score_designs,
    to_markdown,
)
from caasl_envs.reward import ExactLinearGaussianPosterior
from caasl_envs.reward.avici import AVICIModel
from caasl_envs.reward.training.data import (
    LinearDatasetSampler,
    TeacherTargets,
    parse_design_mix,
)
from caasl_envs.reward.training.train import main
from caasl_envs.reward.training.train_sergio import SergioDatasetSampler
from caasl_envs.reward.training.trainer import TrainConfig, Trainer, offdiagonal_bce

TINY_DATA = dict(d_range=(4, 5), n_obs_range=(8, 10), n_int_range=(3, 4), p_obs_only=0.0)
TINY_EVAL = dict(d_range=(4, 4), n_obs_range=(8, 8), n_int_range=(3, 3), p_obs_only=0.0)


def test_design_mix_is_parsed_and_checked():
    assert parse_design_mix("random:0.5,single:0.25,few") == {
        "random": 0.5,
        "single": 0.25,
        "few": 1.0,
    }
    with pytest.raises(ValueError, match="unknown design"):
        parse_design_mix("random:1,everything:1")
    with pytest.raises(ValueError, match="NAME"):
        parse_design_mix("single:lots")
    with pytest.raises(ValueError, match="not all 0"):
        LinearDatasetSampler(design_mix={"random": 0.0})


@pytest.mark.parametrize("design", ["single", "repeated", "few"])
def test_concentrated_designs_target_what_they_promise(design):
    sampler = LinearDatasetSampler(
        d_range=(6, 6), n_obs_range=(5, 5), n_int_range=(8, 8), p_obs_only=0.0,
        design_mix={design: 1.0},
    )  # fmt: skip
    x, _ = sampler.sample(3, 64)
    targets = x[:, 5:, :, 1].bool()  # (B, 8, 6)
    assert bool((targets.sum(-1) == 1).all())  # one target per interventional row
    distinct = torch.tensor([len(t.nonzero()[:, 1].unique()) for t in targets])
    if design == "repeated":
        assert bool((distinct == 1).all())
    elif design == "few":
        assert bool((distinct <= 3).all()) and int(distinct.max()) == 3
    else:  # 8 rows over 6 nodes: one node only in a 6^-7 fraction of datasets
        assert bool((distinct > 1).all())


def test_default_mix_keeps_the_random_design_and_a_mix_mixes():
    base = dict(d_range=(5, 5), n_obs_range=(4, 4), n_int_range=(6, 6), p_obs_only=0.0)
    x_default, g_default = LinearDatasetSampler(**base).sample(7, 128)
    x_random, g_random = LinearDatasetSampler(**base, design_mix={"random": 1.0}).sample(7, 128)
    assert torch.equal(x_default, x_random) and torch.equal(g_default, g_random)
    assert bool((x_default[:, 4:, :, 1].sum(-1) > 1).any())  # random rows hit several nodes
    mixed, _ = LinearDatasetSampler(**base, design_mix={"random": 1, "single": 1}).sample(7, 128)
    one_per_row = (mixed[:, 4:, :, 1].sum(-1) == 1).all(-1)
    assert 32 < int(one_per_row.sum()) < 110  # about half the datasets single-target


def test_teacher_targets_are_the_exact_posterior_of_each_dataset():
    sampler = LinearDatasetSampler(**TINY_DATA, degrees=(1.0, 2.0))
    x, graph, degree = sampler.sample(5, 12, d=5, with_degree=True)
    assert set(degree.tolist()) == {1.0, 2.0}
    teacher = TeacherTargets("exact-linear-scm", weight=1.0, max_d=8)
    targets = teacher(x, graph, degree)
    for value in (1.0, 2.0):
        index = degree == value
        exact = ExactLinearGaussianPosterior(local_score="linear-scm", graph_degree=value)
        torch.testing.assert_close(targets[index], exact.edge_probs(x[index]))
    mixed = TeacherTargets("exact-linear-scm", weight=0.25, max_d=8)(x, graph, degree)
    torch.testing.assert_close(mixed, 0.25 * targets + 0.75 * graph)
    assert torch.equal(TeacherTargets(max_d=4)(x, graph, degree), graph)  # d = 5 > max_d
    with pytest.raises(ValueError, match="teacher kind"):
        TeacherTargets("exact-everything")


def test_teacher_run_learns_the_teacher_and_rejects_count_data(tmp_path):
    config = TrainConfig(
        out_dir=str(tmp_path / "run"), steps=60, batch_size=16, lr=1e-2, warmup_steps=5,
        eval_every=60, eval_datasets=16, model=TINY_AVICI, data=TINY_DATA, eval_data=TINY_EVAL,
        targets="exact-linear-scm", teacher_max_d=5, snapshots=True,
    )  # fmt: skip
    trainer = Trainer(config)
    x, graph, degree = trainer.sampler.sample((99, 1 << 29), 32, d=5, with_degree=True)
    soft = trainer.teacher(x, graph, degree)

    def teacher_loss() -> float:
        with torch.no_grad():
            return float(offdiagonal_bce(trainer.model(x), soft))

    before = teacher_loss()
    trainer.run(progress=False)
    assert teacher_loss() < before - 0.05
    assert (tmp_path / "run" / "snapshots" / "step-000060.pt").is_file()
    with pytest.raises(ValueError, match="no exact posterior"):
        Trainer(TrainConfig(**{**config.__dict__, "data": {}}), SergioDatasetSampler)
    with pytest.raises(ValueError, match="targets must be one of"):
        Trainer(TrainConfig(**{**config.__dict__, "targets": "oracle"}))


def test_init_starts_from_the_given_weights_and_checks_the_architecture(tmp_path):
    source = AVICIModel(**TINY_AVICI).save(tmp_path / "w.pt")
    base = dict(out_dir=str(tmp_path / "r"), eval_datasets=4, data=TINY_DATA, eval_data=TINY_EVAL)
    trainer = Trainer(TrainConfig(**base, model=TINY_AVICI, init=str(source)))
    loaded = AVICIModel.load(source)
    for key, value in loaded.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[key], value)
    with pytest.raises(ValueError, match="architecture"):
        Trainer(TrainConfig(**base, model={**TINY_AVICI, "dim": 16}, init=str(source)))
    with pytest.raises(ValueError, match="no weights file"):
        Trainer(TrainConfig(**base, model=TINY_AVICI, init=str(tmp_path / "missing.pt")))


def test_cli_takes_the_teacher_and_design_options(tmp_path, capsys):
    out = tmp_path / "cli"
    main(
        f"--out {out} --steps 4 --batch-size 4 --warmup 2 --dim 8 --layers 1 --heads 2 "
        "--key-size 4 --d 4:4 --n-obs 6:6 --n-int 2:2 --eval-every 2 --eval-datasets 4 "
        "--design-mix random:1,repeated:1 --targets exact-bge --teacher-weight 0.5 "
        "--teacher-max-d 6 --snapshots --no-progress".split()
    )
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert config["targets"] == "exact-bge" and config["teacher_weight"] == 0.5
    assert config["data"]["design_mix"] == {"random": 1.0, "repeated": 1.0}
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "step-000002.pt",
        "step-000004.pt",
    ]


def test_repeated_target_agent_keeps_its_target_within_an_episode():
    assert BASELINES["random-repeated"] is RepeatedTargetAgent
    agent = RepeatedTargetAgent(seed=0)
    obs = {"history": np.zeros((50, 3, 7, 2), np.float32), "mask": np.ones((50, 3), np.float32)}
    first, state = agent.predict(obs, episode_start=np.ones(50, bool))
    again, state2 = agent.predict(obs, state=state, episode_start=np.zeros(50, bool))
    target = first[:, :7] > 0
    assert bool((target.sum(1) == 1).all()) and np.array_equal(target, again[:, :7] > 0)
    fresh, _ = agent.predict(obs, state=state2, episode_start=np.ones(50, bool))
    assert not np.array_equal(target, fresh[:, :7] > 0)  # a new episode draws a new target


def test_discrimination_on_a_tiny_setting_ranks_like_the_exact_posterior():
    setting = discrimination_setting("caasl/LinearGaussian-v0", {"d": 6, "budget": 4})
    designs = roll_out_designs(setting, 20, seed=1)
    returns = {
        name: score_designs(designs, name) for name in ("exact-linear-scm", "constant-prior")
    }
    # Identical initial data for every designer: the observational design gains nothing from a
    # prior that ignores the data, and every design scores 0 under it.
    assert all(np.allclose(v, 0.0) for v in returns["constant-prior"].values())
    assert ranks_like_exact(returns["exact-linear-scm"])
    assert not ranks_like_exact(returns["constant-prior"])
    rows = discrimination_table(returns)
    assert len(rows) == 10 and "| uncertainty |" in to_markdown(rows)
    same = roll_out_designs(setting, 20, seed=1, designers=("random",))
    assert np.array_equal(same.history["random"], designs.history["random"])  # reproducible


def test_small_linear_settings_are_scored_with_the_exact_posterior():
    from caasl_agent.bench.runner import benchmark, resolve_model, run_setting, scorer_for
    from caasl_agent.bench.suites import get_suite

    linear, tiny = get_suite("linear"), get_suite("tiny")
    assert scorer_for("auto", linear.setting("d12")) == "exact-linear-scm"
    assert scorer_for("auto", linear.setting("d20")) == "mcmc-linear-scm"  # 14 < d <= 30
    assert scorer_for("reward", linear.setting("d12")) is None
    assert scorer_for({"d12": "constant-prior"}, linear.setting("d12")) == "constant-prior"
    setting, seeds = tiny.setting("d4"), tiny.episode_seeds("d4", 3)
    scored = run_setting("random", setting, seeds, True, scorer="exact-linear-scm")
    plain = run_setting("random", setting, seeds, True)
    # the same designs and rewards (the env's partial-correlation model), other metrics
    assert np.array_equal(scored["history"], plain["history"])
    assert np.array_equal(scored["metrics"]["return"], plain["metrics"]["return"])
    exact = resolve_model(setting, "exact-linear-scm")
    final = exact.edge_probs(torch.as_tensor(scored["history"]))
    np.testing.assert_allclose(scored["probs"], final.numpy(), atol=1e-6)
    assert not np.allclose(scored["probs"], plain["probs"])
    results = benchmark(["random"], suite="tiny", episodes=3, settings=["d4"], progress=False)
    assert results.meta["settings"][0]["scorer"] == "exact-linear-scm"
    assert "metrics (all but return) by scorer exact-linear-scm" in results.to_markdown()
    with pytest.raises(ValueError, match="unknown reward model 'no-such-model'"):
        benchmark(["random"], suite="tiny", episodes=3, scorer="no-such-model", progress=False)


def test_linear_environments_default_to_avici_linear_v1_and_v0_stays_loadable():
    import gymnasium as gym

    from caasl_agent.train import AUTO_REWARD_MODELS
    from caasl_envs.reward import WEIGHTS_DIR, load_reward_model

    env = gym.make("caasl/LinearGaussian-v0", d=4, budget=2)
    model = env.unwrapped.core.reward_model
    shipped = load_reward_model("avici-linear-v1")
    assert isinstance(model, AVICIModel) and AUTO_REWARD_MODELS[0] == "avici-linear-v1"
    for key, value in shipped.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    old = load_reward_model("avici-linear-v0")
    assert not torch.equal(
        old.state_dict()["embedding.weight"], shipped.state_dict()["embedding.weight"]
    )
    card = (WEIGHTS_DIR / "avici-linear-v1.md").read_text()
    assert "--targets exact-linear-scm" in card and "step-002000" in card
