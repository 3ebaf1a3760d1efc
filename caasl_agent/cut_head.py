"""The cut head: multi-target designs as cuts of the graph's uncertain edges.

One experiment ``do(X_S = v)`` on a target set ``S`` tells about an edge ``j -> k`` mostly when
``j`` is a target and ``k`` is not: ``k``'s response to the set value of ``j`` is then observed,
while the targets' own mechanisms are cut (a row says nothing about the edges *into* a target)
and a pair of non-targets only sees an observational row. A good target set is therefore a
*directed cut* ``(S, not S)`` that crosses many uncertain edges, and a good sequence of
experiments crosses each uncertain edge in several of them. The greedy batch EIG planner
``eig-batch`` picks such sets (it adds ~45 % of the variables with values ``+-1``); the cut head
makes the rule a small, trainable energy over target sets

``F(S) = lambda * [ sum_{j in S, k not in S} W_jk + sum_{j in S} u_j ]``,

``W_jk = H(P_jk) / (1 + c n_jk) * exp(phi_jk)``, where ``P (B, d, d)`` are the edge
probabilities of the belief channel (``P[b, j, k]`` of ``j -> k``), ``H`` the Bernoulli
entropy, ``n_jk`` the number of earlier rows in which ``j`` was a target and ``k`` was not
(read from the history's intervention indicators), ``c > 0`` a learned discount, and
``phi_jk`` (per pair) and ``u_j`` (per variable) small MLPs of the pair's and the variable's
features whose last layers start at zero: the untrained head *is* the hand rule above.

The gain of adding ``j`` to ``S``, ``g_j(S) = F(S + j) - F(S - j)``, is
``lambda * [ sum_k W_jk (1 - s_k) - sum_i W_ij s_i + u_j ]``: everything is ``O(d^2)`` batched
tensor algebra, for any ``d``, and permuting the variables permutes the gains.

* **Training** (imitation of a teacher's target sets ``S*``): the pseudo-likelihood of
  ``S*`` under ``P(S) ~ exp(F(S))``, a logistic loss of ``g_j(S* - j)`` against ``j in S*``
  for every ``j`` (:func:`pseudo_likelihood_loss`); ``lambda`` learns how sharp the teacher's
  choices are.
* **Acting**: mean-field decoding from ``q = 1/2`` (:meth:`CutEnergy.decode`) gives each
  variable's gain given the others' (soft) membership; the actor's target means are these
  gains, so the deterministic design is the mean-field cut and a sampled design flips the
  variables whose gain is near 0. Exact ties (a flat belief) are broken by each variable's
  own data (:data:`TIE_BREAK`).
* **Values**: every target gets ``+-1``; the sign either alternates with each intervention on
  the variable (:func:`alternating_signs`) or makes the targets' values jointly atypical of
  the data (:func:`atypical_signs`): positively correlated targets get opposite signs
  (``metric="correlation"``), or the targets' values are as far as ``+-1`` values can be from
  the data in Mahalanobis distance (``metric="mahalanobis"``, which also weighs indirect
  correlations).
"""

from __future__ import annotations

import torch
from torch import nn

from caasl_envs.inference import standardize_real

__all__ = [
    "CUT_NODE_FEATURES",
    "CUT_PAIR_FEATURES",
    "CutEnergy",
    "SIGN_METRICS",
    "alternating_signs",
    "atypical_signs",
    "bernoulli_entropy",
    "data_correlation",
    "edge_counts",
    "pseudo_likelihood_loss",
    "sign_coupling",
    "targeted_rows",
    "valid_sums",
]

#: Per-pair features read by ``phi``: ``P_jk, P_kj, H(P_jk), H(P_kj), log1p n_jk, log1p n_kj``.
CUT_PAIR_FEATURES = 6
#: Per-variable features read by ``u``: expected out-/in-degree, summed out-/in-entropy,
#: ``log1p`` of the variable's earlier interventions, and the fraction of rows it was a target.
CUT_NODE_FEATURES = 6
#: Mean-field iterations of :meth:`CutEnergy.decode` and their damping.
DECODE_ITERATIONS = 30
DECODE_DAMPING = 0.5
#: Coordinate-descent sweeps of :func:`atypical_signs`.
ATYPICAL_SWEEPS = 3
#: The metrics of :func:`atypical_signs`.
SIGN_METRICS = ("correlation", "mahalanobis")
#: Ridge added to the targets' correlation matrix before :func:`atypical_signs` inverts it.
MAHALANOBIS_RIDGE = 1e-2
#: A flip of the local search of :meth:`CutEnergy.decode` must raise ``F`` by more than this.
LOCAL_SEARCH_TOLERANCE = 1e-6
#: Breaks exact ties between variables with each variable's own data (``TIE_BREAK`` times the
#: sign of the sum of its valid values): a flat belief (``constant-prior``) and no intervention
#: yet make every gain exactly 0, and a deterministic design would then intervene on nothing,
#: forever. Far below the gains any informative belief gives.
TIE_BREAK = 1e-5


def targeted_rows(history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, N, d)``: 1 where a valid row of ``history (B, N, d, 2)`` (channel 1: intervention
    indicator; ``mask (B, N)``) has the variable as a target, else 0."""
    return ((history[..., 1] > 0) & (mask > 0)[..., None]).to(history.dtype)


def valid_sums(history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, d)`` each variable's sum of its values over the valid rows of ``history (B, N, d,
    2)``: a label-free quantity that breaks exact ties (:data:`TIE_BREAK`, the sign order of
    :func:`atypical_signs`)."""
    return (history[..., 0] * (mask > 0).to(history.dtype)[..., None]).sum(1)


def edge_counts(
    history: torch.Tensor, mask: torch.Tensor, targeted: torch.Tensor | None = None
) -> torch.Tensor:
    """``history (B, N, d, 2)``, ``mask (B, N)`` -> ``n (B, d, d)``: the number of valid rows
    in which ``j`` was a target and ``k`` was not (``targeted``: :func:`targeted_rows`, if the
    caller has it already)."""
    if targeted is None:
        targeted = targeted_rows(history, mask)
    observed = (mask > 0).to(history.dtype)[..., None] - targeted
    return torch.bmm(targeted.transpose(1, 2), observed)


def alternating_signs(
    history: torch.Tensor, mask: torch.Tensor, targeted: torch.Tensor | None = None
) -> torch.Tensor:
    """``+1`` for a variable intervened on an even number of times in the valid rows of
    ``history (B, N, d, 2)``, ``-1`` otherwise: ``(B, d)`` (``targeted``: :func:`targeted_rows`,
    if the caller has it already). The values of a variable's
    interventions alternate in sign, deterministically. On validation environments (100, the
    hand rule's targets) this is level with random signs (-0.17 [-0.72, 0.37] expected correct
    entries with do-interventions, +0.22 [-0.28, 0.73] with shifts), while one fixed sign for
    every value costs 1.25 [0.46, 2.04]."""
    if targeted is None:
        targeted = targeted_rows(history, mask)
    return 1.0 - 2.0 * (targeted.sum(1) % 2)


def data_correlation(history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, d, d)`` Pearson correlations of the variables over the valid rows of ``history
    (B, N, d, 2)`` (``mask (B, N)``), interventional rows included."""
    valid = mask > 0
    z = standardize_real(history[..., 0], valid)
    count = valid.sum(1).clamp(min=1).to(z.dtype)
    corr = torch.bmm(z.transpose(1, 2), z) / count[:, None, None]
    return 0.5 * (corr + corr.transpose(1, 2))  # exactly symmetric, whatever the summation order


def _coupling_order(key: torch.Tensor, tie_key: torch.Tensor) -> torch.Tensor:
    """``(B, d)`` the variables by decreasing ``key (B, d)``, exact ties (a pair of targets has
    the same ``|C_ij|``) by decreasing ``tie_key (B, d)`` (:func:`valid_sums`), so that the
    order does not depend on the variables' labels."""
    by_data = tie_key.argsort(dim=1, descending=True, stable=True)
    by_key = key.gather(1, by_data).argsort(dim=1, descending=True, stable=True)
    return by_data.gather(1, by_key)


def sign_coupling(
    history: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, metric: str = "correlation"
) -> torch.Tensor:
    """``(B, d, d)`` the matrix ``A`` whose ``sum_{i != j} A_ij v_i v_j`` (zero diagonal, zero
    outside the targets ``(B, d)`` bool) :func:`atypical_signs` minimises: the history's
    :func:`data_correlation` ``C``, or with ``metric="mahalanobis"`` minus the inverse of the
    targets' block of ``C`` (plus :data:`MAHALANOBIS_RIDGE`), so that minimising it maximises
    the Mahalanobis distance ``v^T C_SS^-1 v`` of the targets' values from the data."""
    if metric not in SIGN_METRICS:
        raise ValueError(f"metric must be one of {SIGN_METRICS}, got {metric!r}")
    d = history.shape[2]
    pairs = targets[:, :, None] & targets[:, None, :]
    eye = torch.eye(d, dtype=torch.bool, device=history.device)
    corr = data_correlation(history, mask)
    if metric == "mahalanobis":  # the targets' block, the identity elsewhere: block inverse
        block = torch.where(pairs, corr, eye.to(corr.dtype))
        block.diagonal(dim1=1, dim2=2).add_(MAHALANOBIS_RIDGE)
        corr = torch.cholesky_inverse(torch.linalg.cholesky(block)).neg_()  # symmetric
    return torch.where(pairs & ~eye, corr, 0.0)


def atypical_signs(
    history: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor,
    start: torch.Tensor,
    metric: str = "correlation",
    tie_key: torch.Tensor | None = None,
) -> torch.Tensor:
    """Signs ``(B, d)`` of the targets' values that make them jointly atypical of the data:
    ``v`` in ``{-1, +1}`` minimising ``sum_{i != j, both targets} A_ij v_i v_j``
    (:func:`sign_coupling`). With ``metric="correlation"`` ``A`` is the history's
    :func:`data_correlation`, so that positively correlated targets get opposite signs and
    negatively correlated ones the same sign (a configuration the system rarely shows on its
    own, whose outcome tells more about the edges around it); with ``"mahalanobis"`` the
    targets' values are as far from the data as ``+-1`` values can be, ``v^T C_SS^-1 v``.

    :data:`ATYPICAL_SWEEPS` sweeps of coordinate descent (each update can only lower the
    objective), from ``start (B, d)`` (e.g. :func:`alternating_signs`), visiting the variables
    of each environment from the most to the least coupled (``sum_j |A_ij|`` over the
    targets; ties by ``tie_key (B, d)``, default :func:`valid_sums`, the variable's data), so
    that relabelling the variables relabels the signs, and stopping early at a sweep that
    changes nothing; a variable whose field is exactly 0, and every non-target (``targets (B,
    d)`` bool), keeps its start sign. ``O(d^2)`` per sweep, batched over environments. Why and
    how much it helps: the model cards of ``caasl-linear-cut-v1`` (correlation) and
    ``caasl-linear-cut-v2`` (Mahalanobis)."""
    d = history.shape[2]
    coupling = sign_coupling(history, mask, targets, metric)
    key = coupling.abs().sum(2)
    if tie_key is None:
        tie_key = valid_sums(history, mask)
    order = _coupling_order(key, tie_key)  # (B, d): position -> variable
    coupled = int((key > 0).sum(1).max())  # the rest (non-targets, isolated targets) keep start
    opposed = -coupling.gather(1, order[:, :coupled, None].expand(-1, -1, d))
    opposed = opposed.gather(2, order[:, None, :].expand(-1, coupled, -1))  # (B, m, d) ordered
    start = start.gather(1, order)
    signs = start.clone()
    rows, columns = opposed.unbind(1), signs.unbind(1)  # views: the loop writes into signs
    for _ in range(ATYPICAL_SWEEPS):
        before = signs.clone()
        for row, column in zip(rows, columns):  # a zero field gives 0, restored to start below
            torch.sign(torch.linalg.vecdot(row, signs), out=column)
        if torch.equal(signs, before):
            break
    signs = torch.where(signs == 0, start, signs)
    return torch.empty_like(signs).scatter_(1, order, signs)


def bernoulli_entropy(p: torch.Tensor) -> torch.Tensor:
    """Elementwise entropy (nats) of Bernoulli(p), in ``p``'s dtype; 0 at p in {0, 1}."""
    p = p.clamp(0.0, 1.0)
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))


def _zero_last(mlp: nn.Sequential) -> nn.Sequential:
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


def _contributes(mlp: nn.Sequential) -> bool:
    """Whether ``mlp``'s output can be other than 0 or needs a gradient: an MLP whose last layer
    is all zero (the untrained head, :func:`_zero_last`) outputs exactly 0, and skipping it
    where no gradient is wanted saves a design ~25 small tensor operations (bit-identical)."""
    last = mlp[-1]
    if torch.is_grad_enabled() and last.weight.requires_grad:
        return True
    return bool(last.weight.any() or last.bias.any())


def _pair_features(p: torch.Tensor, h: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """``(B, d, d, CUT_PAIR_FEATURES)`` from the edge probabilities ``p``, their entropies ``h``
    and the edge counts ``n`` (each ``(B, d, d)``)."""
    pt, ht, nt = p.transpose(1, 2), h.transpose(1, 2), n.transpose(1, 2)
    return torch.stack([p, pt, h, ht, n.log1p(), nt.log1p()], -1)


def _node_features(
    p: torch.Tensor, h: torch.Tensor, targeted: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``(B, d, CUT_NODE_FEATURES)`` from ``p``, ``h (B, d, d)``, the history's
    :func:`targeted_rows` ``(B, N, d)`` and ``mask (B, N)``."""
    rows = (mask > 0).sum(1, keepdim=True).clamp(min=1).to(p.dtype)
    interventions = targeted.sum(1)
    per_variable = [p.sum(2), p.sum(1), h.sum(2), h.sum(1)]
    return torch.stack([*per_variable, interventions.log1p(), interventions / rows], -1)


class CutEnergy(nn.Module):
    """The energy ``F`` of the module docstring: pair weights ``W (B, d, d)``, unary ``u (B, d)``
    and the inverse temperature ``lambda``, from the belief and the history.

    :param hidden: width of the ``phi`` and ``u`` MLPs.
    :param discount: initial ``c`` of the repeat discount.
    :param sharpness: initial ``lambda``.
    :param local_search: let :meth:`decode` improve the mean-field cut by single flips.
    :param iterations: mean-field iterations (default :data:`DECODE_ITERATIONS`); with
        ``local_search`` fewer suffice (10 give the 30 iterations' set in ~99 % of histories).
    """

    def __init__(
        self,
        hidden: int = 16,
        discount: float = 1.0,
        sharpness: float = 10.0,
        local_search: bool = False,
        iterations: int | None = None,
    ):
        super().__init__()
        if not isinstance(local_search, bool):
            raise TypeError(f"local_search must be a bool, got {local_search!r}")
        if iterations is not None and (not isinstance(iterations, int) or iterations < 1):
            raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
        self.local_search, self.iterations = local_search, iterations
        self.log_discount = nn.Parameter(torch.tensor(float(discount)).log())
        self.log_sharpness = nn.Parameter(torch.tensor(float(sharpness)).log())
        self.phi = _zero_last(
            nn.Sequential(nn.Linear(CUT_PAIR_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        )
        self.unary = _zero_last(
            nn.Sequential(nn.Linear(CUT_NODE_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        )

    def forward(
        self,
        belief: torch.Tensor,
        history: torch.Tensor,
        mask: torch.Tensor,
        tie_key: torch.Tensor | None = None,
        targeted: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``belief (B, d, d)``, ``history (B, N, d, 2)``, ``mask (B, N)`` -> ``lambda W (B, d,
        d)`` (zero diagonal) and ``lambda u (B, d)``; ``tie_key (B, d)``: :func:`valid_sums`
        of the history, if the caller has it (it breaks exact ties, :data:`TIE_BREAK`);
        ``targeted (B, N, d)``: its :func:`targeted_rows`, likewise."""
        p = belief.to(history.dtype)
        h = bernoulli_entropy(p)
        if targeted is None:
            targeted = targeted_rows(history, mask)
        n = edge_counts(history, mask, targeted)
        weights = h / (1.0 + self.log_discount.exp() * n)
        if _contributes(self.phi):
            weights = weights * self.phi(_pair_features(p, h, n))[..., 0].exp()
        weights.diagonal(dim1=1, dim2=2).zero_()
        if tie_key is None:
            tie_key = valid_sums(history, mask)
        unary = TIE_BREAK * torch.sign(tie_key)
        if _contributes(self.unary):
            unary = self.unary(_node_features(p, h, targeted, mask))[..., 0] + unary
        sharpness = self.log_sharpness.exp()
        return sharpness * weights, sharpness * unary

    @staticmethod
    def gains(weights: torch.Tensor, unary: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """Gains ``g (B, d)`` of adding each variable given the (soft) membership ``member (B,
        d)`` of the others: ``g_j = sum_k W_jk (1 - q_k) - sum_i W_ij q_i + u_j``, computed as
        ``r_j + u_j - sum_k (W_jk + W_kj) q_k`` with ``r_j = sum_k W_jk`` (the diagonal of
        ``weights`` is 0, so ``member_j`` does not enter ``g_j``)."""
        base, coupling = CutEnergy._linear_form(weights, unary)
        return base - torch.bmm(coupling, member[..., None])[..., 0]

    @staticmethod
    def _linear_form(
        weights: torch.Tensor, unary: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The gains as an affine map of the membership: ``r + u (B, d)`` and ``W + W^T``."""
        return weights.sum(2) + unary, weights + weights.transpose(1, 2)

    def decode(
        self, weights: torch.Tensor, unary: torch.Tensor, tie_key: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The gains ``(B, d)`` of the decoded cut: :meth:`mean_field`, then with
        ``local_search`` :meth:`improve`, which needs ``tie_key (B, d)`` (:func:`valid_sums`)."""
        gains = self.mean_field(weights, unary)
        if not self.local_search:
            return gains
        if tie_key is None:
            raise ValueError("the local search needs a tie_key (e.g. valid_sums of the history)")
        return self.improve(weights, unary, gains > 0, tie_key)

    @classmethod
    def improve(
        cls,
        weights: torch.Tensor,
        unary: torch.Tensor,
        member: torch.Tensor,
        tie_key: torch.Tensor,
    ) -> torch.Tensor:
        """Best-improvement local search on ``F`` from the set ``member (B, d)`` bool: in each
        environment, flip the variable whose flip raises ``F`` most (the first by decreasing
        ``tie_key (B, d)`` among equal ones, so that the result does not depend on the labels),
        until no flip raises it by more than :data:`LOCAL_SEARCH_TOLERANCE` anywhere; the gains
        ``(B, d)`` at the final sets, positive exactly on them (up to the tolerance). ``F`` rises at every flip, so it ends
        in at most as many rounds as there are sets; batched over environments."""
        base, coupling = cls._linear_form(weights, unary)
        # search in the key's order, where max's first maximum is the tie rule
        order = tie_key.argsort(dim=1, descending=True, stable=True)
        base, member = base.gather(1, order), member.gather(1, order)
        rows = order[:, :, None].expand_as(coupling)
        coupling = coupling.gather(1, rows).gather(2, rows.transpose(1, 2))
        # In signs t = 1 - 2 member: gains = base - coupling member = half + coupling t / 2,
        # and flipping j changes F by gains_j * t_j.
        half = base - 0.5 * coupling.sum(2)
        signs = 1.0 - 2.0 * member.to(base.dtype)[..., None]
        while True:
            gains = torch.baddbmm(half[..., None], coupling, signs, alpha=0.5)
            rise, best = (gains * signs).max(1)  # the best flip's F change, (B, 1)
            flip = rise > LOCAL_SEARCH_TOLERANCE
            if not flip.any():
                break
            best = best[..., None]
            flipped = signs.gather(1, best) * torch.where(flip, -1.0, 1.0)[..., None]
            signs = signs.scatter(1, best, flipped)
        gains = gains[..., 0]
        return torch.empty_like(gains).scatter_(1, order, gains)

    def mean_field(self, weights: torch.Tensor, unary: torch.Tensor) -> torch.Tensor:
        """Damped mean-field from ``q = 1/2``: the gains ``(B, d)`` at the mean of its last
        two iterates. Where the iteration converges that is its fixed point; where the
        coupling is strong and flat (many uncertain edges of similar weight: observational
        histories, a blurry belief, large d) the cut's synchronous updates swing between
        (almost) every variable and (almost) none, and the mean of the two phases is the
        middle, where ``g_j`` is about ``(sum_k W_jk - sum_i W_ij) / 2``: the variables whose
        outgoing edges are more uncertain than their incoming ones."""
        base, coupling = self._linear_form(weights, unary)
        member = torch.full_like(unary, 0.5)[..., None]
        previous, column = member, base[..., None]
        # A 0-d damping tensor and bmm rather than a Python scalar and matmul: at d ~ 10 their
        # dispatch costs more than the arithmetic (same results, bit for bit).
        damping = unary.new_tensor(DECODE_DAMPING)
        for _ in range(DECODE_ITERATIONS if self.iterations is None else self.iterations):
            step = torch.sigmoid(column - torch.bmm(coupling, member))
            previous, member = member, torch.add(member * damping, step, alpha=1 - DECODE_DAMPING)
        return base - torch.bmm(coupling, 0.5 * (member + previous))[..., 0]


def pseudo_likelihood_loss(
    weights: torch.Tensor, unary: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative log pseudo-likelihood (mean over variables) of the teacher's target sets
    ``targets (B, d)`` bool under ``P(S) ~ exp(F(S))``; parts: ``target_bce`` and
    ``target_accuracy`` (how often the sign of ``g_j(S* - j)`` agrees with ``j in S*``)."""
    y = targets.to(weights.dtype)
    logits = CutEnergy.gains(weights, unary, y)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
    accuracy = ((logits > 0) == targets).float().mean()
    return loss, {"target_bce": loss.item(), "target_accuracy": accuracy.item()}
