"""Exact edge posteriors for nonlinear data: Gaussian-process local scores + the order DP.

:class:`GPPosterior` (registered as ``exact-gp``) is the reward model that matches the
random-Fourier-feature environments (:mod:`caasl_envs.scm.rff`): their mechanisms are, up to the
finite number of features, draws from a Gaussian process with an RBF kernel, so the exact
posterior over graphs of a GP additive-noise model is what those environments' data support.
The graph side is the order dynamic programme of :mod:`caasl_envs.reward.exact` (same
order-modular Erdős–Rényi parent-set prior, same in-degree bound); only the local scores differ.

**Local score.** For variable ``j`` with parents ``Pa``, over the ``N_j`` rows that enter its
score, ``y = x_j ~ N(0, K)`` with

``K = c^2 exp(-|x_Pa - x'_Pa|^2 / (2 l^2)) + v_b + s^2 I``,

the RBF kernel of the mechanism (output scale ``c``, length scale ``l``), ``v_b`` the variance of
a constant mean integrated out under a zero-mean Gaussian prior (the variance of the simulator's
uniform bias), and the noise variance ``s^2``. A root's kernel is the constant ``c^2 + v_b``
(the simulator's root mechanism is a random constant). ``log p(y) = -1/2 y^T K^{-1} y -
sum log diag(L) - N_j/2 log(2 pi)`` from a Cholesky factor ``L``, batched over environments and
parent sets. Data are used on their raw scale (the prior has one).

**Hyper-parameters** (``hyper``): ``"centre"`` fixes ``(l, c, s)`` at the centre of the
simulator prior's ranges; ``"grid"`` averages the marginal likelihood over the ``2^3`` points
``(l, c, s)`` at the quarter points of each range (the two-point midpoint rule of a uniform
prior on each), 8 times the cost. :meth:`GPPosterior.for_prior` takes the ranges from an
environment's :class:`~caasl_envs.scm.rff.RFFSCMPrior` (noise standard deviation scaled by
``sqrt 2`` for Laplace noise; for heteroscedastic noise, the range of ``sqrt(softplus(h))`` for
``h`` within one prior standard deviation).

**Data.** Rows in which ``j`` was intervened on are left out of ``j``'s local score, as for BGe
(Cooper & Yoo 1999; the same argument covers shift interventions of unrecorded size): masked
rows become decoupled identity rows of ``K`` with ``y = 0``, which add nothing. Count data are
refused (the model is for real-valued measurements).

**Numerics.** A Cholesky factorisation that fails is retried with jitter ``10^-8, 10^-6, 10^-4``
times the mean diagonal on the diagonal; if it still fails, a ``RuntimeError`` names the
variable — never a NaN reward.

**Cost.** ``d · P`` factorisations of ``N × N`` matrices per history (``P = sum_{l<=k} C(d-1,
l)``), times 8 with the grid, plus the order DP. Measured times are in docs/nonlinear.md;
``max_d`` (default 10) bounds ``d``.
"""

from __future__ import annotations

import copy
import math

import torch

from caasl_envs.reward.base import check_history
from caasl_envs.reward.bge import ParentSets, parent_sets
from caasl_envs.reward.exact import (
    MAX_EXACT_D,
    ExactLinearGaussianPosterior,
    order_dp_edge_marginals,
)

MAX_GP_D = 10
HYPERS = ("centre", "grid")
JITTERS = (1e-8, 1e-6, 1e-4)
#: elements of one batch of kernel matrices (bounds memory: 8 bytes each)
CHUNK_ELEMENTS = 1 << 20


def _range(name: str, value: tuple[float, float], positive: bool = True) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or (positive and low <= 0):
        raise ValueError(
            f"{name} must be a finite (low, high) range with 0 < low <= high, got {value!r}"
        )
    return low, high


def hyper_points(
    length_scale: tuple[float, float],
    output_scale: tuple[float, float],
    noise_std: tuple[float, float],
    hyper: str,
) -> torch.Tensor:
    """``(H, 3)`` float64 grid of ``(l, c, s)``: the centre (``H = 1``) or the ``2^3`` quarter
    points of the ranges (``H = 8``)."""
    ranges = (length_scale, output_scale, noise_std)
    fractions = (0.5,) if hyper == "centre" else (0.25, 0.75)
    axes = [torch.tensor([lo + f * (hi - lo) for f in fractions]) for lo, hi in ranges]
    return torch.cartesian_prod(*axes).double().view(-1, 3)


def _cholesky_with_jitter(k: torch.Tensor, what: str) -> torch.Tensor:
    """Lower Cholesky factor of ``(..., N, N)``; failed matrices retried with growing jitter."""
    factor, info = torch.linalg.cholesky_ex(k)
    if not bool(info.any()):
        return factor
    eye = torch.eye(k.shape[-1], dtype=k.dtype, device=k.device)
    scale = k.diagonal(dim1=-2, dim2=-1).mean(-1, keepdim=True).unsqueeze(-1)
    for jitter in JITTERS:
        bad = info > 0
        retry, info_retry = torch.linalg.cholesky_ex(k[bad] + jitter * scale[bad] * eye)
        factor[bad], info[bad] = retry, info_retry
        if not bool(info.any()):
            return factor
    raise RuntimeError(
        f"GP scorer: the kernel matrix of {what} is not positive definite even with jitter "
        f"{JITTERS[-1]:g} x its mean diagonal (non-finite or huge values in the history?)"
    )


def _log_likelihood(
    k: torch.Tensor, y: torch.Tensor, count: torch.Tensor, what: str
) -> torch.Tensor:
    """``log N(y; 0, K)`` of ``K (..., N, N)``, ``y (..., N)``, over ``count (...)`` real rows."""
    factor = _cholesky_with_jitter(k, what)
    white = torch.linalg.solve_triangular(factor, y.unsqueeze(-1), upper=False).squeeze(-1)
    logdet = factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return -0.5 * (white * white).sum(-1) - logdet - 0.5 * count * math.log(2.0 * math.pi)


def gp_local_scores(
    values: torch.Tensor,
    rows: torch.Tensor,
    sets: ParentSets,
    hypers: torch.Tensor,
    mean_var: float,
) -> torch.Tensor:
    """GP marginal likelihoods of every variable with each of its candidate parent sets.

    :param values: ``(B, n, d)`` float64 raw data.
    :param rows: ``(B, n, d)`` float64 0/1, ``rows[b, r, j] = 1`` iff row ``r`` enters ``j``'s
        local score (valid and ``j`` not intervened on).
    :param sets: the candidate parent sets (``sets.d == d``).
    :param hypers: ``(H, 3)`` float64 ``(l, c, s)`` points; the score is the log of the mean of
        the marginal likelihood over them.
    :param mean_var: prior variance of the constant mean.
    :return: ``(B, d, P)`` float64, ``out[b, j, p] = log p(D_j | D_Pa)`` for set ``p`` of ``j``.
    """
    b, n, d = values.shape
    k, p = sets.k, sets.index.shape[1]
    # (B, d + k, n, n) RBF factors exp(-(x_u - x'_u)^2 / (2 l^2)) per variable u and length
    # scale; padded set slots address blocks of ones, so a set's kernel is a product over slots
    diff2 = (values.unsqueeze(2) - values.unsqueeze(1)).square().permute(0, 3, 1, 2)
    factors = {}
    for ell in sorted({h[0] for h in hypers.tolist()}):
        f = values.new_ones(b, d + k, n, n)
        torch.mul(diff2, -0.5 / (ell * ell), out=f[:, :d]).exp_()
        factors[ell] = f
    index = sets.index.to(values.device)
    chunk = max(1, CHUNK_ELEMENTS // (b * n * n))
    out = values.new_empty(b, d, p)
    for j in range(d):
        m = rows[:, :, j]  # (B, n)
        keep = (m.unsqueeze(-1) * m.unsqueeze(-2)).unsqueeze(1)  # (B, 1, n, n)
        y, count = (values[:, :, j] * m).unsqueeze(1), m.sum(-1, keepdim=True)
        for start in range(0, p, chunk):
            members = index[j, start : start + chunk]  # (Pc, k)
            per_point = [
                _log_likelihood(
                    _kernel(factors[ell], members, c * c, mean_var, s * s, m, keep),
                    y.expand(-1, members.shape[0], -1),
                    count,
                    f"variable {j}",
                )
                for ell, c, s in hypers.tolist()
            ]
            stacked = torch.stack(per_point, -1)
            out[:, j, start : start + chunk] = stacked.logsumexp(-1) - math.log(len(per_point))
    return out


def _kernel(
    factors: torch.Tensor,
    members: torch.Tensor,
    signal: float,
    mean_var: float,
    noise: float,
    m: torch.Tensor,
    keep: torch.Tensor,
) -> torch.Tensor:
    """``(B, Pc, n, n)`` kernel matrices of the parent sets ``members (Pc, k)`` from the RBF
    ``factors (B, d + k, n, n)``: ``signal · prod + mean_var + noise I`` on the kept rows
    (``m (B, n)``, ``keep (B, 1, n, n)``), identity rows elsewhere. In place, few temporaries."""
    if members.shape[1] == 0:  # in-degree bound 0: every kernel is the constant one
        kernel = factors.new_ones(factors.shape[0], members.shape[0], *factors.shape[2:])
    else:
        kernel = factors.index_select(1, members[:, 0])
    for slot in range(1, members.shape[1]):
        kernel.mul_(factors.index_select(1, members[:, slot]))
    kernel.mul_(signal).add_(mean_var).mul_(keep)
    kernel.diagonal(dim1=-2, dim2=-1).add_((noise * m + (1.0 - m)).unsqueeze(1))
    return kernel


class GPPosterior(torch.nn.Module):
    """Exact edge posterior of a GP additive-noise model (GP local scores + order DP).

    The graph prior (parent-set weights, in-degree bound) is that of an
    :class:`~caasl_envs.reward.exact.ExactLinearGaussianPosterior` held as ``graph_model`` (not
    a subclass: code that plans with a linear posterior must not take this one for one).

    :param max_in_degree: the in-degree bound ``k``.
    :param graph_degree: expected degree of the Erdős–Rényi parent-set prior; ``None``: uniform
        over in-degrees.
    :param hyper: ``"centre"`` or ``"grid"`` (module docstring).
    :param length_scale: ``(low, high)`` range of the RBF length scale.
    :param output_scale: ``(low, high)`` range of the RBF output scale.
    :param noise_std: ``(low, high)`` range of the noise standard deviation.
    :param bias_range: ``(low, high)`` of the uniform bias; its variance is the constant mean's.
    :param max_d: largest accepted number of variables.
    """

    def __init__(
        self,
        max_in_degree: int = 3,
        graph_degree: float | None = 3.0,
        hyper: str = "centre",
        length_scale: tuple[float, float] = (7.0, 10.0),
        output_scale: tuple[float, float] = (10.0, 20.0),
        noise_std: tuple[float, float] = (0.2, 2.0),
        bias_range: tuple[float, float] = (-3.0, 3.0),
        max_d: int = MAX_GP_D,
    ):
        super().__init__()
        self.graph_model = ExactLinearGaussianPosterior(max_in_degree, graph_degree, max_d=max_d)
        if hyper not in HYPERS:
            raise ValueError(f"hyper must be one of {HYPERS}, got {hyper!r}")
        if not isinstance(max_d, int) or not 2 <= max_d <= MAX_EXACT_D:
            raise ValueError(
                f"max_d must be an integer in [2, {MAX_EXACT_D}] (the order DP's range), got {max_d!r}"
            )
        self.hyper, self.max_d = hyper, max_d
        self.length_scale = _range("length_scale", length_scale)
        self.output_scale = _range("output_scale", output_scale)
        self.noise_std = _range("noise_std", noise_std)
        self.bias_range = _range("bias_range", bias_range, positive=False)

    @property
    def mean_var(self) -> float:
        """Variance of the constant mean (of the uniform bias)."""
        return (self.bias_range[1] - self.bias_range[0]) ** 2 / 12.0

    def for_prior(self, prior: object) -> GPPosterior:
        """This scorer matched to an environment's simulator prior: its graph degree and, for an
        RFF prior, its ranges; count-data simulators are refused."""
        if getattr(prior, "action_kind", None) == "target_only" or hasattr(
            prior, "technical_noise"
        ):
            raise ValueError(
                f"reward_model 'exact-gp' models real-valued data; simulator {type(prior).__name__} "
                "produces counts"
            )
        variant = copy.copy(self)
        variant.graph_model = self.graph_model.for_prior(prior)
        if hasattr(prior, "length_scale") and hasattr(prior, "noise_scale"):
            variant.length_scale, variant.output_scale = prior.length_scale, prior.output_scale
            variant.bias_range = prior.bias_range
            low, high = prior.noise_scale
            if prior.mechanism == "heteroscedastic":
                h = prior.noise_output_scale
                low, high = (math.sqrt(math.log1p(math.exp(v))) for v in (-h, h))
            factor = math.sqrt(2.0) if prior.noise == "laplace" else 1.0
            variant.noise_std = (low * factor, high * factor)
        return variant

    def hypers(self) -> torch.Tensor:
        """``(H, 3)`` the ``(l, c, s)`` points the local scores average over."""
        return hyper_points(self.length_scale, self.output_scale, self.noise_std, self.hyper)

    def edge_probs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, n, d, 2)`` history (+ optional ``(B, n)`` bool mask) -> ``(B, d, d)`` ``p(i -> j | D)``."""
        return self.posterior(x, mask)[0].to(x.dtype)

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float64 edge marginals ``(B, d, d)`` and log normaliser ``(B,)``."""
        return order_dp_edge_marginals(*self.local_weights(x, mask))

    def local_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ParentSets]:
        """``log_beta (B, d, P)`` float64 (``log q(Pa) + log p(D_j | D_Pa)``) and the sets."""
        check_history(x, mask)
        d = x.shape[2]
        if d > self.max_d:
            raise ValueError(
                f"the GP scorer supports d <= {self.max_d} variables (cost grows like "
                f"d C(d-1, k) N^3 + d 2^d), got d={d}; use a learned reward model (avici-rff-v0)"
            )
        values = x[..., 0].double()
        valid = torch.ones_like(values) if mask is None else mask.to(values.dtype).unsqueeze(-1)
        valid = valid.expand_as(values)
        self._refuse_counts(values, valid)
        rows = valid * (x[..., 1] == 0).to(values.dtype)
        sets = parent_sets(d, min(self.graph_model.max_in_degree, d - 1))
        scores = gp_local_scores(values * valid, rows, sets, self.hypers(), self.mean_var)
        return scores + self.graph_model._log_prior(sets).to(scores.device), sets

    @staticmethod
    def _refuse_counts(values: torch.Tensor, valid: torch.Tensor) -> None:
        """``ValueError`` when every valid value is a non-negative integer (count data)."""
        real = values[valid > 0]
        if real.numel() >= 8 and bool((real >= 0).all()) and bool((real == real.round()).all()):
            raise ValueError(
                "x: every value is a non-negative integer (count data); the GP scorer 'exact-gp' "
                "models real-valued measurements"
            )
