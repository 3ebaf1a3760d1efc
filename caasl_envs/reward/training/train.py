"""Train an :class:`AVICIModel` reward model on datasets simulated on the fly.

Every minibatch is a fresh batch of linear SCMs from :class:`~caasl_envs.scm.LinearSCMPrior`
(the environments' prior), with one number of variables ``d`` and one number of rows per
minibatch (so no padding), and graph prior, degree and intervention mix drawn per dataset:

* ``n_obs`` observational rows, then ``n_int`` interventional rows (0 for a fraction
  ``p_obs_only`` of the datasets) with values ``U[-1, 1] * value_scale``; their targets follow a
  per-dataset *design* drawn from ``design_mix`` (:data:`DESIGNS`): by default every row has its
  own random do-targets (every node with a per-dataset probability), as a random agent in the
  environments produces them; single-target, repeated-target and few-target designs cover what
  targeted agents produce. Rows are not shuffled (the model is permutation invariant).

The loss is the binary cross-entropy over off-diagonal entries against the graph's labels or,
with ``targets="exact-bge"``/``"exact-linear-scm"``, against :class:`TeacherTargets`: the exact
edge posterior of each dataset with ``d <= teacher_max_d`` (computed on the fly, batched per graph
degree; graph labels above), optionally mixed with the labels. A model trained on the posterior
learns what a *reward* needs — how much each dataset says about each edge — rather than the
graph itself. Optionally AVICI's acyclicity penalty (spectral radius of ``P`` by power
iteration) and its dual weight. ``init`` fine-tunes shipped weights. The data
of step ``t`` depends only on ``(seed, t)``, so a run resumed from a checkpoint continues
exactly as the uninterrupted run would.

Command line: ``caasl-train-reward --help``; on several processes or GPUs (data-parallel, one
model replica per process, rank-disjoint datasets): ``torchrun --nproc_per_node N -m
caasl_envs.reward.training.train ...`` (:mod:`caasl_envs.reward.training.distributed`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from caasl_envs import metrics
from caasl_envs.reward.avici import AVICIModel
from caasl_envs.reward.exact import MAX_EXACT_D, ExactLinearGaussianPosterior
from caasl_envs.reward.knockout import build_avici, load_avici, load_avici_part
from caasl_envs.reward.training.distributed import Distributed
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import LinearSCMPrior

DESIGNS = ("random", "single", "repeated", "few")
"""Designs of the interventional rows of a training dataset: ``"random"`` (every node a target
with a per-dataset probability, as a random agent does), ``"single"`` (one uniformly drawn target
per row), ``"repeated"`` (every row targets the same node) and ``"few"`` (every row targets one
node of a per-dataset set of 1-3 nodes)."""


def check_design_mix(mix: dict[str, float]) -> dict[str, float]:
    """``mix`` with float weights, or a ValueError naming the unknown design or bad weight."""
    if not isinstance(mix, dict) or not mix:
        raise ValueError(f"design_mix must be a non-empty dict of design -> weight, got {mix!r}")
    unknown = sorted(set(mix) - set(DESIGNS))
    if unknown:
        raise ValueError(f"design_mix: unknown design(s) {unknown}; choose from {DESIGNS}")
    weights = {name: float(weight) for name, weight in mix.items()}
    if any(not math.isfinite(w) or w < 0 for w in weights.values()) or not sum(weights.values()):
        raise ValueError(f"design_mix weights must be finite, >= 0 and not all 0, got {mix!r}")
    return weights


def parse_design_mix(text: str) -> dict[str, float]:
    """``"random:0.5,single:0.5"`` -> ``{"random": 0.5, "single": 0.5}`` (checked)."""
    mix = {}
    for item in text.split(","):
        name, sep, weight = item.partition(":")
        try:
            mix[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"design mix item {item!r} is not NAME[:WEIGHT]") from None
    return check_design_mix(mix)


def concentrated_targets(rng: BatchedRNG, design: str, n_int: int, d: int) -> torch.Tensor:
    """``(B, n_int, d)`` bool one-target-per-row targets of the ``"single"``, ``"repeated"`` or
    ``"few"`` design (see :data:`DESIGNS`), one generator of ``rng`` per dataset."""
    batch = len(rng)
    if design == "single":
        node = (rng.uniform(n_int) * d).long().clamp(max=d - 1)
    elif design == "repeated":
        node = (rng.uniform(1) * d).long().clamp(max=d - 1).expand(batch, n_int)
    elif design == "few":
        order = rng.uniform(d).argsort(-1)  # (B, d): a random order of the nodes
        size = (rng.uniform(1) * min(3, d)).long() + 1  # (B, 1): 1-3 nodes
        slot = torch.minimum((rng.uniform(n_int) * size).long(), size - 1)
        node = order.gather(1, slot)
    else:
        raise ValueError(f"no concentrated design {design!r}; choose from {DESIGNS[1:]}")
    return F.one_hot(node, d).bool()


@dataclass
class DatasetSampler:
    """What every simulated-dataset source shares: the mix of sizes, graph priors and targets.

    Subclasses implement ``sample(seed, batch_size) -> (x (B, n, d, 2), graph (B, d, d))``.

    :param d_range: inclusive range of the number of variables (one ``d`` per batch).
    :param n_obs_range: inclusive range of observational rows (one value per batch).
    :param n_int_range: inclusive range of interventional rows (one value per batch).
    :param p_obs_only: fraction of datasets whose interventional rows are replaced by
        observational ones (same ``n``, no flags).
    :param graphs: graph priors to mix (see :data:`caasl_envs.graphs.GRAPH_PRIORS`).
    :param degrees: graph "degree" parameters to mix.
    :param target_prob_range: per dataset, each node of an interventional row is a target with
        a probability drawn from this range (the ``"random"`` design).
    :param design_mix: weights of the designs that produce the interventional rows, drawn per
        dataset (see :data:`DESIGNS`); the default, all ``"random"``, keeps the draws of earlier
        versions.
    """

    d_range: tuple[int, int] = (5, 20)
    n_obs_range: tuple[int, int] = (30, 60)
    n_int_range: tuple[int, int] = (1, 15)
    p_obs_only: float = 0.3
    graphs: tuple[str, ...] = ("erdos_renyi", "scale_free")
    degrees: tuple[float, ...] = (1.0, 2.0, 3.0)
    target_prob_range: tuple[float, float] = (0.05, 0.6)
    design_mix: dict[str, float] = field(default_factory=lambda: {"random": 1.0})

    def __post_init__(self) -> None:
        for name in ("d_range", "n_obs_range", "n_int_range", "target_prob_range"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(low, high)}")
        if self.d_range[0] < 2 or self.n_obs_range[0] < 1 or self.n_int_range[0] < 0:
            raise ValueError("need d >= 2, n_obs >= 1 and n_int >= 0")
        if not 0.0 <= self.p_obs_only <= 1.0:
            raise ValueError(f"p_obs_only must be in [0, 1], got {self.p_obs_only}")
        self.design_mix = check_design_mix(self.design_mix)

    def _sizes(self, master: np.random.Generator, d: int | None = None) -> tuple[int, int, int]:
        """``(d, n_obs, n_int)`` of one batch, drawn from ``master`` in that order."""
        d = int(master.integers(self.d_range[0], self.d_range[1] + 1)) if d is None else d
        n_obs = int(master.integers(self.n_obs_range[0], self.n_obs_range[1] + 1))
        n_int = int(master.integers(self.n_int_range[0], self.n_int_range[1] + 1))
        return d, n_obs, n_int

    def _targets(
        self, master: np.random.Generator, rng: BatchedRNG, n_int: int, d: int
    ) -> torch.Tensor:
        """``(B, n_int, d)`` bool targets of the interventional rows: each dataset's design drawn
        from ``design_mix``, and no targets at all for a fraction ``p_obs_only`` of the datasets."""
        target_prob = rng.uniform(1, low=self.target_prob_range[0], high=self.target_prob_range[1])
        targets = rng.uniform(n_int, d) < target_prob.unsqueeze(-1)
        keep = torch.from_numpy(master.random(len(rng)) >= self.p_obs_only)
        if self.design_mix != {"random": 1.0}:
            names = list(self.design_mix)
            weights = np.array([self.design_mix[k] for k in names])
            design = master.choice(len(names), size=len(rng), p=weights / weights.sum())
            for k, name in enumerate(names):
                if name != "random" and (design == k).any():
                    index = torch.from_numpy(design == k)
                    targets[index] = concentrated_targets(
                        rng.subset(np.flatnonzero(index)), name, n_int, d
                    )
        return targets & keep[:, None, None]


@dataclass
class LinearDatasetSampler(DatasetSampler):
    """Batches of ``(x (B, n, d, 2), graph (B, d, d))`` from linear SCMs, as the environments see
    them; the graph prior and degree are drawn per dataset. Fields of :class:`DatasetSampler`, and:

    :param value_scale: intervention values are ``U[-1, 1] * value_scale``.
    :param noise: noise family of the SCMs.
    :param coeff_mean: mean magnitude of the edge weights.
    :param intervention: ``"do"`` or ``"shift"``.
    """

    value_scale: float = 1.0
    noise: str = "gauss"
    coeff_mean: float = 0.0
    intervention: str = "do"

    def sample(
        self,
        seed: int | tuple[int, ...],
        batch_size: int,
        d: int | None = None,
        with_degree: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """One batch; everything is a function of ``seed``.

        :param d: force the number of variables (default: drawn from ``d_range``).
        :param with_degree: also return each dataset's graph degree parameter ``(B,)`` float64
            (what a teacher posterior's graph prior needs).
        :return: ``x (B, n, d, 2)`` float32 and ``graph (B, d, d)`` float32 (and the degrees).
        """
        master = np.random.default_rng(seed)
        d, n_obs, n_int = self._sizes(master, d)
        kind = master.integers(len(self.graphs), size=batch_size)
        degree = master.integers(len(self.degrees), size=batch_size)
        rng = BatchedRNG(
            [np.random.default_rng(s) for s in master.bit_generator.seed_seq.spawn(batch_size)]
        )
        graph = torch.zeros(batch_size, d, d)
        weights = torch.zeros(batch_size, d, d)
        noise_std = torch.zeros(batch_size, d)
        # one prior per (graph kind, degree) group: a loop over at most len(graphs) * len(degrees)
        for k in range(len(self.graphs)):
            for g in range(len(self.degrees)):
                index = np.flatnonzero((kind == k) & (degree == g))
                if index.size == 0:
                    continue
                prior = LinearSCMPrior(
                    d,
                    self.graphs[k],
                    self.degrees[g],
                    self.noise,
                    self.coeff_mean,
                    False,
                    self.intervention,
                )
                scm = prior.sample(rng.subset(index.tolist()))
                graph[index], weights[index], noise_std[index] = (
                    scm.graph,
                    scm.weights,
                    scm.noise_std,
                )
        scm = dataclasses.replace(
            scm, graph=graph, weights=weights, noise_std=noise_std, bias=torch.zeros_like(noise_std)
        )
        obs = scm.sample(rng, n_obs)
        x = torch.stack([obs, torch.zeros_like(obs)], dim=-1)
        extra = (torch.tensor(self.degrees, dtype=torch.float64)[degree],) if with_degree else ()
        if n_int == 0:
            return x, graph, *extra
        # interventional rows: one SCM copy per row, so every row has its own targets and values
        targets = self._targets(master, rng, n_int, d)
        values = rng.uniform(n_int, d, low=-1.0, high=1.0) * self.value_scale
        rows = dataclasses.replace(
            scm,
            graph=graph.repeat_interleave(n_int, 0),
            weights=weights.repeat_interleave(n_int, 0),
            noise_std=noise_std.repeat_interleave(n_int, 0),
            bias=torch.zeros(batch_size * n_int, d),
        )
        eps = rng.normal(n_int, d).reshape(batch_size * n_int, 1, d)
        sample = rows.sample_from_noise(eps, targets.reshape(-1, d), values.reshape(-1, d))
        interventional = torch.stack(
            [sample.reshape(batch_size, n_int, d), targets.float()], dim=-1
        )
        return torch.cat([x, interventional], dim=1), graph, *extra


TARGETS = ("graph", "exact-bge", "exact-linear-scm")
"""Training targets: the true graph's labels, or the exact edge posterior of the dataset under
the BGe score or the linear environments' own parameter prior (:mod:`caasl_envs.reward.exact`)."""


@dataclass
class TeacherTargets:
    """Soft training targets from an exact posterior: ``weight · p(i -> j | D) + (1 - weight) ·
    graph`` for datasets with ``d <= max_d``, the graph's labels above (no exact posterior there).

    The teacher's Erdős–Rényi graph prior takes each dataset's own degree parameter, so for
    ``"exact-linear-scm"`` on Erdős–Rényi data the targets are the data-generating process's
    exact posterior (up to the in-degree bound of 3); on scale-free data an approximation.

    :param kind: ``"exact-bge"`` or ``"exact-linear-scm"``.
    :param weight: weight of the posterior in the mix, in ``[0, 1]``.
    :param max_d: largest ``d`` given posterior targets (cost grows like ``d 2^d``).
    """

    kind: str = "exact-linear-scm"
    weight: float = 1.0
    max_d: int = 12

    def __post_init__(self) -> None:
        if self.kind not in TARGETS[1:]:
            raise ValueError(f"teacher kind must be one of {TARGETS[1:]}, got {self.kind!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"teacher weight must be in [0, 1], got {self.weight}")
        if not 2 <= self.max_d <= MAX_EXACT_D:
            raise ValueError(f"teacher max_d must be in [2, {MAX_EXACT_D}], got {self.max_d}")
        score = "bge" if self.kind == "exact-bge" else "linear-scm"
        self.posterior = ExactLinearGaussianPosterior(local_score=score)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, graph: torch.Tensor, degree: torch.Tensor) -> torch.Tensor:
        """``x (B, n, d, 2)``, ``graph (B, d, d)``, ``degree (B,)`` -> targets ``(B, d, d)``."""
        if x.shape[2] > self.max_d or self.weight == 0.0:
            return graph
        probs = torch.empty_like(graph)
        # one posterior per graph degree: a loop over the (few) distinct degree parameters
        for value in degree.unique().tolist():
            index = degree == value
            model = self.posterior.for_prior(SimpleNamespace(graph_degree=value))
            probs[index] = model.edge_probs(x[index]).to(graph.dtype)
        return self.weight * probs + (1.0 - self.weight) * graph


CAASL_HELDOUT = dict(
    d_range=(10, 10),
    n_obs_range=(50, 50),
    n_int_range=(10, 10),
    p_obs_only=0.0,
    graphs=("erdos_renyi",),
    degrees=(3.0,),
)
"""The environments' training setting (docs/design.md §3): d=10, ER degree 3, 50 observational + 10 interventional rows."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint).

    ``targets`` is one of :data:`TARGETS`; for the exact ones, ``teacher_weight`` and
    ``teacher_max_d`` configure :class:`TeacherTargets`. ``snapshots`` also writes the weights at
    every evaluation to ``out_dir/snapshots/step-NNNNNN.pt`` (for choosing a checkpoint later by a
    criterion the training loop does not compute, e.g. design discrimination). ``init`` starts
    from the weights of an :meth:`AVICIModel.save` file of the same architecture (fine-tuning).
    """

    out_dir: str = "runs/avici"
    seed: int = 0
    steps: int = 20_000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 500
    grad_clip: float = 1.0
    acyclicity_weight: float = 0.0
    acyclicity_dual_lr: float = 1e-4
    acyclicity_burnin: int = 2000
    eval_every: int = 500
    eval_datasets: int = 256
    checkpoint_every_s: float = 300.0
    time_limit_s: float | None = None
    device: str = "auto"
    threads: int | None = None
    targets: str = "graph"
    teacher_weight: float = 1.0
    teacher_max_d: int = 12
    snapshots: bool = False
    init: str | None = None
    model: dict = field(
        default_factory=lambda: dict(dim=64, layers=2, num_heads=4, key_size=16, dropout=0.0)
    )
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


def heldout_set(
    sampler: DatasetSampler, n_datasets: int, seed: int, chunk: int = 64
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed held-out set: chunks ``(x, graph)`` drawn with seeds disjoint from training steps."""
    return [
        sampler.sample((seed, 1 << 30, i), min(chunk, n_datasets - i))
        for i in range(0, n_datasets, chunk)
    ]


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


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition(":")
    return int(low), int(high or low)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="caasl-train-reward", description=__doc__.split("\n\n")[0]
    )
    add_run_arguments(parser, out="runs/avici", steps=20_000, eval_every=500, eval_datasets=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument(
        "--acyclicity", type=float, default=0.0, help="weight of the acyclicity penalty (0: off)"
    )
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--key-size", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument(
        "--d",
        "--variables",
        type=_range,
        default=(5, 20),
        help="variables, LOW:HIGH (spell it --variables after torchrun, which reads --d as an "
        "abbreviation of its own options)",
    )
    parser.add_argument(
        "--n-obs", type=_range, default=(30, 60), help="observational rows, LOW:HIGH"
    )
    parser.add_argument(
        "--n-int", type=_range, default=(1, 15), help="interventional rows, LOW:HIGH"
    )
    parser.add_argument("--p-obs-only", type=float, default=0.3)
    parser.add_argument("--graphs", default="erdos_renyi,scale_free")
    parser.add_argument("--degrees", default="1,2,3")
    parser.add_argument(
        "--design-mix",
        type=parse_design_mix,
        default={"random": 1.0},
        help=f"designs of the interventional rows, NAME:WEIGHT,... from {DESIGNS} "
        "(default random:1)",
    )
    parser.add_argument(
        "--targets",
        choices=TARGETS,
        default="graph",
        help="train on the graph's labels or on an exact posterior (linear data, d <= --teacher-max-d)",
    )
    parser.add_argument(
        "--teacher-weight",
        type=float,
        default=1.0,
        help="weight of the exact posterior in the targets (the rest: graph labels)",
    )
    parser.add_argument("--teacher-max-d", type=int, default=12, help="largest d with a teacher")
    parser.add_argument(
        "--snapshots", action="store_true", help="keep the weights of every evaluation"
    )
    args = parser.parse_args(argv)

    config = TrainConfig(
        **run_options(args),
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup,
        grad_clip=args.grad_clip,
        acyclicity_weight=args.acyclicity,
        targets=args.targets,
        teacher_weight=args.teacher_weight,
        teacher_max_d=args.teacher_max_d,
        snapshots=args.snapshots,
        model=dict(
            dim=args.dim,
            layers=args.layers,
            num_heads=args.heads,
            key_size=args.key_size,
            dropout=args.dropout,
        ),
        data=dict(
            d_range=args.d,
            n_obs_range=args.n_obs,
            n_int_range=args.n_int,
            p_obs_only=args.p_obs_only,
            graphs=tuple(args.graphs.split(",")),
            degrees=tuple(float(v) for v in args.degrees.split(",")),
            design_mix=args.design_mix,
        ),
    )
    run_and_export(start_trainer(config, args, Trainer), args)


def add_run_arguments(
    parser: argparse.ArgumentParser, out: str, steps: int, eval_every: int, eval_datasets: int
) -> None:
    """The options every reward-training CLI shares: run folder, resume, export, seed, steps
    (default ``steps``), init, evaluation, checkpointing, time limit, device and threads."""
    parser.add_argument("--out", default=out, help="run folder (checkpoint.pt, tb/)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--export", default=None, help="also write shippable weights to this .pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"total steps (default {steps}; with --resume: extend the schedule)",
    )
    parser.set_defaults(default_steps=steps)
    parser.add_argument(
        "--init",
        default=None,
        help="start from these weights (.pt of the same architecture, or of its AVICI part)",
    )
    parser.add_argument("--eval-every", type=int, default=eval_every)
    parser.add_argument("--eval-datasets", type=int, default=eval_datasets)
    parser.add_argument("--checkpoint-every", type=float, default=300.0, help="seconds")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="stop (and checkpoint) after this many seconds",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")


def run_options(args: argparse.Namespace) -> dict:
    """The :class:`TrainConfig` fields :func:`add_run_arguments` sets."""
    return dict(
        out_dir=args.out,
        seed=args.seed,
        steps=args.default_steps if args.steps is None else args.steps,
        init=args.init,
        eval_every=args.eval_every,
        eval_datasets=args.eval_datasets,
        checkpoint_every_s=args.checkpoint_every,
        time_limit_s=args.time_limit,
        device=args.device,
        threads=args.threads,
    )


def start_trainer(
    config: TrainConfig, args: argparse.Namespace, make: Callable[[TrainConfig], Trainer]
) -> Trainer:
    """``make(config)``, or with ``--resume`` and an existing ``OUT/checkpoint.pt`` the saved
    run, with this invocation's steps (when given), time limit, device and threads."""
    checkpoint = Path(args.out) / "checkpoint.pt"
    if not (args.resume and checkpoint.is_file()):
        return make(config)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]
    trainer = make(
        TrainConfig(
            **{
                **saved,
                "steps": saved["steps"] if args.steps is None else args.steps,
                "time_limit_s": args.time_limit,
                "device": args.device,
                "threads": args.threads,
            }
        )
    )
    trainer.load(checkpoint)
    return trainer


def run_and_export(trainer: Trainer, args: argparse.Namespace) -> None:
    """The CLIs' common tail: train, print the result as JSON, export weights if asked."""
    existing = trainer.out / "checkpoint.pt"
    if trainer.step == 0 and existing.is_file():
        # A fresh run would overwrite that checkpoint at its first save.
        raise SystemExit(
            f"{existing} exists: continue that run with --resume (where the CLI has it) or "
            "choose another --out"
        )
    result = trainer.run(progress=not args.no_progress)
    if trainer.dist.is_main:
        print(
            json.dumps({"step": trainer.step, "elapsed_s": round(trainer.elapsed_s, 1), **result})
        )
        if args.export:
            print(f"weights written to {trainer.model.save(args.export)}")
    trainer.dist.close()


if __name__ == "__main__":
    main()
