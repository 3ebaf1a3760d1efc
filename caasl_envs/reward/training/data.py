"""What reward models train on: simulated datasets and their training targets.

Every minibatch is a fresh batch of linear SCMs from :class:`~caasl_envs.scm.LinearSCMPrior`
(the environments' prior; :class:`LinearDatasetSampler`), with one number of variables ``d`` and
one number of rows per minibatch (so no padding), and graph prior, degree and intervention mix
drawn per dataset:

* ``n_obs`` observational rows, then ``n_int`` interventional rows (0 for a fraction
  ``p_obs_only`` of the datasets) with values ``U[-1, 1] * value_scale``; their targets follow a
  per-dataset *design* drawn from ``design_mix`` (:data:`DESIGNS`): by default every row has its
  own random do-targets (every node with a per-dataset probability), as a random agent in the
  environments produces them; single-target, repeated-target and few-target designs cover what
  targeted agents produce. Rows are not shuffled (the model is permutation invariant).

Other simulators subclass :class:`DatasetSampler` (``train_sergio``, ``train_rff``). The targets
are the graph's labels or, with ``targets="exact-bge"``/``"exact-linear-scm"``,
:class:`TeacherTargets`: the exact edge posterior of each dataset with ``d <= teacher_max_d``
(computed on the fly, batched per graph degree; graph labels above), optionally mixed with the
labels. A batch is a function of its seed only, so a resumed run continues exactly.

The fields that are command-line options declare them (:func:`~caasl_envs.reward.training.options.option`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from caasl_envs.reward.exact import MAX_EXACT_D, ExactLinearGaussianPosterior
from caasl_envs.reward.training.options import (
    comma_list,
    float_list,
    float_range,
    int_range,
    option,
)
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import LinearSCMPrior

__all__ = [
    "CAASL_HELDOUT",
    "DESIGNS",
    "TARGETS",
    "DatasetSampler",
    "LinearDatasetSampler",
    "TeacherTargets",
    "check_design_mix",
    "concentrated_targets",
    "heldout_set",
    "parse_design_mix",
]

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

    d_range: tuple[int, int] = field(
        default=(5, 20),
        metadata=option(
            "--d",
            "--variables",
            parse=int_range,
            help="variables, LOW:HIGH (spell it --variables after torchrun, which reads --d as "
            "an abbreviation of its own options)",
        ),
    )
    n_obs_range: tuple[int, int] = field(
        default=(30, 60),
        metadata=option("--n-obs", parse=int_range, help="observational rows, LOW:HIGH"),
    )
    n_int_range: tuple[int, int] = field(
        default=(1, 15),
        metadata=option("--n-int", parse=int_range, help="interventional rows, LOW:HIGH"),
    )
    p_obs_only: float = field(
        default=0.3, metadata=option(help="fraction of datasets without interventional rows")
    )
    graphs: tuple[str, ...] = field(
        default=("erdos_renyi", "scale_free"),
        metadata=option(parse=comma_list, help="graph priors, NAME,NAME,..."),
    )
    degrees: tuple[float, ...] = field(
        default=(1.0, 2.0, 3.0), metadata=option(parse=float_list, help="graph degrees, X,Y,...")
    )
    target_prob_range: tuple[float, float] = field(
        default=(0.05, 0.6),
        metadata=option(
            "--target-prob", parse=float_range, help="per-node target probability, LOW:HIGH"
        ),
    )
    design_mix: dict[str, float] = field(
        default_factory=lambda: {"random": 1.0},
        metadata=option(
            parse=parse_design_mix,
            help=f"designs of the interventional rows, NAME:WEIGHT,... from {DESIGNS} "
            "(default random:1)",
        ),
    )

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


def heldout_set(
    sampler: DatasetSampler, n_datasets: int, seed: int, chunk: int = 64
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed held-out set: chunks ``(x, graph)`` drawn with seeds disjoint from training steps."""
    return [
        sampler.sample((seed, 1 << 30, i), min(chunk, n_datasets - i))
        for i in range(0, n_datasets, chunk)
    ]
