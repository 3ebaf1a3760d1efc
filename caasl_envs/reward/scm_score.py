"""Local scores under the linear environments' own parameter prior, batched over environments.

The linear environments (docs/design.md §3, :class:`~caasl_envs.scm.LinearSCMPrior` with its defaults)
draw, for a variable ``j`` with parent set ``Pa`` of size ``l``,

``x_j = sum_{i in Pa} w_i x_i + sigma eps``, ``w ~ N(0, I / l)``, ``tau = 1 / sigma^2 ~
Gamma(shape a = 10, rate r = 1)``, ``eps ~ N(0, 1)``, zero bias.

Given the parents' values ``X (N, l)`` in the ``N`` rows that enter ``j``'s score, ``y = x_j``
is Gaussian with covariance ``I / tau + X X^T / l``; with ``G = X^T X = V diag(lambda) V^T`` and
``c = V^T X^T y`` that likelihood is

``log p(y | X, tau) = N/2 log(tau / 2 pi) - 1/2 sum_i log(1 + tau lambda_i / l)
- tau/2 (y^T y - sum_i tau c_i^2 / (l + tau lambda_i))``,

so after one small eigendecomposition per (variable, parent set) every ``tau`` costs ``O(l)``.
The integral over ``tau`` has no closed form (the weight prior does not scale with the noise
variance, so the model is not conjugate); it is a trapezoid rule in ``log tau`` from ``1e-3``
to ``20`` times the prior mean. In ``log tau`` the integrand is a smooth bump (log-gamma-like)
of width at least ``s = (N/2 + a + l)^(-1/2)``, on which the trapezoid rule converges
exponentially in ``s / h``: the step ``h = 0.6 s`` agrees with adaptive quadrature to ~1e-14
(``0.9 s``: ~1e-9). Data far off the environments' scale (noise variances outside that range)
are not covered by the grid.
"""

from __future__ import annotations

import math

import torch

from caasl_envs.reward.bge import ParentSets


def linear_scm_local_scores(
    values: torch.Tensor,
    rows: torch.Tensor,
    sets: ParentSets,
    noise_shape: float = 10.0,
    noise_rate: float = 1.0,
    step_factor: float = 0.6,
) -> torch.Tensor:
    """Exact (up to quadrature) log marginal likelihoods under the environments' linear prior.

    :param values: ``(B, n, d)`` float64 raw data (not standardised: the prior has a scale).
    :param rows: ``(B, n, d)`` float64 0/1, ``rows[b, r, j] = 1`` iff row ``r`` enters ``j``'s
        local score (valid and ``j`` not intervened on).
    :param sets: the candidate parent sets (``sets.d == d``).
    :param noise_shape: shape ``a`` of the Gamma prior on the noise precision.
    :param noise_rate: rate ``r`` of the Gamma prior on the noise precision.
    :param step_factor: trapezoid step in ``log tau`` over the narrowest integrand's width ``s``.
    :return: ``(B, d, P)`` float64, ``out[b, j, p] = log p(D_j | D_Pa)`` for set ``p`` of ``j``.
    """
    if noise_shape <= 0 or noise_rate <= 0:
        raise ValueError(
            f"noise prior needs shape > 0 and rate > 0, got {noise_shape}, {noise_rate}"
        )
    b, _, d = values.shape
    k = sets.k
    dev, dt = values.device, values.dtype
    count = rows.sum(1)  # (B, d)
    # Uncentred second moments over each variable's rows (the prior mean and bias are zero);
    # padded set slots address an all-zero block: eigenvalue 0, no contribution.
    second = torch.zeros(b, d, d + k, d + k, dtype=dt, device=dev)
    second[:, :, :d, :d] = torch.einsum("bnj,bni,bnl->bjil", rows, values, values)

    mean = noise_shape / noise_rate
    low, high = math.log(mean * 1e-3), math.log(mean * 20.0)
    width = (count.max().item() / 2.0 + noise_shape + k) ** -0.5
    grid_size = math.ceil((high - low) / (step_factor * width)) + 1
    u = torch.linspace(low, high, grid_size, dtype=dt, device=dev)
    tau = u.exp()
    trapezoid = torch.full_like(u, math.log(u[1].item() - u[0].item()))
    trapezoid[[0, -1]] -= math.log(2.0)
    log_prior = (
        noise_shape * math.log(noise_rate)
        - math.lgamma(noise_shape)
        + (noise_shape - 1.0) * u
        - noise_rate * tau
    )
    log_weight = trapezoid + log_prior + u  # d tau = tau d(log tau)

    size = sets.size.to(dev, dt).clamp(min=1.0)  # l (1 for the empty set: every term is 0)
    index = sets.index.to(dev)
    t = tau.view(1, 1, -1)
    scores = []
    for j in range(d):
        s = second[:, j]
        gram = s[:, index[j].unsqueeze(-1), index[j].unsqueeze(-2)]  # (B, P, k, k)
        cross = s[:, index[j], j]  # (B, P, k)
        lam, vec = torch.linalg.eigh(gram)
        proj = (vec * cross.unsqueeze(-1)).sum(-2)  # V^T X^T y
        lam = lam.clamp(min=0.0)
        n_pa = size[j].view(1, -1, 1)
        det = torch.ones(b, index.shape[1], grid_size, dtype=dt, device=dev)
        fit = torch.zeros_like(det)
        for i in range(k):
            scaled = t * lam[..., i : i + 1]
            det *= 1.0 + scaled / n_pa  # det(I + tau G / l), one log at the end
            fit += proj[..., i : i + 1] ** 2 * t / (n_pa + scaled)
        logdet = det.log()
        yy = s[:, j, j].view(b, 1, 1)
        n = count[:, j].view(b, 1, 1)
        residual = (yy - fit).clamp(min=0.0)
        loglik = 0.5 * n * (u - math.log(2 * math.pi)) - 0.5 * logdet - 0.5 * t * residual
        scores.append(torch.logsumexp(loglik + log_weight, dim=-1))
    return torch.stack(scores, dim=1)
