"""Data-parallel reward-model training (torch.distributed, gloo) on two CPU processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from caasl_envs.reward.training.distributed import Distributed
from caasl_envs.reward.training.trainer import (
    TrainConfig,
    Trainer,
    offdiagonal_bce,
    spectral_radius,
)

WORLD = 2
STEPS = 4


def small_config(out_dir: str) -> TrainConfig:
    return TrainConfig(
        out_dir=str(out_dir),
        seed=3,
        steps=STEPS,
        batch_size=4,
        warmup_steps=1,
        acyclicity_weight=1.0,
        acyclicity_burnin=0,
        acyclicity_dual_lr=0.1,
        eval_every=2,
        eval_datasets=4,
        device="cpu",
        model=dict(dim=16, layers=1, num_heads=2, key_size=8, dropout=0.0),
        data=dict(d_range=(4, 6), n_obs_range=(8, 8), n_int_range=(2, 4)),
        eval_data=dict(d_range=(4, 4), n_obs_range=(8, 8), n_int_range=(2, 2)),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def rank_main(rank: int, port: int, tmp: str) -> None:
    """One rank: 4 steps straight; 2 steps, checkpoint, resume, 2 steps; a run() that writes."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    config = small_config(f"{tmp}/resume")
    straight = Trainer(config)
    losses = [straight.train_step() for _ in range(STEPS)]
    first = Trainer(config)
    for _ in range(STEPS // 2):
        first.train_step()
    if first.dist.is_main:
        first.save()
    dist.barrier()
    resumed = Trainer(config)
    resumed.load(f"{tmp}/resume/checkpoint.pt")
    for _ in range(STEPS - STEPS // 2):
        resumed.train_step()
    writer = Trainer(small_config(f"{tmp}/run"))
    writer.run(progress=False)
    torch.save(
        {
            "straight": params(straight),
            "resumed": params(resumed),
            "logs": losses,
            "dual": straight.dual,
            "datasets_seen": straight.datasets_seen,
        },
        f"{tmp}/rank{rank}.pt",
    )
    straight.dist.close()


def reference(config: TrainConfig) -> tuple[dict[str, torch.Tensor], list[float], float]:
    """One process, every step on the union of the ranks' batches (each rank's mean loss
    weighted equally), with the acyclicity dual updated by the mean spectral radius."""
    trainer = Trainer(config)
    assert not trainer.dist.enabled
    losses = []
    for step in range(STEPS):
        bce, cyclic = [], []
        for rank in range(WORLD):
            x, graph = trainer.sampler.sample((config.seed, step, rank), config.batch_size)
            logits = trainer.model(x)
            eye = torch.eye(graph.shape[-1], dtype=torch.bool)
            bce.append(offdiagonal_bce(logits, graph))
            cyclic.append(spectral_radius(torch.sigmoid(logits).masked_fill(eye, 0.0)).mean())
        loss = sum(b + config.acyclicity_weight * trainer.dual * c for b, c in zip(bce, cyclic))
        trainer.optimizer.zero_grad()
        (loss / WORLD).backward()
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), config.grad_clip)
        trainer.optimizer.step()
        trainer.scheduler.step()
        trainer.dual += config.acyclicity_dual_lr * sum(c.item() for c in cyclic) / WORLD
        losses.append(sum(b.item() for b in bce) / WORLD)
    return params(trainer), losses, trainer.dual


def test_two_cpu_ranks_stay_identical_and_match_one_process_on_the_union(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    mp.spawn(rank_main, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name, value in ranks[0]["straight"].items():
        assert torch.equal(value, ranks[1]["straight"][name]), name  # replicas never diverge
        assert torch.equal(value, ranks[0]["resumed"][name]), name  # resume = uninterrupted
    assert ranks[0]["logs"] == ranks[1]["logs"] and ranks[0]["dual"] == ranks[1]["dual"]
    assert ranks[0]["datasets_seen"] == STEPS * WORLD * 4
    expected, losses, dual = reference(small_config(str(tmp_path / "ref")))
    # Same data and updates; only the order of floating-point sums differs (all-reduce vs autograd).
    for log, loss in zip(ranks[0]["logs"], losses):
        assert abs(log["bce"] - loss) < 1e-6
    assert abs(ranks[0]["dual"] - dual) < 1e-6
    # An Adam step moves a weight by up to lr = 1e-3, and Adam divides by sqrt(v): where a gradient
    # is tiny, summation-order noise moves the update by a sizeable part of lr (seen: 1.04e-5 on one
    # of 16 entries). The runs must agree to a tenth of one step; a rank training on its own batch
    # only is ~1e-3 off.
    for name, value in expected.items():
        torch.testing.assert_close(ranks[0]["straight"][name], value, rtol=0, atol=1e-4)
    # Only rank 0 writes: one checkpoint, one TensorBoard event file.
    run = tmp_path / "run"
    assert (run / "checkpoint.pt").is_file()
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1


def test_a_world_of_one_keeps_the_single_process_seeds(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    one = Distributed.from_env()
    assert not one.enabled and one.batch_seed(3, 7) == (3, 7)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert Distributed.from_env().batch_seed(3, 7) == (3, 7, 2)


def test_torchrun_launches_the_trainer_cli(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", str(WORLD), "-m", "caasl_envs.reward.training.train"]
    command += ["--out", str(out), "--steps", "2", "--batch-size", "2", "--warmup", "1"]
    command += ["--dim", "16", "--layers", "1", "--heads", "2", "--key-size", "8"]
    command += ["--variables", "4:5", "--n-obs", "8", "--n-int", "2", "--eval-every", "2"]
    command += ["--eval-datasets", "2", "--device", "cpu", "--threads", "1", "--no-progress"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    # rank 0 alone prints: its held-out evaluation at step 2 and the final result
    assert [p["step"] for p in printed] == [2, 2]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and state["datasets_seen"] == 2 * WORLD * 2
