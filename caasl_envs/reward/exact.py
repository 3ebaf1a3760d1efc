"""Exact edge posteriors for linear-Gaussian data: local scores + the order dynamic programme.

:class:`ExactLinearGaussianPosterior` is a reward model that needs no training and is right by
construction (for its prior): ``P[b, i, j] = p(i -> j | data)`` summed exactly over all DAGs
with in-degree at most ``k``, by the dynamic programme over variable orders of Koivisto & Sood
(2004) with the all-edges trick of Koivisto (2006). Cost: ``O(d · sum_{l<=k} C(d-1, l))`` local
scores plus ``O(d² 2^d)`` log-space additions, all batched over environments.

**Prior (order-modular).** ``p(order, G) ∝ prod_j q(Pa_j)`` over pairs of an order and a DAG
consistent with it, each ``|Pa_j| <= k``. Summing out the order gives
``p(G) ∝ (number of orders G is consistent with) · prod_j q(Pa_j)``: not uniform over DAGs —
graphs with fewer constraints on the order (sparser, more "parallel") gain weight. With
``q(Pa) = (p / (1 - p))^|Pa|`` this is *exactly* the environments' Erdős–Rényi prior (a uniform
random order, then every forward pair an edge with probability ``p``; the factor
``(1 - p)^{d(d-1)/2}`` is the same for every order), truncated to in-degree ``k``. With
``graph_degree=None``, ``q(Pa) = 1 / C(d-1, |Pa|)`` (Koivisto & Sood's choice: every in-degree
equally likely).

**Local scores** (``local_score``): ``"bge"`` (default), the BGe marginal likelihood
(:mod:`caasl_envs.reward.bge`, a conjugate normal-Wishart parameter prior, on standardised
data); or ``"linear-scm"``, the marginal likelihood under the linear environments' own
parameter prior (``w ~ N(0, I/|Pa|)``, noise precision ``~ Gamma(10, 1)``, zero bias;
:mod:`caasl_envs.reward.scm_score`) on the raw data: together with the matching Erdős–Rényi
graph prior, the exact posterior of the environments' generative process up to the in-degree
bound (and a 1-D quadrature), so calibrated on them.

**Data.** Rows in which ``j`` was intervened on (channel 1 = 1) are left out of ``j``'s local
score (Cooper & Yoo 1999) — correct for ``do`` interventions, and for shift interventions the
same as modelling the shift: the history does not record the shift value, so each shifted row
of ``j`` has its own unknown mean, and integrating that out under a flat prior leaves the row
nothing to say about ``j``'s mechanism. ``intervened_rows="keep"`` uses every row in every local
score (the purely observational, misspecified model; measured worse for both kinds). With BGe,
each variable is by default standardised with the mean and standard deviation of the rows that
enter its own local score, which makes the posterior invariant to per-variable affine rescaling.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass

import torch

from caasl_envs.reward.base import check_history
from caasl_envs.reward.bge import ParentSets, bge_local_scores, parent_sets
from caasl_envs.reward.scm_score import linear_scm_local_scores

MAX_EXACT_D = 14
INTERVENED_ROWS = ("exclude", "keep")
LOCAL_SCORES = ("bge", "linear-scm")


@dataclass(frozen=True)
class _SubsetIndex:
    """Bitmask bookkeeping of the order DP over ``d`` variables (cached per device).

    The tables of variable ``j`` are indexed by subsets of the other ``d - 1`` variables,
    "compressed" to ``d - 1`` bits (bit ``j`` removed), which halves their size.

    :param expand: ``(d, 2^(d-1))`` full bitmask of each compressed subset of ``j``.
    :param compress: ``(d, 2^d)`` compressed index of each full bitmask (where ``j`` is absent).
    :param layers: per popcount ``s = 0..d``: ``sets (C,)`` full bitmasks; ``inside (d, C)``,
        ``j in sets``; and three flattened ``(d * C,)`` index tensors, variable-major:
        ``flipped`` ``= sets XOR 2^j``, and into a flattened ``(d, 2^(d-1))`` table, ``without``
        (the compressed ``sets minus j`` of ``j``) and ``own`` (the compressed ``sets`` of ``j``).
        Variable-major because torch reduces over a leading axis much faster than over a short
        last one.
    """

    expand: torch.Tensor
    compress: torch.Tensor
    layers: list[tuple[torch.Tensor, ...]]


@functools.lru_cache(maxsize=32)
def _subset_index(d: int, device: torch.device) -> _SubsetIndex:
    masks = torch.arange(1 << d)
    var = torch.arange(d).unsqueeze(1)
    low = (1 << var) - 1
    compress = (masks & low) | ((masks >> (var + 1)) << var)  # drop bit j, shift the rest down
    half = torch.arange(1 << (d - 1))
    expand = (half & low) | ((half >> var) << (var + 1))
    onehot = 1 << torch.arange(d)
    inside = (masks.unsqueeze(1) & onehot) != 0
    popcount = inside.sum(1)
    layers = []
    for s in range(d + 1):
        sets = masks[popcount == s]
        flipped = sets ^ onehot.unsqueeze(1)  # (d, C)
        # Flat indices into a (d, 2^(d-1)) table: one index_select per gather.
        without = compress.gather(1, flipped) + (torch.arange(d) << (d - 1)).unsqueeze(1)
        own = compress[:, sets] + (torch.arange(d) << (d - 1)).unsqueeze(1)
        layers.append(
            (sets, flipped.flatten(), inside[sets].T.contiguous(), without.flatten(), own.flatten())
        )
    layers = [tuple(a.to(device) for a in layer) for layer in layers]
    return _SubsetIndex(expand.to(device), compress.to(device), layers)


def _subset_sum_(t: torch.Tensor, bits: int, upward: bool) -> torch.Tensor:
    """In-place log-space zeta transform over bitmasks on the last axis (length ``2^bits``).

    ``upward=False``: ``t[U] <- logsumexp_{S ⊆ U} t[S]``; ``upward=True``: over ``S ⊇ U``.
    """
    lead = t.shape[:-1]
    for i in range(bits):
        view = t.view(*lead, 1 << (bits - 1 - i), 2, 1 << i)
        low, high = view[..., 0, :], view[..., 1, :]
        torch.logaddexp(low, high, out=low if upward else high)
    return t


def order_dp_forward(log_beta: torch.Tensor, sets: ParentSets) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward half of the order DP.

    :param log_beta: ``(B, d, P)`` float64 weighted local scores (see
        :func:`order_dp_edge_marginals`).
    :return: ``alpha (B, d, 2^(d-1))``, ``alpha[b, j, U] = log sum_{Pa ⊆ U} beta_j(Pa)`` (the
        weight of ``j`` placed right after the set ``U``, compressed to ``d - 1`` bits as in
        :class:`_SubsetIndex`), and ``forward (B, 2^d)``, the log weight of all orders of the
        prefix set ``S`` (``forward[:, 2^d - 1]`` is the log normaliser).
    """
    b, d, _ = log_beta.shape
    dev, dt = log_beta.device, log_beta.dtype
    ninf = torch.tensor(-math.inf, dtype=dt, device=dev)
    index = _subset_index(d, dev)
    var = torch.arange(d, device=dev)
    set_pos = index.compress[var.unsqueeze(1), sets.bits.to(dev)]  # (d, P) compressed parent sets
    alpha = torch.full((b, d, 1 << (d - 1)), -math.inf, dtype=dt, device=dev)
    alpha[:, var.unsqueeze(1), set_pos] = log_beta
    _subset_sum_(alpha, d - 1, upward=False)
    forward = torch.full((b, 1 << d), -math.inf, dtype=dt, device=dev)
    forward[:, 0] = 0.0
    flat_alpha = alpha.view(b, -1)
    for sets_s, flipped, inside, without, _ in index.layers[1:]:
        # (B, d, C): j placed last in S
        cand = (forward.index_select(1, flipped) + flat_alpha.index_select(1, without)).view(
            b, d, -1
        )
        forward[:, sets_s] = torch.where(inside, cand, ninf).logsumexp(1)
    return alpha, forward


def order_dp_edge_marginals(
    log_beta: torch.Tensor, sets: ParentSets
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact edge marginals under the order-modular prior from weighted local scores.

    :param log_beta: ``(B, d, P)`` float64, ``log q(Pa) + log p(D_j | D_Pa)`` for each variable
        ``j`` and each of its candidate parent sets in ``sets``.
    :return: ``probs (B, d, d)`` with ``probs[b, i, j] = p(i -> j | D)``, and ``log_z (B,)``, the
        log of ``sum_{order, G} prod_j beta_j(Pa_j)``.
    """
    b, d, _ = log_beta.shape
    dev, dt = log_beta.device, log_beta.dtype
    full = (1 << d) - 1
    ninf = torch.tensor(-math.inf, dtype=dt, device=dev)
    index = _subset_index(d, dev)
    var = torch.arange(d, device=dev)
    set_pos = index.compress[var.unsqueeze(1), sets.bits.to(dev)]  # (d, P) compressed sets
    alpha, forward = order_dp_forward(log_beta, sets)
    # backward[S]: the log weight of all orders of the suffix V \ S.
    backward = torch.full((b, 1 << d), -math.inf, dtype=dt, device=dev)
    backward[:, full] = 0.0
    expand, layers, flat_alpha = index.expand, index.layers, alpha.view(b, -1)
    for sets_s, flipped, inside, _, own in reversed(layers[:-1]):
        # (B, d, C): j placed first after S
        cand = (backward.index_select(1, flipped) + flat_alpha.index_select(1, own)).view(b, d, -1)
        backward[:, sets_s] = torch.where(inside, ninf, cand).logsumexp(1)
    log_z = forward[:, full]

    # For every j: weight of all (prefix S, suffix) pairs around j, summed over S ⊇ Pa.
    around = forward[:, expand] + backward[:, expand | (1 << var).unsqueeze(1)]  # (B, d, 2^(d-1))
    _subset_sum_(around, d - 1, upward=True)
    log_gamma = log_beta + around.gather(2, set_pos.unsqueeze(0).expand(b, -1, -1))
    weight = (log_gamma - log_z[:, None, None]).exp()  # (B, d, P) posterior of each parent set
    probs = torch.einsum("bjp,jpi->bij", weight, sets.member.to(dev, dt))
    return probs, log_z


class ExactLinearGaussianPosterior(torch.nn.Module):
    """Exact edge posterior of a linear-Gaussian SCM (BGe + order DP), a training-free reward model.

    :param max_in_degree: the in-degree bound ``k`` (``k >= d - 1`` means no bound at that ``d``).
    :param graph_degree: expected degree of the Erdős–Rényi graph prior; the parent-set prior is
        ``q(Pa) = (p / (1 - p))^|Pa|`` with ``p = min(2 · graph_degree / (d - 1), 0.99)`` (the
        environments' prior). ``None``: ``q(Pa) = 1 / C(d-1, |Pa|)``.
    :param local_score: ``"bge"`` or ``"linear-scm"`` (see the module docstring).
    :param alpha_mu: BGe prior pseudo-count of the mean.
    :param alpha_w: BGe Wishart degrees of freedom (default ``d + alpha_mu + 1``).
    :param noise_shape: ``"linear-scm"``: shape of the Gamma prior on the noise precision.
    :param noise_rate: ``"linear-scm"``: rate of the Gamma prior on the noise precision.
    :param standardize: standardise each variable over the rows of its own local score
        (default: yes for BGe; never for ``"linear-scm"``, whose prior has a scale).
    :param intervened_rows: ``"exclude"`` (default, see the module docstring) or ``"keep"``.
    :param max_d: largest accepted number of variables (memory and time grow like ``d 2^d``).
    """

    expects_counts = False

    def __init__(
        self,
        max_in_degree: int = 3,
        graph_degree: float | None = 3.0,
        local_score: str = "bge",
        alpha_mu: float = 1.0,
        alpha_w: float | None = None,
        noise_shape: float = 10.0,
        noise_rate: float = 1.0,
        standardize: bool | None = None,
        intervened_rows: str = "exclude",
        max_d: int = MAX_EXACT_D,
    ):
        super().__init__()
        if not isinstance(max_in_degree, int) or max_in_degree < 0:
            raise ValueError(f"max_in_degree must be an integer >= 0, got {max_in_degree!r}")
        if graph_degree is not None and not graph_degree > 0:
            raise ValueError(f"graph_degree must be > 0 or None, got {graph_degree}")
        if intervened_rows not in INTERVENED_ROWS:
            raise ValueError(
                f"intervened_rows must be one of {INTERVENED_ROWS}, got {intervened_rows!r}"
            )
        if local_score not in LOCAL_SCORES:
            raise ValueError(f"local_score must be one of {LOCAL_SCORES}, got {local_score!r}")
        if local_score == "linear-scm" and standardize:
            raise ValueError(
                "the 'linear-scm' score has a prior on the raw scale: standardize must be off"
            )
        if alpha_mu <= 0:
            raise ValueError(f"alpha_mu must be > 0, got {alpha_mu}")
        if noise_shape <= 0 or noise_rate <= 0:
            raise ValueError(
                f"noise_shape and noise_rate must be > 0, got {noise_shape}, {noise_rate}"
            )
        self.max_in_degree = max_in_degree
        self.graph_degree = graph_degree
        self.local_score = local_score
        self.alpha_mu = alpha_mu
        self.alpha_w = alpha_w
        self.noise_shape = noise_shape
        self.noise_rate = noise_rate
        self.standardize = local_score == "bge" if standardize is None else standardize
        self.intervened_rows = intervened_rows
        self.max_d = max_d

    def for_prior(self, prior: object) -> ExactLinearGaussianPosterior:
        """This posterior with the graph-prior density of an environment's simulator prior.

        Environments call it on the models they load by name, so that ``graph_degree`` follows
        the environment's (an Erdős–Rényi prior of that degree parameter, also for scale-free
        environments, where it is an approximation). ``graph_degree=None`` is kept.
        """
        degree = getattr(prior, "graph_degree", None)
        if degree is None or self.graph_degree is None or degree == self.graph_degree:
            return self
        variant = copy.copy(self)
        variant.graph_degree = float(degree)
        return variant

    def _log_prior(self, sets: ParentSets) -> torch.Tensor:
        """``(d, P)`` float64 log q(Pa)."""
        size = sets.size.double()
        if self.graph_degree is None:
            n = sets.d - 1
            return torch.lgamma(size + 1) + torch.lgamma(n - size + 1) - math.lgamma(n + 1.0)
        p = min(2.0 * self.graph_degree / (sets.d - 1), 0.99)
        return size * math.log(p / (1.0 - p))

    def score_inputs(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The float64 values ``(B, n, d)`` and per-variable row weights ``(B, n, d)`` that enter
        the local scores (standardised values; 1 where a row counts for that variable)."""
        values, valid, rows = self._raw_inputs(x, mask)
        mean, std = self._standardization(values, rows)
        return (values - mean) / std * valid, rows

    def standardization(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float64 ``mean (B, 1, d)`` and ``std (B, 1, d)`` with which :meth:`score_inputs` maps
        raw values ``v`` to ``(v - mean) / std`` (0 and 1 when ``standardize`` is off)."""
        values, _, rows = self._raw_inputs(x, mask)
        return self._standardization(values, rows)

    def _raw_inputs(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw float64 values, valid rows and score rows, each ``(B, n, d)``."""
        values = x[..., 0].double()
        valid = (
            torch.ones_like(values)
            if mask is None
            else mask.to(values.dtype).unsqueeze(-1).expand_as(values)
        )
        rows = (
            valid * (x[..., 1] == 0).to(values.dtype)
            if self.intervened_rows == "exclude"
            else valid
        )
        return values, valid, rows

    def _standardization(
        self, values: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.standardize:
            zero = values.new_zeros(values.shape[0], 1, values.shape[2])
            return zero, torch.ones_like(zero)
        count = rows.sum(1, keepdim=True)
        mean = (rows * values).sum(1, keepdim=True) / count.clamp(min=1.0)
        var = (rows * (values - mean) ** 2).sum(1, keepdim=True) / count.clamp(min=1.0)
        return mean, torch.where(var > 1e-12, var.sqrt(), torch.ones_like(var))

    def edge_probs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, n, d, 2)`` history (+ optional ``(B, n)`` bool mask) -> ``(B, d, d)`` ``p(i -> j | D)``
        (clamped to ``[0, 1]``: the DP's sums can pass 1 by float rounding)."""
        probs, _ = self.posterior(x, mask)
        return probs.clamp(0.0, 1.0).to(x.dtype)

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float64 edge marginals ``(B, d, d)`` and log normaliser ``(B,)`` (the log evidence up to
        the prior's constant)."""
        check_history(x, mask)
        d = x.shape[2]
        if d > self.max_d:
            raise ValueError(
                f"the exact posterior supports d <= {self.max_d} variables (cost grows like d 2^d), "
                f"got d={d}; use a learned reward model for larger graphs"
            )
        return order_dp_edge_marginals(*self.local_weights(x, mask))

    def local_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ParentSets]:
        """``log_beta (B, d, P)`` float64, ``log q(Pa) + log p(D_j | D_Pa)`` for every variable and
        candidate parent set, and those :class:`ParentSets` (the order DP's input)."""
        d = x.shape[2]
        sets = parent_sets(d, min(self.max_in_degree, d - 1))
        values, rows = self.score_inputs(x, mask)
        if self.local_score == "bge":
            scores = bge_local_scores(values, rows, sets, self.alpha_mu, self.alpha_w)
        else:
            scores = linear_scm_local_scores(values, rows, sets, self.noise_shape, self.noise_rate)
        return scores + self._log_prior(sets).to(scores.device), sets
