"""The reward-model protocol and two reference scorers that need no training.

A reward model maps a batch of histories ``x`` of shape ``(B, n, d, 2)`` (channel 0: raw value,
channel 1: 1 where that variable was intervened on in that row) to edge probabilities
``(B, d, d)``, ``P[b, i, j] = p(i -> j | data)``. Any standardisation happens inside the model.
An optional row-validity mask ``(B, n)`` marks padded rows that must be ignored.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from caasl_envs.histories import check_history


@runtime_checkable
class RewardModel(Protocol):
    """Anything with ``edge_probs``; ``expects_counts`` says whether inputs are count data.

    Optional: ``for_prior(prior) -> RewardModel``, a copy matched to an environment's simulator
    prior (e.g. its graph density); environments call it on the models they load by name.
    """

    def edge_probs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, n, d, 2)`` history (+ optional ``(B, n)`` bool mask) -> ``(B, d, d)`` probabilities."""
        ...


class ConstantRewardModel(torch.nn.Module):
    """Ignores the data: every off-diagonal edge has probability ``density``.

    The constant-density prior; also the trivial reward model of the environment benchmark,
    which measures the simulator and the bookkeeping on their own.
    """

    expects_counts = False

    def __init__(self, density: float = 0.3):
        super().__init__()
        if not 0.0 <= density <= 1.0:
            raise ValueError(f"density must be in [0, 1], got {density}")
        self.density = density

    def edge_probs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_history(x, mask)
        b, _, d, _ = x.shape
        eye = torch.eye(d, dtype=torch.bool, device=x.device)
        p = torch.full((b, d, d), self.density, dtype=x.dtype, device=x.device)
        return p.masked_fill(eye, 0.0)


class PartialCorrelationRewardModel(torch.nn.Module):
    """Symmetric |partial correlation| scores on the rows where neither variable was intervened on.

    Not a causal-discovery model (it cannot orient edges); it is the classical baseline that a
    learned reward model must beat. Scores are ``|rho_ij|`` mapped to ``[0, 1]``.
    """

    expects_counts = False

    def __init__(self, ridge: float = 1e-3):
        super().__init__()
        self.ridge = ridge

    def edge_probs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_history(x, mask)
        v = x[..., 0].double()
        keep = (x[..., 1] == 0).double()  # rows not intervened on, per variable
        if mask is not None:
            keep = keep * mask.double().unsqueeze(-1)
        w = keep.unsqueeze(-1) * keep.unsqueeze(-2)  # (B, n, d, d) pairwise usable rows
        cnt = w.sum(1).clamp(min=1.0)
        mean = (w * v.unsqueeze(-1)).sum(1) / cnt  # mean of i over rows usable for (i, j)
        cov = (w * v.unsqueeze(-1) * v.unsqueeze(-2)).sum(1) / cnt - mean * mean.transpose(-1, -2)
        d = v.shape[-1]
        eye = torch.eye(d, dtype=v.dtype, device=v.device)
        prec = torch.linalg.inv(
            cov
            + self.ridge * eye * cov.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
            + 1e-9 * eye
        )
        dg = prec.diagonal(dim1=-2, dim2=-1).clamp(min=1e-12).sqrt()
        rho = -prec / (dg.unsqueeze(-1) * dg.unsqueeze(-2))
        return rho.abs().clamp(0.0, 1.0).masked_fill(eye.bool(), 0.0).to(x.dtype)
