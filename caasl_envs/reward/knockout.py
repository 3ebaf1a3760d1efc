"""AVICI with a knockout-contrast edge term: a count-data reward model that reads experiments.

An :class:`~caasl_envs.reward.avici.AVICIModel` trained end to end on SERGIO counts learns to
read the wild-type cells (each gene's place in the causal order from its expression level and
dropout rate) but hardly the knockout cells: in the Perturb-seq-like setting
(``caasl/SERGIOPerturbSeq-v0``), ten single-gene knockouts on ten cells each were worth about
nothing to it, although a model-free statistic finds the edges from them (BENCHMARKS.md, "SERGIO:
how much a knockout experiment says about the graph"). The signal is there; the gradient towards
it is small next to what the wild-type cells teach, and the network must first learn to compare
cell groups across the sample axis.

:class:`KnockoutAVICIModel` gives it that comparison directly. For every ordered pair
``(i, j)`` it computes, from the history, how gene ``j`` responds in the cells where ``i`` was
knocked out (and ``j`` was not) against the wild-type cells (:func:`knockout_contrasts`: a
z-score and an effect size of the mean log-normalised expression, the change of ``j``'s dropout
rate, how many cells and how many co-targets that comparison rests on), the same for ``(j, i)``,
and feeds these with AVICI's own logit to a small MLP whose output is added to AVICI's logit::

    logit[i, j] = avici[i, j] + MLP(contrast[i, j], contrast[j, i], avici[i, j])

The MLP's last layer starts at zero, so an untrained head leaves AVICI's probabilities as they
are, and a model can be initialised from plain AVICI weights (``init`` in the trainer). The
whole model is trained end to end with the same loss. Everything is batched tensor code; the
features cost ``O(B n d^2)``, well below the transformer's ``O(B n d (n + d) dim)``.

Files: :meth:`AVICIModel.save` format, with ``contrast_hidden`` in the config;
:func:`load_avici` reads either kind.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from caasl_envs.reward.avici import AVICIModel, _load_payload, _valid_mask

#: features per ordered pair returned by :func:`knockout_contrasts`
N_CONTRASTS = 6
_CLAMP = 8.0  # z-scores and effect sizes are clipped to +-_CLAMP (a knocked-out gene reads 0)
_MIN_STD = 0.05  # floor of a gene's wild-type std of log-normalised expression


def log_normalised(counts: torch.Tensor) -> torch.Tensor:
    """``log1p`` of counts scaled to 10^4 per cell (library-size normalisation):
    ``(B, n, d) -> (B, n, d)``; all-zero cells stay 0."""
    total = counts.sum(-1, keepdim=True)
    return torch.log1p(counts / torch.where(total > 0, total, torch.ones_like(total)) * 1e4)


def knockout_contrasts(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """How each gene responds to each knockout, against the wild-type cells.

    For the pair ``(i, j)`` the compared cells are the valid cells with ``i`` a target and ``j``
    not (``c_ij`` of them) and the valid wild-type cells (no target, ``n_w``). Features, in order:

    0. ``z_ij = (m_ij - mu_j) / (s_j sqrt(1/c_ij + 1/n_w))`` of the mean log-normalised
       expression (:func:`log_normalised`), clipped to ``+-8``;
    1. the effect size ``(m_ij - mu_j) / s_j``, clipped;
    2. the change of ``j``'s zero (dropout) rate, ``p0_ij - p0_j``;
    3. ``log1p(c_ij)``;
    4. whether ``c_ij > 0``;
    5. the mean number of other targets in those cells (a multi-gene knockout moves more).

    All features are 0 where ``c_ij = 0`` (and on the diagonal).

    :param x: ``(B, n, d, 2)`` raw history (counts, target flags).
    :param valid: ``(B, n)`` bool, valid rows.
    :return: ``(B, d, d, N_CONTRASTS)`` in ``x``'s dtype.
    """
    counts = x[..., 0]
    rows = valid.unsqueeze(-1).to(x.dtype)
    targets = (x[..., 1] > 0).to(x.dtype) * rows  # (B, n, d)
    expression = log_normalised(counts)
    zero = (counts <= 0).to(x.dtype)
    wild = rows * (targets.sum(-1, keepdim=True) == 0).to(x.dtype)  # (B, n, 1)
    n_wild = wild.sum(1).clamp(min=1.0)  # (B, 1)
    mean_w = (expression * wild).sum(1) / n_wild  # (B, d)
    var_w = ((expression - mean_w.unsqueeze(1)).square() * wild).sum(1) / n_wild
    std_w = var_w.sqrt().clamp(min=_MIN_STD)
    zero_w = (zero * wild).sum(1) / n_wild
    # cells with i a target and j not: weights T[r, i] * (1 - T[r, j]) on valid rows
    untargeted = rows - targets  # (B, n, d): valid and not a target
    cells = torch.einsum("bri,brj->bij", targets, untargeted)  # (B, d, d): c_ij
    safe = cells.clamp(min=1.0)
    mean_ko = torch.einsum("bri,brj->bij", targets, untargeted * expression) / safe
    zero_ko = torch.einsum("bri,brj->bij", targets, untargeted * zero) / safe
    others = targets.sum(-1, keepdim=True) - 1.0  # (B, n, 1): other targets of the cell
    co_targets = torch.einsum("bri,brj->bij", targets * others, untargeted) / safe
    shift = (mean_ko - mean_w.unsqueeze(1)) / std_w.unsqueeze(1)
    scale = (1.0 / safe + 1.0 / n_wild.unsqueeze(-1)).sqrt()
    tested = (cells > 0).to(x.dtype)
    features = torch.stack(
        [
            (shift / scale).clamp(-_CLAMP, _CLAMP),
            shift.clamp(-_CLAMP, _CLAMP),
            zero_ko - zero_w.unsqueeze(1),
            torch.log1p(cells),
            tested,
            co_targets,
        ],
        dim=-1,
    )
    return features * tested.unsqueeze(-1)


class KnockoutAVICIModel(AVICIModel):
    """:class:`AVICIModel` plus a knockout-contrast edge term (module docstring):
    ``(B, n, d, 2) -> (B, d, d)`` logits.

    :param contrast_hidden: width of the two hidden layers of the contrast MLP.
    :param avici_kwargs: :class:`AVICIModel` keyword arguments (``expects_counts=True`` for
        count data).
    """

    def __init__(self, contrast_hidden: int = 32, **avici_kwargs):
        super().__init__(**avici_kwargs)
        if int(contrast_hidden) < 1:
            raise ValueError(f"contrast_hidden must be a positive integer, got {contrast_hidden}")
        self.config["contrast_hidden"] = int(contrast_hidden)
        self.contrast = nn.Sequential(
            nn.Linear(2 * N_CONTRASTS + 1, contrast_hidden),
            nn.ReLU(),
            nn.Linear(contrast_hidden, contrast_hidden),
            nn.ReLU(),
            nn.Linear(contrast_hidden, 1),
        )
        nn.init.zeros_(self.contrast[-1].weight)
        nn.init.zeros_(self.contrast[-1].bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Edge logits ``(B, d, d)`` from a raw history ``(B, n, d, 2)`` (optional ``(B, n)``
        mask): AVICI's logits plus the contrast MLP's correction."""
        avici = super().forward(x, mask)  # checks x and mask
        features = knockout_contrasts(x, _valid_mask(x, mask))  # (B, d, d, F)
        pair = torch.cat(
            [features, features.transpose(1, 2), avici.unsqueeze(-1).to(features.dtype)], dim=-1
        )
        return avici + self.contrast(pair.to(avici.dtype)).squeeze(-1)


def _model_class(config: dict) -> type[AVICIModel]:
    """:class:`KnockoutAVICIModel` when ``config`` has ``contrast_hidden``, else
    :class:`AVICIModel`."""
    return KnockoutAVICIModel if "contrast_hidden" in config else AVICIModel


def build_avici(config: dict) -> AVICIModel:
    """The model a saved ``config`` describes (see :func:`_model_class`)."""
    return _model_class(config)(**config)


def load_avici(path: str | Path, device: str | torch.device = "cpu") -> AVICIModel:
    """:meth:`AVICIModel.load` for either kind of file (see :func:`_model_class`)."""
    payload = _load_payload(path, device)
    return _model_class(payload["config"]).from_payload(payload, path, device)


def load_avici_part(model: AVICIModel, source: AVICIModel, where: str) -> None:
    """Copy ``source``'s weights into ``model``: all of them when the configs match, or the
    AVICI part of a :class:`KnockoutAVICIModel` from a plain AVICI of the same architecture
    (the contrast head keeps its initialisation). ``ValueError`` naming ``where`` otherwise."""
    own, theirs = dict(model.config), dict(source.config)
    head_only = isinstance(model, KnockoutAVICIModel) and "contrast_hidden" not in theirs
    if head_only:
        own.pop("contrast_hidden")
    if own != theirs:
        raise ValueError(
            f"init: {where} has architecture {theirs}, the run asks for {dict(model.config)}: "
            "pass the same --dim/--layers/--heads/--key-size"
        )
    model.load_state_dict(source.state_dict(), strict=not head_only)
