"""BGe local scores for linear-Gaussian Bayesian networks, batched over environments.

The BGe score (Geiger & Heckerman 2002, with the correction of Kuipers, Moffa & Heckerman 2014)
is the marginal likelihood of a Gaussian DAG model under a normal-Wishart parameter prior. For a
set ``Y`` of variables observed in ``N`` rows,

``log p(D_Y) = -N|Y|/2 log(pi) + |Y|/2 log(a_mu / (a_mu + N))
+ log Gamma_|Y|((N + a_w - d + |Y|) / 2) - log Gamma_|Y|((a_w - d + |Y|) / 2)
+ (a_w - d + |Y|)/2 log det T_YY - (N + a_w - d + |Y|)/2 log det R_YY``

with ``T = t I``, ``t = a_mu (a_w - d - 1) / (a_mu + 1)``, prior mean ``nu = 0`` and
``R = T + S + N a_mu / (N + a_mu) (xbar - nu)(xbar - nu)^T`` (``S`` the centred scatter matrix).
The local score of variable ``j`` with parents ``Pa`` is
``log p(D_{Pa + j}) - log p(D_Pa)``.

Interventions (Cooper & Yoo 1999): the rows in which ``j`` was intervened on do not follow
``j``'s mechanism, so they are left out of ``j``'s local score (both terms of the difference),
while they still count as ordinary rows in the local scores of every other variable.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ParentSets:
    """All candidate parent sets of every variable: the subsets of the other ``d - 1`` variables
    with at most ``k`` members, the same number ``P = sum_{l<=k} C(d-1, l)`` for each variable.

    :param index: ``(d, P, k)`` long, the members of each set, padded with the distinct dummy
        indices ``d, ..., d + k - 1`` (they address an identity block appended to each matrix).
    :param size: ``(d, P)`` long, the number of members.
    :param bits: ``(d, P)`` long, the set as a bitmask over the ``d`` variables.
    :param member: ``(d, P, d)`` float64, ``member[v, p, u] = 1`` iff ``u`` is in set ``p`` of ``v``.
    """

    d: int
    k: int
    index: torch.Tensor
    size: torch.Tensor
    bits: torch.Tensor
    member: torch.Tensor


@functools.lru_cache(maxsize=64)
def parent_sets(d: int, k: int) -> ParentSets:
    """The :class:`ParentSets` of ``d`` variables with in-degree at most ``k`` (cached, CPU)."""
    if not 0 <= k <= d - 1:
        raise ValueError(f"in-degree bound k must be in [0, d-1] = [0, {d - 1}], got {k}")
    combos = [c for size in range(k + 1) for c in itertools.combinations(range(d - 1), size)]
    index = torch.empty(d, len(combos), k, dtype=torch.long)
    size = torch.empty(d, len(combos), dtype=torch.long)
    bits = torch.zeros(d, len(combos), dtype=torch.long)
    member = torch.zeros(d, len(combos), d, dtype=torch.float64)
    for v in range(d):
        for p, combo in enumerate(combos):
            members = [c if c < v else c + 1 for c in combo]  # skip v itself
            index[v, p] = torch.tensor(
                members + list(range(d, d + k - len(members))), dtype=torch.long
            )
            size[v, p] = len(members)
            bits[v, p] = sum(1 << u for u in members)
            member[v, p, members] = 1.0
    return ParentSets(d, k, index, size, bits, member)


def log_pivots(a: torch.Tensor) -> torch.Tensor:
    """Logs of the Gaussian-elimination pivots of symmetric positive-definite ``(..., m, m)``.

    ``sum(out[..., :i])`` is the log-determinant of the leading ``i x i`` block; the last pivot is
    the Schur complement of the last variable given the others. Unrolled over ``m`` (small) so
    that a huge batch of tiny matrices is a handful of tensor operations.
    """
    logs = []
    for _ in range(a.shape[-1]):
        pivot = a[..., 0, 0]
        logs.append(pivot.log())
        col = a[..., 1:, 0]
        a = a[..., 1:, 1:] - col.unsqueeze(-1) * col.unsqueeze(-2) / pivot[..., None, None]
    return torch.stack(logs, dim=-1)


def bge_posterior_scatter(
    values: torch.Tensor, rows: torch.Tensor, alpha_mu: float = 1.0, alpha_w: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """The normal-Wishart posterior statistics of each variable's rows (prior mean ``nu = 0``).

    :param values: ``(B, n, d)`` float64 data.
    :param rows: ``(B, n, d)`` float64 0/1, the rows that enter each variable's local score.
    :return: ``count (B, d)`` rows of variable ``j``; ``mean (B, d, d)``, ``mean[b, j]`` the mean
        of all ``d`` variables over ``j``'s rows; ``r (B, d, d, d)``, ``r[b, j]`` the posterior
        scatter ``R = T + S + N a_mu / (N + a_mu) xbar xbar^T`` over ``j``'s rows; and ``t``.
    """
    d = values.shape[2]
    if alpha_w is None:
        alpha_w = d + alpha_mu + 1.0
    if alpha_mu <= 0 or alpha_w <= d + 1 - 1e-12:
        raise ValueError(f"BGe needs alpha_mu > 0 and alpha_w > d + 1, got {alpha_mu}, {alpha_w}")
    t = alpha_mu * (alpha_w - d - 1.0) / (alpha_mu + 1.0)
    count = rows.sum(1)
    mean = torch.einsum("bnj,bni->bji", rows, values) / count.clamp(min=1.0).unsqueeze(-1)
    second = torch.einsum("bnj,bni,bnl->bjil", rows, values, values)
    shrink = (count * alpha_mu / (count + alpha_mu)).unsqueeze(-1).unsqueeze(-1)
    scatter = second - count[..., None, None] * mean.unsqueeze(-1) * mean.unsqueeze(-2)
    r = scatter + shrink * mean.unsqueeze(-1) * mean.unsqueeze(-2)  # prior mean nu = 0
    r = r + t * torch.eye(d, dtype=values.dtype, device=values.device)
    return count, mean, r, t


def pad_identity(r: torch.Tensor, k: int) -> torch.Tensor:
    """``(..., m, m)`` -> ``(..., m + k, m + k)`` with an identity block appended, so that the
    padded slots of :class:`ParentSets` (indices ``m .. m + k - 1``) address rows and columns
    uncoupled from the rest (Gaussian-elimination pivots of exactly 1)."""
    m = r.shape[-1]
    out = r.new_zeros(*r.shape[:-2], m + k, m + k)
    out[..., :m, :m] = r
    out[..., m:, m:] = torch.eye(k, dtype=r.dtype, device=r.device)
    return out


def bge_local_scores(
    values: torch.Tensor,
    rows: torch.Tensor,
    sets: ParentSets,
    alpha_mu: float = 1.0,
    alpha_w: float | None = None,
) -> torch.Tensor:
    """BGe local scores of every variable with each of its candidate parent sets.

    :param values: ``(B, n, d)`` float64 data.
    :param rows: ``(B, n, d)`` float64 0/1, ``rows[b, r, j] = 1`` iff row ``r`` enters ``j``'s
        local score (valid and ``j`` not intervened on).
    :param sets: the candidate parent sets (``sets.d == d``).
    :param alpha_mu: prior pseudo-count of the mean.
    :param alpha_w: Wishart degrees of freedom, ``> d - 1`` (default ``d + alpha_mu + 1``).
    :return: ``(B, d, P)`` float64, ``out[b, j, p] = log p(D_j | D_Pa)`` for set ``p`` of ``j``.
    """
    b, _, d = values.shape
    k = sets.k
    if alpha_w is None:
        alpha_w = d + alpha_mu + 1.0
    dev, dt = values.device, values.dtype
    count, _, r, t = bge_posterior_scatter(values, rows, alpha_mu, alpha_w)
    r_aug = pad_identity(r, k)

    size = sets.size.to(dev, dt)  # (d, P)
    n_j = count.unsqueeze(-1)  # (B, d, 1)
    c = alpha_w - d
    log_t = math.log(t)
    const = (
        -0.5 * n_j * math.log(math.pi)
        + 0.5 * (math.log(alpha_mu) - torch.log(n_j + alpha_mu))
        + torch.lgamma((n_j + c + size + 1.0) / 2.0)
        - torch.lgamma(torch.as_tensor((c + size + 1.0) / 2.0))
        + ((c + size + 1.0) * (size + 1.0) - (c + size) * size) / 2.0 * log_t
    )
    index = sets.index.to(dev)
    scores = []
    for j in range(d):
        y = torch.cat(
            [index[j], torch.full((index.shape[1], 1), j, device=dev)], dim=1
        )  # (P, k + 1), j last
        sub = r_aug[:, j][:, y.unsqueeze(-1), y.unsqueeze(-2)]  # (B, P, k + 1, k + 1)
        logs = log_pivots(sub)
        logdet_pa = logs[..., :k].sum(-1)
        log_schur = logs[..., k]
        nj = n_j[:, j]
        scores.append(-0.5 * (nj + c + size[j] + 1.0) * log_schur - 0.5 * logdet_pa)
    return const + torch.stack(scores, dim=1)
