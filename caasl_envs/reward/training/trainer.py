"""The reward-model trainer: its configuration, loss, schedule, evaluation and checkpoints.

:class:`Trainer` trains an :class:`~caasl_envs.reward.avici.AVICIModel` (or a knockout variant,
:func:`~caasl_envs.reward.knockout.build_avici`) on batches of a dataset sampler
(:mod:`~caasl_envs.reward.training.data`) with AdamW, a linear warm-up then cosine schedule and
gradient clipping. The loss is the binary cross-entropy over off-diagonal entries against the
graph's labels or a teacher's soft targets; optionally AVICI's acyclicity penalty (spectral
radius of ``P`` by power iteration) and its dual weight. ``init`` fine-tunes shipped weights.
Every run is a :class:`TrainConfig` (saved in every checkpoint); the data of step ``t`` depends
only on ``(seed, t)``, so a run resumed from a checkpoint continues exactly as the
uninterrupted run would. Data-parallel on several processes through
:mod:`~caasl_envs.reward.training.distributed`.

The fields that are command-line options declare them (:func:`~caasl_envs.reward.training.options.option`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from caasl_envs import metrics
from caasl_envs.reward.avici import AVICIModel
from caasl_envs.reward.knockout import build_avici, load_avici, load_avici_part
from caasl_envs.reward.training.data import (
    CAASL_HELDOUT,
    TARGETS,
    DatasetSampler,
    LinearDatasetSampler,
    TeacherTargets,
    heldout_set,
)
from caasl_envs.reward.training.distributed import Distributed
from caasl_envs.reward.training.options import option

__all__ = [
    "ModelConfig",
    "TrainConfig",
    "Trainer",
    "evaluate",
    "offdiagonal_bce",
    "spectral_radius",
]


@dataclass
class ModelConfig:
    """The AVICI architecture a command line builds (``TrainConfig.model`` holds it as a dict)."""

    dim: int = field(default=64, metadata=option(help="model width"))
    layers: int = field(default=2, metadata=option(help="(variable, sample) block pairs"))
    num_heads: int = field(default=4, metadata=option("--heads", help="attention heads"))
    key_size: int = field(default=16, metadata=option(help="per-head key size"))
    dropout: float = field(default=0.0, metadata=option(help="dropout rate"))


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    ``targets`` is one of :data:`TARGETS`; for the exact ones, ``teacher_weight`` and
    ``teacher_max_d`` configure :class:`TeacherTargets`. ``snapshots`` also writes the weights at
    every evaluation to ``out_dir/snapshots/step-NNNNNN.pt`` (for choosing a checkpoint later by a
    criterion the training loop does not compute, e.g. design discrimination). ``init`` starts
    from the weights of an :meth:`AVICIModel.save` file of the same architecture (fine-tuning).
    """

    out_dir: str = field(
        default="runs/avici", metadata=option("--out", help="run folder (checkpoint.pt, tb/)")
    )
    seed: int = field(default=0, metadata=option())
    steps: int = 20_000
    batch_size: int = field(default=32, metadata=option())
    lr: float = field(default=1e-3, metadata=option())
    weight_decay: float = field(default=1e-2, metadata=option())
    warmup_steps: int = field(default=500, metadata=option("--warmup"))
    grad_clip: float = field(default=1.0, metadata=option())
    acyclicity_weight: float = field(
        default=0.0,
        metadata=option("--acyclicity", help="weight of the acyclicity penalty (0: off)"),
    )
    acyclicity_dual_lr: float = 1e-4
    acyclicity_burnin: int = 2000
    eval_every: int = field(default=500, metadata=option())
    eval_datasets: int = field(default=256, metadata=option())
    checkpoint_every_s: float = field(
        default=300.0, metadata=option("--checkpoint-every", help="seconds")
    )
    time_limit_s: float | None = field(
        default=None,
        metadata=option(
            "--time-limit", parse=float, help="stop (and checkpoint) after this many seconds"
        ),
    )
    device: str = field(default="auto", metadata=option())
    threads: int | None = field(default=None, metadata=option(parse=int))
    targets: str = field(
        default="graph",
        metadata=option(
            choices=TARGETS,
            help="train on the graph's labels or on an exact posterior (linear data, d <= "
            "--teacher-max-d)",
        ),
    )
    teacher_weight: float = field(
        default=1.0,
        metadata=option(
            help="weight of the exact posterior in the targets (the rest: graph labels)"
        ),
    )
    teacher_max_d: int = field(default=12, metadata=option(help="largest d with a teacher"))
    snapshots: bool = field(
        default=False, metadata=option(help="keep the weights of every evaluation")
    )
    init: str | None = field(
        default=None,
        metadata=option(
            help="start from these weights (.pt of the same architecture, or of its AVICI part)"
        ),
    )
    model: dict = field(default_factory=lambda: dataclasses.asdict(ModelConfig()))
    data: dict = field(default_factory=dict)
    eval_data: dict = field(default_factory=lambda: dict(CAASL_HELDOUT))


def spectral_radius(probs: torch.Tensor, iters: int = 10) -> torch.Tensor:
    """Power-iteration estimate of the spectral radius of each ``(B, d, d)`` matrix, ``(B,)``.

    Zero for a DAG's (nilpotent) adjacency; AVICI's acyclicity penalty.
    """
    u = torch.ones(probs.shape[:-1], dtype=probs.dtype, device=probs.device)
    v = torch.ones_like(u)
    for _ in range(iters):
        v = F.normalize(torch.einsum("bij,bj->bi", probs, v), dim=-1)
        u = F.normalize(torch.einsum("bij,bi->bj", probs, u), dim=-1)
    pv = torch.einsum("bij,bj->bi", probs, v)
    return (u * pv).sum(-1) / (u * v).sum(-1).clamp(min=1e-8)


def offdiagonal_bce(logits: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the off-diagonal entries of ``(B, d, d)`` logits against
    ``(B, d, d)`` targets in ``[0, 1]`` (graph labels or soft teacher targets)."""
    off = ~torch.eye(graph.shape[-1], dtype=torch.bool, device=graph.device)
    return F.binary_cross_entropy_with_logits(logits[:, off], graph[:, off])


@torch.no_grad()
def evaluate(
    model: AVICIModel, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> dict[str, float]:
    """Mean AUROC, AUPRC, E-SHD, expected correct entries (and more) over held-out batches."""
    was_training = model.training
    model.eval()
    results: dict[str, list[torch.Tensor]] = {}
    for x, graph in batches:
        probs = model.edge_probs(x.to(device)).cpu()
        for key, value in metrics.all_metrics(probs, graph).items():
            results.setdefault(key, []).append(value)
    model.train(was_training)
    return {key: float(torch.cat(values).nanmean()) for key, values in results.items()}


def _lr_factor(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Owns model, optimiser, schedule and the acyclicity dual; ``run()`` trains to ``config.steps``.

    :param sampler_class: the dataset sampler, built from ``config.data`` (training) and
        ``config.eval_data`` (held-out set); e.g. ``SergioDatasetSampler`` for count data.
    """

    def __init__(
        self, config: TrainConfig, sampler_class: type[DatasetSampler] = LinearDatasetSampler
    ):
        self.config = config
        self.dist = Distributed.from_env()  # torchrun's world; a world of one otherwise
        self.device = self.dist.setup(config.device)
        torch.manual_seed(config.seed)
        self.sampler = sampler_class(**_tuplify(config.data))
        self.teacher = self._teacher(config, self.sampler)
        self.model = build_avici(config.model).to(self.device)
        if config.init is not None:
            self._init_from(config.init)
        self.ddp = self.dist.wrap(self.model)  # averages gradients over the ranks
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: _lr_factor(s, config)
        )
        self.step = 0
        self.dual = 0.0
        self.elapsed_s = 0.0
        self.datasets_seen = 0
        self.history: list[dict] = []
        self.out = Path(config.out_dir)
        self.heldout = heldout_set(
            sampler_class(**_tuplify(config.eval_data)), config.eval_datasets, config.seed
        )

    @staticmethod
    def _teacher(config: TrainConfig, sampler: DatasetSampler) -> TeacherTargets | None:
        if config.targets not in TARGETS:
            raise ValueError(f"targets must be one of {TARGETS}, got {config.targets!r}")
        if config.targets == "graph":
            return None
        if not isinstance(sampler, LinearDatasetSampler):
            raise ValueError(
                f"targets={config.targets!r} needs linear-Gaussian data (LinearDatasetSampler); "
                f"{type(sampler).__name__} has no exact posterior: use targets='graph'"
            )
        return TeacherTargets(config.targets, config.teacher_weight, config.teacher_max_d)

    def _init_from(self, path: str) -> None:
        if not Path(path).is_file():
            raise ValueError(f"init: no weights file {path!r}")
        load_avici_part(self.model, load_avici(path), path)

    # checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "config": dataclasses.asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "dual": self.dual,
            "elapsed_s": self.elapsed_s,
            "datasets_seen": self.datasets_seen,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
        }

    def save(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "checkpoint.pt"
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        tmp.replace(path)  # atomic: a crash mid-write keeps the previous checkpoint
        return path

    def load(self, path: str | Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.dual = int(state["step"]), float(state["dual"])
        self.elapsed_s, self.datasets_seen = float(state["elapsed_s"]), int(state["datasets_seen"])
        self.history = list(state["history"])
        torch.set_rng_state(state["torch_rng"])

    # training ----------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        config = self.config
        seed = self.dist.batch_seed(config.seed, self.step)
        if self.teacher is None:
            x, graph = self.sampler.sample(seed, config.batch_size)
            labels = graph
        else:
            x, graph, degree = self.sampler.sample(seed, config.batch_size, with_degree=True)
            labels = self.teacher(x, graph, degree)
        x, graph, labels = x.to(self.device), graph.to(self.device), labels.to(self.device)
        logits = self.ddp(x)
        loss = offdiagonal_bce(logits, labels)
        out = {"bce": self.dist.mean(loss.item())}
        if config.acyclicity_weight > 0:
            d = graph.shape[-1]
            probs = torch.sigmoid(logits).masked_fill(
                torch.eye(d, dtype=torch.bool, device=self.device), 0.0
            )
            cyclic = spectral_radius(probs).mean()
            active = self.step >= config.acyclicity_burnin
            loss = loss + (config.acyclicity_weight * self.dual if active else 0.0) * cyclic
            out["acyclicity"] = self.dist.mean(cyclic.item())
            if active:
                self.dual += config.acyclicity_dual_lr * out["acyclicity"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        out["grad_norm"] = float(
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        )
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.datasets_seen += config.batch_size * self.dist.world_size
        return out

    def run(self, progress: bool = True) -> dict[str, float]:
        """Train until ``config.steps`` (or ``time_limit_s``); evaluate, log and checkpoint on the way
        (files and output from rank 0 only)."""
        config = self.config
        if config.threads:
            torch.set_num_threads(config.threads)
        main = self.dist.is_main
        writer = self.dist.summary_writer(self.out / "tb")
        bar = tqdm(
            total=config.steps, initial=self.step, disable=not (progress and main), desc="avici"
        )
        start, last_save = time.perf_counter(), time.perf_counter()
        elapsed0 = self.elapsed_s
        result = self.history[-1] if self.history else {}
        while self.step < config.steps:
            logs = self.train_step()
            self.elapsed_s = elapsed0 + time.perf_counter() - start
            rate = self.datasets_seen / max(self.elapsed_s, 1e-9)
            bar.update(1)
            bar.set_postfix(bce=f"{logs['bce']:.3f}", ds_per_s=f"{rate:.1f}")
            if self.step % 50 == 0:
                for key, value in logs.items():
                    writer.add_scalar(f"train/{key}", value, self.step)
                writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
                writer.add_scalar("train/datasets_per_s", rate, self.step)
            done = self.step >= config.steps
            out_of_time = config.time_limit_s is not None and self.dist.any(
                time.perf_counter() - start >= config.time_limit_s
            )
            if self.step % config.eval_every == 0 or done or out_of_time:
                result = {
                    "step": self.step,
                    "elapsed_s": self.elapsed_s,
                    **evaluate(self.model, self.heldout, self.device),
                }
                self.history.append(result)
                if config.snapshots and main:
                    self.model.save(self.out / "snapshots" / f"step-{self.step:06d}.pt")
                for key, value in result.items():
                    writer.add_scalar(f"heldout/{key}", value, self.step)
                if main:
                    bar.write(json.dumps({k: round(v, 4) for k, v in result.items()}))
            due = time.perf_counter() - last_save >= config.checkpoint_every_s
            if main and (done or out_of_time or due):
                self.save()
                last_save = time.perf_counter()
            if out_of_time:
                break
        bar.close()
        writer.close()
        return result


def _tuplify(data: dict) -> dict:
    # JSON and checkpoints store tuples as lists
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
