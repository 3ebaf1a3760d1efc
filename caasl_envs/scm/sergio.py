"""SERGIO single-cell gene-expression simulator (Dibaeinia & Sinha, 2020), batched.

A gene-regulatory network over ``d`` genes is a DAG with signed interaction strengths ``K``.
Gene ``j`` is produced at rate

    P_j(x) = f_j * (b_j[c] * [j is a master regulator] + sum_i |K_ij| H_ij(x_i)),
    H_ij(x) = x^n / (h_i^n + x^n) if K_ij > 0 (activation), 1 - x^n / (h_i^n + x^n) otherwise,

with cell-type-specific basal rates ``b[c]`` for master regulators (genes without regulators),
Hill coefficient ``n``, half-responses ``h_i`` and an intervention factor ``f_j`` (0 for a
knockout, 0.5 for a knockdown, 1 otherwise). Expression follows SERGIO's chemical Langevin
equation with dual production-decay noise, integrated by Euler-Maruyama with step ``dt``::

    x <- max(0, x + dt (P - l x) + sqrt(dt) s (sqrt(P) w_p + sqrt(l x) w_d))

(decay ``l``, noise scale ``s``, independent standard normals ``w_p, w_d``). The two noise terms
are drawn as the single normal ``sqrt(P + l x) w`` they sum to in distribution.

How cells are drawn (faster than SERGIO, same stationary law):

* **Half-responses** are the mean expression of each regulator over cell types, computed from
  the deterministic steady state of the wild-type network level by level in topological order
  (``d`` sweeps of the whole network give every level exactly; no loop over environments).
  They are properties of the system and stay fixed under interventions. SERGIO and the original
  CAASL code recompute them inside every (intervened) simulation, which makes a knockdown
  nearly invisible downstream: with ``n = 1`` the Hill term depends on ``x / h`` only, and
  halving both leaves it unchanged.
* **Each cell is an independent draw** from the steady state of its cell type (drawn
  uniformly per cell). Every cell is its own trajectory, and all cells of all environments are
  integrated at once (the loop runs over time steps only). A trajectory starts from the
  linear-noise approximation of the steady state (the deterministic fixed point plus Gaussian
  fluctuations whose covariance solves the discrete Lyapunov equation of the linearised
  Euler-Maruyama chain) and then runs ``burn_in_steps`` steps of the nonlinear dynamics,
  which relax what the Gaussian start gets wrong (skew, truncation at zero, the Hill
  curvature's shift of the mean). SERGIO instead starts from the fixed point and samples cells
  at random times of one trajectory per cell type, so its cells are correlated and a one-cell
  step pays for a whole trajectory. Measured against 1000-step runs (10 decay times): from the
  fixed point, 100 steps leave the variance ~20 % short and 300 steps are needed to come within
  a few per cent; from the linear-noise start the default 100 steps give variances within a
  few per cent and means within ~0.1 standard deviation (the largest gaps on weakly expressed
  genes, which sit near zero). ``tests/test_sergio.py`` holds the default to that accuracy.

Technical noise (SERGIO's order): outlier genes, library size, dropout, Poisson counts. The
outlier genes and the dropout midpoint belong to the experimental setting and are drawn once per
system; SERGIO computes the dropout midpoint as a percentile of the dataset at hand, so a cell's
dropout would depend on how many cells were drawn with it. Here the midpoint is the same
percentile of the system's expected wild-type profile (steady state of every cell type after
outlier and median library-size scaling), so a step of one cell and a dataset of fifty cells
are treated alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from caasl_envs.checks import check_bool, check_float, check_int
from caasl_envs.graphs import check_graph_prior, sample_graphs
from caasl_envs.rng import BatchedRNG

SERGIO_INTERVENTIONS = {"knockout": 0.0, "knockdown": 0.5}
#: Where each cell's trajectory starts (see the module docstring).
STARTS = ("linear-noise", "fixed-point")

# Standard normals drawn per environment per chunk of time steps (bounds memory, not results).
_NOISE_CHUNK = 16384
# Doublings of the discrete Lyapunov sum: 2^12 steps of dt = 0.01 is 41 time units.
_LYAPUNOV_DOUBLINGS = 12


@dataclass(frozen=True)
class TechnicalNoise:
    """One technical-noise setting; each field lists the values a system draws one of.

    :param outlier_prob: probability that a gene is an outlier gene.
    :param outlier_mean: log-normal mean of an outlier gene's expression factor.
    :param outlier_scale: log-normal scale of that factor.
    :param lib_size_mean: log-normal mean of a cell's library size.
    :param lib_size_scale: log-normal scale of a cell's library size.
    :param dropout_shape: slope of the logistic dropout curve in log1p expression.
    :param dropout_percentile: percentile of log1p expression where the dropout curve is 1/2.
    """

    outlier_prob: tuple[float, ...]
    outlier_mean: tuple[float, ...]
    outlier_scale: tuple[float, ...]
    lib_size_mean: tuple[float, ...]
    lib_size_scale: tuple[float, ...]
    dropout_shape: tuple[float, ...]
    dropout_percentile: tuple[float, ...]


def _setting(outlier_mean, lib_size_mean, lib_size_scale, dropout_shape, dropout_percentile):
    n = max(len(lib_size_mean), len(dropout_percentile), len(outlier_mean))
    return TechnicalNoise(
        outlier_prob=(0.01,) * n,
        outlier_mean=outlier_mean,
        outlier_scale=(1.0,) * n,
        lib_size_mean=lib_size_mean,
        lib_size_scale=lib_size_scale,
        dropout_shape=dropout_shape,
        dropout_percentile=dropout_percentile,
    )


#: SERGIO's technical-noise settings estimated from real single-cell data (SERGIO paper,
#: supplementary table; as used by AVICI and CAASL). ``"clean"`` adds no technical noise.
TECHNICAL_NOISE: dict[str, TechnicalNoise | None] = {
    "10x-chromium": _setting(
        (3.0, 3.0, 5.0), (6.0, 6.0, 4.5), (0.3, 0.4, 0.7), (8, 8, 8), (74, 82, 45)
    ),
    "10x-chromium-clean": _setting((5.0,), (6.0,), (0.4,), (8,), (0,)),
    "10x-chromium-good": _setting((5.0,), (6.0,), (0.4,), (8,), (45,)),
    "10x-chromium-mini": _setting((3.0,), (6.0,), (0.3,), (8,), (74,)),
    "illumina": _setting((0.8,), (7.0,), (0.4,), (8,), (80,)),
    "drop-seq": _setting((3.0,), (4.4,), (0.8,), (8,), (85,)),
    "smart-seq": _setting((4.5,), (10.8,), (0.55,), (2,), (92,)),
    "clean": None,
}


def _chunk_steps(n: int, d: int) -> int:
    """Time steps of Langevin noise drawn at once (bounds memory; results do not depend on it)."""
    return max(1, _NOISE_CHUNK // (n * d))


def _draw_uniform_normal(
    rng: BatchedRNG, n_uniform: int, n_normal: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the generators: ``(B, n_uniform)`` U(0, 1) and ``(B, n_normal)`` N(0, 1)."""

    def one(g: np.random.Generator, row: np.ndarray) -> None:
        g.random(dtype=np.float32, out=row[:n_uniform])
        g.standard_normal(dtype=np.float32, out=row[n_uniform:])

    flat = rng.fill(one, (n_uniform + n_normal,))
    return flat[:, :n_uniform], flat[:, n_uniform:]


def _percentile(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row percentile with linear interpolation (numpy's default): ``(B, m), (B,) -> (B,)``."""
    s = values.sort(dim=-1).values
    pos = (q / 100.0).clamp(0.0, 1.0) * (s.shape[-1] - 1)
    lo = pos.floor().long().clamp(max=s.shape[-1] - 1)
    hi = (lo + 1).clamp(max=s.shape[-1] - 1)
    w = pos - lo.to(pos.dtype)
    return s.gather(-1, lo[:, None])[:, 0] * (1 - w) + s.gather(-1, hi[:, None])[:, 0] * w


@dataclass
class Measurement:
    """The technical noise of each system's experimental setting (values drawn from a
    :class:`TechnicalNoise`), fixed for all the system's experiments.

    :param outlier_factor: ``(B, d)`` expression factor per gene (1 for non-outlier genes).
    :param lib_size_mean: ``(B,)`` log-normal mean of a cell's library size.
    :param lib_size_scale: ``(B,)`` log-normal scale of a cell's library size.
    :param dropout_shape: ``(B,)`` slope of the logistic dropout curve.
    :param dropout_percentile: ``(B,)`` percentile of the expected log1p wild-type profile
        where a value is kept with probability 1/2.
    """

    outlier_factor: torch.Tensor
    lib_size_mean: torch.Tensor
    lib_size_scale: torch.Tensor
    dropout_shape: torch.Tensor
    dropout_percentile: torch.Tensor

    @classmethod
    def draw(cls, rng: BatchedRNG, setting: TechnicalNoise, d: int) -> Measurement:
        """One option of every field per system, and which genes are outliers."""
        chosen = {}
        for name in TechnicalNoise.__dataclass_fields__:
            options = torch.tensor(getattr(setting, name), dtype=torch.float64)
            chosen[name] = options[rng.integers(0, len(options), 1)[:, 0]]
        is_outlier = rng.uniform(d).double() < chosen.pop("outlier_prob")[:, None]
        log_factor = (
            chosen.pop("outlier_mean")[:, None]
            + chosen.pop("outlier_scale")[:, None] * rng.normal(d).double()
        )
        return cls(outlier_factor=torch.where(is_outlier, log_factor.exp(), 1.0), **chosen)


@dataclass(kw_only=True)
class SergioDynamics:
    """The dynamics and experiment settings shared by :class:`SergioGRN` and :class:`SergioPrior`
    (keyword-only; validated on creation).

    :param counts: :meth:`SergioGRN.sample` returns Poisson counts (else the expression itself).
    :param intervention: ``"knockout"`` (production x 0) or ``"knockdown"`` (x 0.5).
    :param intervention_noise: probability that each target bit of an experiment is flipped.
    :param hill: Hill coefficient (``>= 1``).
    :param decay: decay rate.
    :param noise_scale: scale ``s`` of the intrinsic (Langevin) noise.
    :param dt: Euler-Maruyama step.
    :param burn_in_steps: nonlinear steps per cell after the start.
    :param start: ``"linear-noise"`` (fixed point + Gaussian fluctuations) or ``"fixed-point"``
        (SERGIO's start; needs ~300 burn-in steps, kept for comparison).
    """

    counts: bool = True
    intervention: str = "knockout"
    intervention_noise: float = 0.0
    hill: float = 1.0
    decay: float = 0.8
    noise_scale: float = 1.0
    dt: float = 0.01
    burn_in_steps: int = 100
    start: str = "linear-noise"

    def __post_init__(self) -> None:
        if self.intervention not in SERGIO_INTERVENTIONS:
            raise ValueError(
                f"unknown intervention {self.intervention!r} for SERGIO; "
                f"expected one of {tuple(SERGIO_INTERVENTIONS)}"
            )
        self.counts = check_bool("counts", self.counts)
        check_float("intervention_noise", self.intervention_noise, 0.0, 1.0)
        check_float("hill", self.hill, 1.0)
        check_float("noise_scale", self.noise_scale, 0.0)
        check_float("dt", self.dt, 0.0, open_low=True)
        check_float("decay", self.decay, 0.0, open_low=True)
        if self.decay * self.dt >= 1:
            raise ValueError(
                "need dt > 0, decay > 0 and decay * dt < 1 for a stable integration, "
                f"got dt={self.dt!r}, decay={self.decay!r}"
            )
        if self.start not in STARTS:
            raise ValueError(f"unknown start {self.start!r}; expected one of {STARTS}")
        check_int("burn_in_steps", self.burn_in_steps, 0)

    def dynamics(self) -> dict:
        """The :class:`SergioDynamics` fields of this object, as keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(SergioDynamics)}


@dataclass
class SergioGRN(SergioDynamics):
    """A batch of ``B`` gene-regulatory networks over ``d`` genes with ``C`` cell types.

    Half-responses (and the dropout midpoint) are computed from these parameters on creation.

    :param graph: ``(B, d, d)`` 0/1 adjacency, ``graph[b, i, j] = 1`` iff gene i regulates j.
    :param k: ``(B, d, d)`` signed interaction strengths, zero off the graph.
    :param basal: ``(B, C, d)`` basal production rates per cell type (used for master regulators).
    :param measurement: technical noise (``None``: no outliers, library size or dropout).

    Keyword-only dynamics: see :class:`SergioDynamics`.
    """

    graph: torch.Tensor
    k: torch.Tensor
    basal: torch.Tensor
    measurement: Measurement | None = None
    half_response: torch.Tensor = field(init=False)
    dropout_midpoint: torch.Tensor | None = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        b, d = self.graph.shape[0], self.graph.shape[-1]
        if self.graph.shape != (b, d, d) or self.k.shape != (b, d, d):
            raise ValueError(
                f"graph and k must both have shape (B, d, d), got {tuple(self.graph.shape)} "
                f"and {tuple(self.k.shape)}"
            )
        if self.basal.dim() != 3 or self.basal.shape[0] != b or self.basal.shape[2] != d:
            raise ValueError(
                f"basal must have shape (B, C, d) = ({b}, C, {d}), got {tuple(self.basal.shape)}"
            )
        for name in ("k", "basal"):
            if not torch.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} contains NaN or inf")
        if bool(((self.k != 0) & (self.graph == 0)).any()):
            raise ValueError("k has nonzero interactions off the graph")
        if bool((self.basal <= 0).any()):
            raise ValueError("basal rates must be positive")
        self.k = self.k.double()
        self.basal = self.basal.double()
        self.half_response = self._wild_type_half_responses()
        self.dropout_midpoint = None if self.measurement is None else self._dropout_midpoint()

    @property
    def d(self) -> int:
        return self.graph.shape[-1]

    @property
    def num_cell_types(self) -> int:
        return self.basal.shape[1]

    # ------------------------------------------------------------------ public API
    def sample(
        self,
        rng: BatchedRNG,
        n: int,
        targets: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Measure ``n`` new cells per environment under a knockout / knockdown experiment.

        :param targets: ``(B, d)`` bool, the genes intervened on (``None``: wild type).
        :param values: ignored (SERGIO interventions have no value); accepted for the protocol.
        :return: ``(B, n, d)`` float32; non-negative integer counts when ``counts``.
        """
        x = self.expression(rng, n, targets)
        if self.measurement is not None:
            x = self._technical_noise(rng, x)
        if self.counts:
            x = rng.poisson(x.double()).to(torch.float32)
        return x

    def expression(
        self, rng: BatchedRNG, n: int, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``n`` independent steady-state cells per environment, before technical noise.

        :return: ``(B, n, d)`` float32 non-negative expression levels.
        """
        b, d = self.graph.shape[:2]
        check_int("n", n, 1)
        if len(rng) != b:
            raise ValueError(f"rng has {len(rng)} generators for a batch of {b} systems")
        targets = self._check_targets(targets, b, d)
        # One pass over the generators draws the experiment: target flips, cell types, the
        # start's normals and the first chunk of Langevin noise.
        first = min(self.burn_in_steps, _chunk_steps(n, d))
        u, w = _draw_uniform_normal(rng, d + n, (1 + first) * n * d)
        factor = self.production_factor(targets, u[:, :d] < self.intervention_noise)
        c = self.num_cell_types
        pick = (u[:, d:] * c).long().clamp(max=c - 1).to(self.graph.device)  # cell types (B, n)
        base = self._base_production(factor)  # (B, C, d)
        weights = self.k * factor[:, None, :]
        # The linear-noise start is solved per cell type, or per cell when that is fewer.
        per_cell = n < c
        if per_cell:
            base = base.gather(1, pick[..., None].expand(b, n, d))
        if self.start == "fixed-point":
            mean = self._fixed_point(base, weights)
            scale_tril = mean.new_zeros(*mean.shape, d)
        else:
            mean, scale_tril = self._linear_noise_start(base, weights)
        if not per_cell:
            base = base.gather(1, pick[..., None].expand(b, n, d))
            mean = mean.gather(1, pick[..., None].expand(b, n, d))
            scale_tril = scale_tril.gather(1, pick[..., None, None].expand(b, n, d, d))
        w = w.to(self.graph.device)
        z = w[:, : n * d].reshape(b, n, d).double()
        x = mean + torch.einsum("bnk,bnjk->bnj", z, scale_tril)
        # Knocked-out genes start (and stay) exactly at zero.
        x = (x.clamp(min=0.0) * (factor[:, None, :] > 0)).to(torch.float32)
        return self._integrate(
            rng,
            x,
            base.to(torch.float32),
            weights.to(torch.float32),
            w[:, n * d :].reshape(b, first, n, d),
        )

    def production_factor(
        self, targets: torch.Tensor | None, flip: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, d)`` production multipliers of an experiment.

        :param targets: ``(B, d)`` bool intended targets (``None``: wild type).
        :param flip: ``(B, d)`` bool target bits that a noisy experiment gets wrong.
        """
        b, d = self.graph.shape[:2]
        factor = torch.ones(b, d, dtype=torch.float64, device=self.graph.device)
        if targets is None:
            return factor
        targets = targets.to(device=self.graph.device, dtype=torch.bool)
        if flip is not None:
            # An experiment without targets is wild type: there is nothing to get wrong.
            flip = flip.to(targets.device) & targets.any(-1, keepdim=True)
            targets = targets ^ flip
        return factor.masked_fill(targets, SERGIO_INTERVENTIONS[self.intervention])

    def steady_state(self, factor: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic fixed point ``x* = P(x*) / decay`` of every cell type: ``(B, C, d)``.

        :param factor: ``(B, d)`` production multipliers (``None``: wild type).
        """
        if factor is None:
            factor = self.production_factor(None)
        return self._fixed_point(self._base_production(factor), self.k * factor[:, None, :])

    # ------------------------------------------------------------------ dynamics
    def _check_targets(self, targets: torch.Tensor | None, b: int, d: int) -> torch.Tensor | None:
        if targets is None:
            return None
        targets = torch.as_tensor(targets)
        if tuple(targets.shape) != (b, d):
            raise ValueError(
                f"targets must have shape {(b, d)} for {b} system(s) with d={d}, "
                f"got {tuple(targets.shape)}"
            )
        if targets.is_floating_point() and not torch.isfinite(targets).all():
            raise ValueError("targets contain NaN or inf")
        return targets.to(torch.bool)

    def _base_production(self, factor: torch.Tensor) -> torch.Tensor:
        """``(B, C, d)`` production when every Hill term is 0 (repressors fully on), float64."""
        k = self.k.double()
        is_master = self.graph.sum(1) == 0  # (B, d)
        basal = self.basal.double() * is_master[:, None, :]
        repressed = (-k).clamp(min=0.0).sum(1)  # (B, d): a repressor at 0 contributes |K|
        return (basal + repressed[:, None, :]) * factor[:, None, :]

    def _hill(self, x: torch.Tensor, half_pow: torch.Tensor) -> torch.Tensor:
        """Activation ``x^n / (h^n + x^n)`` per regulator; ``half_pow`` is ``h^n`` ``(B, 1, d)``."""
        xn = x if self.hill == 1.0 else x.pow(self.hill)
        return xn / (half_pow + xn)

    def _half_pow(self, dtype: torch.dtype) -> torch.Tensor:
        h = self.half_response.to(dtype)[:, None, :]
        return h.pow(self.hill).clamp(min=torch.finfo(dtype).tiny)

    def _fixed_point(self, base: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Solve ``x = (base + H(x) @ weights) / decay`` on a DAG: ``d`` sweeps fix every level."""
        half_pow = self._half_pow(torch.float64)
        weights = weights.double()
        x = base / self.decay
        for _ in range(self.d):
            x = torch.baddbmm(base, self._hill(x, half_pow), weights).clamp(min=0.0) / self.decay
        return x

    def _linear_noise_start(
        self, base: torch.Tensor, weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear-noise approximation of the steady state for rows of base production.

        :param base: ``(B, m, d)`` production with every Hill term at 0 (float64).
        :param weights: ``(B, d, d)`` signed interaction strengths times production factors.
        :return: the fixed point ``(B, m, d)`` and a lower-triangular ``L`` ``(B, m, d, d)`` with
            ``L L^T`` the stationary covariance of the linearised Euler-Maruyama chain.
        """
        weights = weights.double()
        mean = self._fixed_point(base, weights)
        d = mean.shape[-1]
        half_pow = self._half_pow(torch.float64)
        act = self._hill(mean, half_pow)
        # dH/dx = n H (1 - H) / x; at x = 0 it is 1 / h for n = 1 and 0 for n > 1.
        at_zero = (1.0 / half_pow).expand_as(mean) if self.hill == 1.0 else torch.zeros_like(mean)
        slope = torch.where(mean > 0, self.hill * act * (1 - act) / mean.clamp(min=1e-300), at_zero)
        eye = torch.eye(d, dtype=torch.float64, device=mean.device)
        # Row-vector convention: dx_t+1 = dx_t A + noise, A = I + dt (diag(slope) W - decay I).
        step = eye + self.dt * (slope[..., :, None] * weights[:, None] - self.decay * eye)
        production = torch.baddbmm(base, act, weights).clamp(min=0.0)
        cov = torch.diag_embed(self.noise_scale**2 * self.dt * (production + self.decay * mean))
        # Doubling: after k rounds cov sums the first 2^k terms of sum_t (A^t)^T Q A^t.
        for _ in range(_LYAPUNOV_DOUBLINGS):
            cov = cov + step.mT @ cov @ step
            step = step @ step
        cov = torch.nan_to_num(0.5 * (cov + cov.mT), nan=0.0, posinf=0.0, neginf=0.0)
        # Silent genes (knocked out) have zero variance: a tiny jitter keeps Cholesky defined.
        var = cov.diagonal(dim1=-2, dim2=-1)
        jitter = 1e-9 * var.amax(-1, keepdim=True) + 1e-30
        scale_tril, info = torch.linalg.cholesky_ex(cov + torch.diag_embed(jitter.expand_as(var)))
        # Where rounding made the covariance indefinite, start without correlations instead.
        independent = torch.diag_embed(var.clamp(min=0.0).sqrt())
        scale_tril = torch.where((info == 0)[..., None, None], scale_tril, independent)
        return mean, torch.nan_to_num(scale_tril, nan=0.0, posinf=0.0, neginf=0.0)

    def _integrate(
        self,
        rng: BatchedRNG,
        x: torch.Tensor,
        base: torch.Tensor,
        weights: torch.Tensor,
        first_noise: torch.Tensor,
    ) -> torch.Tensor:
        """``burn_in_steps`` Euler-Maruyama steps for all cells at once.

        :param x: ``(B, n, d)`` start (updated in place).
        :param base: ``(B, n, d)`` production with every Hill term at 0.
        :param weights: ``(B, d, d)`` signed interaction strengths times production factors.
        :param first_noise: ``(B, m, n, d)`` standard normals of the first ``m`` steps; later
            chunks are drawn from ``rng``.
        """
        b, n, d = x.shape
        half_pow = self._half_pow(torch.float32)
        scale = math.sqrt(self.dt) * self.noise_scale
        keep = 1.0 - self.decay * self.dt
        noise, done = first_noise, 0
        while done < self.burn_in_steps:
            if done > 0:
                m = min(_chunk_steps(n, d), self.burn_in_steps - done)
                noise = rng.fill(
                    lambda g, row: g.standard_normal(dtype=np.float32, out=row), (m, n, d)
                )
            noise = noise.to(x.device).mul_(scale)
            for t in range(noise.shape[1]):
                production = torch.baddbmm(base, self._hill(x, half_pow), weights).clamp_(min=0.0)
                jitter = torch.add(production, x, alpha=self.decay).sqrt_().mul_(noise[:, t])
                x = x.mul_(keep).add_(production, alpha=self.dt).add_(jitter).clamp_(min=0.0)
            done += noise.shape[1]
        return x

    # ------------------------------------------------------------------ construction
    def _wild_type_half_responses(self) -> torch.Tensor:
        """Mean over cell types of the wild-type fixed point, level by level: ``(B, d)``.

        A gene's half-response depends on its regulators' levels only, and a regulator's level
        on its own regulators' half-responses, so ``d`` sweeps settle every level of the DAG.
        """
        base = self._base_production(self.production_factor(None))
        x = base / self.decay
        for _ in range(self.d):
            self.half_response = x.mean(1)
            x = torch.baddbmm(base, self._hill(x, self._half_pow(torch.float64)), self.k)
            x = x.clamp(min=0.0) / self.decay
        return x.mean(1)

    def _dropout_midpoint(self) -> torch.Tensor:
        """The dropout percentile of log1p expression in the expected wild-type profile: ``(B,)``."""
        m = self.measurement
        profile = self.steady_state() * m.outlier_factor[:, None, :]  # (B, C, d)
        total = profile.sum(-1, keepdim=True)
        lib = m.lib_size_mean.exp()[:, None, None]  # median library size
        profile = profile * torch.where(total > 0, lib / total.clamp(min=1e-300), 0.0)
        return _percentile(torch.log1p(profile).flatten(1), m.dropout_percentile)

    # ------------------------------------------------------------------ technical noise
    def _technical_noise(self, rng: BatchedRNG, x: torch.Tensor) -> torch.Tensor:
        """Outlier genes, library size, dropout: ``(B, n, d) -> (B, n, d)``."""
        b, n, d = x.shape
        m = self.measurement
        u, w = _draw_uniform_normal(rng, n * d, n)
        x = x.double() * m.outlier_factor[:, None, :].to(x.device)
        lib = torch.exp(m.lib_size_mean[:, None] + m.lib_size_scale[:, None] * w.double())
        total = x.sum(-1)
        x = x * torch.where(total > 0, lib.to(x.device) / total.clamp(min=1e-300), 0.0)[..., None]
        keep_prob = torch.sigmoid(
            m.dropout_shape[:, None, None] * (torch.log1p(x) - self.dropout_midpoint[:, None, None])
        )
        keep = u.reshape(b, n, d).to(x.device) < keep_prob
        return (x * keep).to(torch.float32)


@dataclass
class SergioPrior(SergioDynamics):
    """The prior over SERGIO gene-regulatory networks an environment samples its system from.

    Defaults follow CAASL's SERGIO setting (docs/design.md §3).

    :param d: number of genes.
    :param graph: graph prior, one of :data:`~caasl_envs.graphs.GRAPH_PRIORS`.
    :param graph_degree: expected degree parameter of the graph prior.
    :param technical_noise: a key of :data:`TECHNICAL_NOISE`.
    :param cell_types: number of cell types ``C``.
    :param basal_range: master regulators' basal rates ``~ U(low, high)`` per cell type.
    :param k_range: interaction strengths ``|K| ~ U(low, high)``.
    :param k_sign_beta: ``P(activation)`` of each regulator ``~ Beta(a, b)``.

    Keyword-only dynamics and experiment settings (intervention, intervention noise, Hill
    coefficient, ...): see :class:`SergioDynamics`; every sampled network gets them.
    """

    d: int
    graph: str = "erdos_renyi"
    graph_degree: float = 3.0
    technical_noise: str = "10x-chromium-mini"
    cell_types: int = 5
    basal_range: tuple[float, float] = (1.0, 3.0)
    k_range: tuple[float, float] = (1.0, 5.0)
    k_sign_beta: tuple[float, float] = (0.5, 0.5)

    action_kind = "target_only"
    default_reward_model = "avici-sergio-v0"

    def __post_init__(self) -> None:
        check_int("d", self.d, 2)
        check_graph_prior(self.graph, self.graph_degree)
        if self.technical_noise not in TECHNICAL_NOISE:
            raise ValueError(
                f"unknown technical_noise {self.technical_noise!r}; "
                f"expected one of {tuple(TECHNICAL_NOISE)}"
            )
        check_int("cell_types", self.cell_types, 1)
        for name in ("basal_range", "k_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high < math.inf:
                raise ValueError(f"{name} must satisfy 0 < low <= high < inf, got {(low, high)}")
        if not all(0 < a < math.inf for a in self.k_sign_beta):
            raise ValueError(f"k_sign_beta parameters must be positive, got {self.k_sign_beta}")
        super().__post_init__()

    def sample(self, rng: BatchedRNG) -> SergioGRN:
        """Draw ``B = len(rng)`` networks, one from each environment's generator."""
        d = self.d
        graph = sample_graphs(rng, self.graph, d, self.graph_degree)
        strength = rng.uniform(d, d, low=self.k_range[0], high=self.k_range[1])
        p_activate = rng.beta(*self.k_sign_beta, d)  # (B, d): one propensity per regulator
        sign = torch.where(rng.uniform(d, d) < p_activate[..., None], 1.0, -1.0)
        basal = rng.uniform(self.cell_types, d, low=self.basal_range[0], high=self.basal_range[1])
        setting = TECHNICAL_NOISE[self.technical_noise]
        return SergioGRN(
            graph=graph,
            k=graph * strength * sign,
            basal=basal,
            measurement=None if setting is None else Measurement.draw(rng, setting, d),
            **self.dynamics(),
        )
