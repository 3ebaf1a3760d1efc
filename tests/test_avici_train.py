"""Reward-model training pipeline: data sampler, loss pieces, exact resume, export/load."""

from __future__ import annotations

import pytest
import torch
from agent_toy_env import TINY_AVICI

from caasl_envs.graphs import is_dag
from caasl_envs.reward.avici import AVICIModel
from caasl_envs.reward.training.data import LinearDatasetSampler
from caasl_envs.reward.training.train import main
from caasl_envs.reward.training.trainer import (
    TrainConfig,
    Trainer,
    offdiagonal_bce,
    spectral_radius,
)

TINY_DATA = dict(d_range=(3, 5), n_obs_range=(6, 8), n_int_range=(2, 3))
TINY_EVAL = dict(d_range=(4, 4), n_obs_range=(6, 6), n_int_range=(2, 2), p_obs_only=0.0)


def test_sampler_shapes_flags_and_determinism():
    sampler = LinearDatasetSampler(
        d_range=(4, 6), n_obs_range=(10, 12), n_int_range=(3, 5), p_obs_only=0.5
    )
    x, graph = sampler.sample((1, 2), 40)
    b, n, d, _ = x.shape
    assert b == 40 and 4 <= d <= 6 and 13 <= n <= 17 and graph.shape == (40, d, d)
    assert bool(is_dag(graph).all())
    flags = x[..., 1]
    assert set(flags.unique().tolist()) <= {0.0, 1.0}
    assert flags[:, :10].sum() == 0  # the first n_obs >= 10 rows are observational
    with_flags = flags.sum((1, 2)) > 0
    assert 5 < int(with_flags.sum()) < 35  # about half the datasets are observational only
    # a do-intervened entry holds its value in [-1, 1]
    assert x[..., 0][flags > 0].abs().max() <= 1.0
    x2, graph2 = sampler.sample((1, 2), 40)
    assert torch.equal(x, x2) and torch.equal(graph, graph2)
    x3, _ = sampler.sample((1, 3), 40, d=d)
    assert not torch.equal(x3[:, :10], x[:, :10])


def test_sampler_rejects_bad_ranges():
    with pytest.raises(ValueError, match="d_range"):
        LinearDatasetSampler(d_range=(6, 4))
    with pytest.raises(ValueError, match="p_obs_only"):
        LinearDatasetSampler(p_obs_only=1.5)


def test_loss_pieces():
    graph = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    logits = torch.tensor([[[100.0, 20.0], [-20.0, 100.0]]])  # the diagonal is ignored
    assert float(offdiagonal_bce(logits, graph)) < 1e-6
    dag = torch.tensor([[[0.0, 0.9, 0.9], [0.0, 0.0, 0.9], [0.0, 0.0, 0.0]]])
    cycle = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    assert float(spectral_radius(dag)) < 1e-3
    assert abs(float(spectral_radius(cycle)) - 1.0) < 1e-4


def _config(tmp_path, steps=6, **overrides):
    return TrainConfig(
        out_dir=str(tmp_path),
        steps=steps,
        batch_size=4,
        warmup_steps=2,
        eval_every=3,
        eval_datasets=8,
        device="cpu",
        model=TINY_AVICI,
        data=TINY_DATA,
        eval_data=TINY_EVAL,
        **overrides,
    )


def test_resume_is_exact(tmp_path):
    acyclic = dict(acyclicity_weight=1.0, acyclicity_burnin=2)
    full = Trainer(_config(tmp_path / "full", **acyclic))
    full.run(progress=False)
    first = Trainer(_config(tmp_path / "part", time_limit_s=0.0, **acyclic))
    first.run(progress=False)  # out of time after one step: checkpoints and stops
    assert first.step == 1
    resumed = Trainer(_config(tmp_path / "part", **acyclic))
    resumed.load(tmp_path / "part" / "checkpoint.pt")
    resumed.run(progress=False)
    assert resumed.step == full.step == 6 and resumed.dual == pytest.approx(full.dual, abs=0)
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, atol=0, rtol=0)
    assert {"auroc", "auprc", "eshd", "expected_correct_entries"} <= set(full.history[-1])


def test_cli_trains_exports_and_loads(tmp_path):
    weights = tmp_path / "w.pt"
    main(
        [
            "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2", "--dim", "8", "--layers", "1",
            "--heads", "2", "--key-size", "4", "--d", "3:4", "--n-obs", "5:6", "--n-int", "1:2",
            "--eval-datasets", "4", "--device", "auto", "--no-progress", "--export", str(weights),
        ]
    )  # fmt: skip
    model = AVICIModel.load(weights)
    assert not model.training
    probs = model.edge_probs(torch.randn(2, 7, 5, 2).clamp(0, 1).round())  # flags 0/1
    assert probs.shape == (2, 5, 5)
    run = str(tmp_path / "run")
    main(["--out", run, "--resume", "--no-progress"])  # already done: no more steps
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 2
    main(["--out", run, "--resume", "--steps", "3", "--no-progress"])  # extend the schedule
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (
        state["step"] == 3
        and state["config"]["steps"] == 3
        and state["config"]["model"]["dim"] == 8
    )
    with pytest.raises(SystemExit, match="--resume"):  # a fresh run must not overwrite it
        main(["--out", run, "--steps", "2", "--no-progress"])
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 3


def test_sergio_cli_takes_low_high_ranges_and_resumes(tmp_path):
    from caasl_envs.reward.training.train_sergio import main as sergio_main

    run = str(tmp_path / "run")
    tiny = ["--batch-size", "1", "--eval-datasets", "1", "--no-progress", "--device", "cpu"]
    sergio_main(
        ["--out", run, "--steps", "1", "--n-obs", "4:5", "--n-int", "1", "--target-prob", "0.5",
         "--design-mix", "single:1,few:3", *tiny]
    )  # fmt: skip
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    data = state["config"]["data"]
    assert state["step"] == 1 and tuple(data["n_obs_range"]) == (4, 5)
    assert data["design_mix"] == {"single": 1.0, "few": 3.0}
    assert tuple(data["n_int_range"]) == (1, 1) and tuple(data["target_prob_range"]) == (0.5, 0.5)
    sergio_main(["--out", run, "--resume", "--steps", "2", *tiny])  # extend the schedule
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and tuple(state["config"]["data"]["n_obs_range"]) == (4, 5)
    with pytest.raises(SystemExit, match="--resume"):  # a fresh run must not overwrite it
        sergio_main(["--out", run, "--steps", "1", *tiny])


def test_sergio_sampler_validates_its_ranges_like_the_linear_one():
    from caasl_envs.reward.training.train_sergio import SergioDatasetSampler

    with pytest.raises(ValueError, match="n_obs >= 1"):
        SergioDatasetSampler(n_obs_range=(0, 20))
