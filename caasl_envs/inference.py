"""Attention kernels and input standardisation shared by AVICI and the policy encoder.

Both :class:`~caasl_envs.reward.avici.AVICIModel` (the reward model) and
:class:`caasl_agent.CAASLEncoder` (the policy's history encoder) are stacks of attention layers
that alternate between the variables and the samples of a padded history ``(B, n, d, ...)``.
This module holds what they share, and imports neither:

* the input standardisation (:func:`standardize_history`: per-variable z-scores of real values,
  AVICI's log2-CPM standardiser of counts; the intervened flag kept; padded rows zero);
* the differentiable attention over either axis (:func:`attention`);
* the inference path without autograd (eval mode under ``torch.no_grad`` /
  ``torch.inference_mode``): attention as two batched matmuls and an in-place softmax that skips
  the row maximum when no score can overflow (:func:`inference_attention`), every intermediate
  in buffers reused from call to call (:class:`InferenceWorkspace`, no page faults), RMS norms
  of a centred residual stream (:func:`rms_normalised`, :func:`centred`), and the batch in
  cache-sized chunks (:func:`inference_chunks`).

Shapes: ``B`` datasets, ``n`` samples, ``d`` variables, ``H`` heads of size ``K``.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "INFERENCE_CHUNK_TOKENS",
    "LN_EPS",
    "InferenceWorkspace",
    "attention",
    "centred",
    "drop_workspaces",
    "inference_attention",
    "inference_chunks",
    "inference_workspace",
    "rms_normalised",
    "standardize_counts",
    "standardize_history",
    "standardize_real",
]

LN_EPS = 1e-5
"""The ``eps`` of every LayerNorm (AVICI's, Haiku's default)."""


def standardize_real(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-variable z-score over the valid samples (population std; divide by 1 where it is 0).

    :param values: ``(B, n, d)`` raw values.
    :param mask: ``(B, n)`` bool, valid rows.
    :return: ``(B, n, d)`` standardised values, zero on padded rows.
    """
    w = mask.unsqueeze(-1).to(values.dtype)
    count = w.sum(1, keepdim=True)
    mean = (values * w).sum(1, keepdim=True) / count
    centred = (values - mean) * w
    std = (centred.square().sum(1, keepdim=True) / count).sqrt()
    std = torch.where(std == 0, torch.ones_like(std), std)
    return centred / std


def standardize_counts(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """AVICI's count standardiser: log2 counts-per-million, global shift and scale, zeros -> 0.

    Zero counts (including all-zero rows, 0/0) are missing; ``log2 CPM`` minus its minimum,
    divided by its population std, both over all non-missing valid entries of the dataset.

    :param values: ``(B, n, d)`` non-negative counts.
    :param mask: ``(B, n)`` bool, valid rows.
    :return: ``(B, n, d)`` standardised values; missing and padded entries are 0.
    """
    if bool((values < 0).any()):
        raise ValueError("count data must be non-negative")
    row_sum = values.sum(-1, keepdim=True)
    present = (values > 0) & mask.unsqueeze(-1)
    cpm = values / torch.where(row_sum > 0, row_sum, torch.ones_like(row_sum)) * 1e6
    logs = torch.where(present, cpm, torch.ones_like(cpm)).log2()
    num = present.sum((1, 2), keepdim=True).clamp(min=1).to(values.dtype)
    low = torch.where(present, logs, torch.full_like(logs, float("inf"))).amin((1, 2), keepdim=True)
    low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
    mean = torch.where(present, logs, torch.zeros_like(logs)).sum((1, 2), keepdim=True) / num
    var = (
        torch.where(present, (logs - mean).square(), torch.zeros_like(logs)).sum(
            (1, 2), keepdim=True
        )
        / num
    )
    std = var.sqrt()
    std = torch.where(std == 0, torch.ones_like(std), std)
    return torch.where(present, (logs - low) / std, torch.zeros_like(logs))


def standardize_history(x: torch.Tensor, valid: torch.Tensor, counts: bool) -> torch.Tensor:
    """AVICI's input standardisation, shared by the reward model and the policy encoder
    (:class:`caasl_agent.CAASLEncoder`).

    :param x: ``(B, n, d, 2)`` raw history.
    :param valid: ``(B, n)`` bool, valid rows (each dataset needs at least one).
    :param counts: count data (:func:`standardize_counts`) or real values
        (:func:`standardize_real`).
    :return: ``(B, n, d, 2)``: channel 0 standardised, channel 1 (the intervened flag) kept;
        both zero on padded rows.
    """
    standardizer = standardize_counts if counts else standardize_real
    values = standardizer(x[..., 0], valid)
    flags = x[..., 1] * valid.unsqueeze(-1).to(x.dtype)
    return torch.stack([values, flags], dim=-1)


class InferenceWorkspace:
    """Buffers reused by every inference forward of one model in one thread, for one dtype and
    device (see :func:`inference_workspace`): steady-state inference allocates nothing of the
    activations' size, which on CPU otherwise costs page faults on every call (glibc returns
    large freed blocks to the system)."""

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self.dtype, self.device = dtype, device
        self.buffers: dict[str, torch.Tensor] = {}
        self.views: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        self.plans: dict[tuple, tuple] = {}  # views of the buffers (_attention_views)

    def get(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """An uninitialised contiguous tensor of ``shape``: the memory of every ``get`` of
        ``name`` (grown when needed; views made once per shape)."""
        view = self.views.get((name, shape))
        if view is None:
            if len(self.views) >= _MAX_VIEWS:  # histories of ever new shapes
                self.views.clear()
                self.plans.clear()
            numel = math.prod(shape)
            buffer = self.buffers.get(name)
            if buffer is None or buffer.numel() < numel:
                with torch.inference_mode(False):  # a normal tensor: usable under no_grad too
                    buffer = torch.empty(numel, dtype=self.dtype, device=self.device)
                self.buffers[name] = buffer
                self.views = {key: v for key, v in self.views.items() if key[0] != name}
                self.plans.clear()
            view = self.views[name, shape] = buffer[:numel].view(shape)
        return view


_MAX_VIEWS = 512
"""Views an :class:`InferenceWorkspace` keeps (about 20 per history shape) before it forgets
them all."""

_WORKSPACES = threading.local()


def inference_workspace(model: nn.Module, like: torch.Tensor) -> InferenceWorkspace:
    """``model``'s inference workspace for ``like``'s dtype and device in the calling thread
    (dropped with the model)."""
    by_model = getattr(_WORKSPACES, "by_model", None)
    if by_model is None:
        by_model = _WORKSPACES.by_model = weakref.WeakKeyDictionary()
    workspaces = by_model.setdefault(model, {})
    key = (like.dtype, like.device)
    if key not in workspaces:
        workspaces[key] = InferenceWorkspace(*key)
    return workspaces[key]


def drop_workspaces(model: nn.Module) -> None:
    """Forget ``model``'s inference workspaces in the calling thread (rebuilt when next needed)."""
    getattr(_WORKSPACES, "by_model", {}).pop(model, None)


def rms_normalised(flat: torch.Tensor, workspace: InferenceWorkspace) -> torch.Tensor:
    """``flat (N, dim)`` divided by its root mean square over ``dim`` (``eps`` added to the
    mean square), into ``workspace``: the LayerNorm of a centred input."""
    tokens, dim = flat.shape
    norm = torch.linalg.vector_norm(
        flat, dim=-1, keepdim=True, out=workspace.get("norm", (tokens, 1))
    )
    rstd = workspace.get("rstd", (tokens, 1))
    torch.addcmul(_eps(workspace), norm, norm, value=1.0 / dim, out=rstd).rsqrt_()
    return torch.mul(flat, rstd, out=workspace.get("normalised", (tokens, dim)))


def _eps(workspace: InferenceWorkspace) -> torch.Tensor:
    """The LayerNorm ``eps`` as a scalar tensor of the workspace's dtype (made once)."""
    eps = workspace.buffers.get("eps")
    if eps is None:
        with torch.inference_mode(False):
            eps = workspace.buffers["eps"] = torch.tensor(
                LN_EPS, dtype=workspace.dtype, device=workspace.device
            )
    return eps


def centred(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """``linear``'s weight ``(out, in)`` and bias ``(out,)`` minus their means over ``out``: its
    output minus the output's mean over the features. A residual stream built only from such
    outputs has mean zero over the features, where ``LayerNorm`` (without affine, which is folded
    into the next linear) equals the cheaper RMS norm; every read of the stream is normalised,
    so dropping the mean changes no output."""
    return linear.weight - linear.weight.mean(0), linear.bias - linear.bias.mean()


INFERENCE_CHUNK_TOKENS = 2048
"""Without autograd the batch runs in chunks of about this many ``(sample, variable)`` tokens
(at least one dataset): the activations of a chunk stay in the CPU caches."""


def inference_chunks(b: int, n: int, d: int) -> list[slice]:
    """The batch slices of :data:`INFERENCE_CHUNK_TOKENS` tokens (at least one dataset each)
    that the inference paths run one after the other, for a batch ``(b, n, d, ...)``."""
    step = max(1, INFERENCE_CHUNK_TOKENS // (n * d))
    return [slice(start, start + step) for start in range(0, b, step)]


_SHORT_SEQUENCE = 16
"""Up to this many keys the exact softmax of the inference path (:func:`_exp_scores_`) is written
out (max, subtract, exp, sum, divide, all in place): ``Tensor.softmax`` is slow on CPU on rows
this short."""


def _split_heads(
    qkv: torch.Tensor, num_heads: int, over_samples: bool
) -> tuple[torch.Tensor, int, int]:
    """``qkv (B, n, d, 3 H K)`` as a ``(3, B, A, H, T, K)`` view (T the attended axis, A the
    other) and ``A``, ``T``."""
    b, n, d, width = qkv.shape
    parts = qkv.view(b, n, d, 3, num_heads, width // (3 * num_heads))
    if over_samples:
        return parts.permute(3, 0, 2, 4, 1, 5), d, n
    return parts.permute(3, 0, 1, 4, 2, 5), n, d


def _merge_heads(out: torch.Tensor, over_samples: bool) -> torch.Tensor:
    """``out (B, A, H, T, K)`` as a ``(B, n, d, H, K)`` view."""
    return out.permute(0, 3, 1, 2, 4) if over_samples else out.permute(0, 1, 3, 2, 4)


def attention(
    qkv: torch.Tensor, num_heads: int, over_samples: bool, key_mask: torch.Tensor | None
) -> torch.Tensor:
    """Differentiable softmax attention of every head over the samples or the variables.

    :param qkv: ``(B, n, d, 3 H K)`` queries (already scaled by ``1 / sqrt(K)``), keys, values.
    :param num_heads: ``H``.
    :param over_samples: attend over ``n`` (each variable's samples) or over ``d``.
    :param key_mask: ``(B, n)`` bool, samples that may be attended to (None: all); only used
        over samples.
    :return: ``(B, n, d, H K)`` contiguous.
    """
    b, n, d, _ = qkv.shape
    parts, a, t = _split_heads(qkv, num_heads, over_samples)
    q, key, v = parts.reshape(3, b * a, num_heads, t, -1)
    mask = key_mask if over_samples else None
    attn_mask = None if mask is None else mask.repeat_interleave(a, 0)[:, None, None, :]
    out = F.scaled_dot_product_attention(q, key, v, attn_mask=attn_mask, scale=1.0)
    return _merge_heads(out.view(b, a, num_heads, t, -1), over_samples).reshape(b, n, d, -1)


def inference_attention(
    qkv: torch.Tensor,
    num_heads: int,
    over_samples: bool,
    key_mask: torch.Tensor | None,
    workspace: InferenceWorkspace,
    scale: float = 1.0,
) -> torch.Tensor:
    """:func:`attention` without autograd, as two batched matmuls around an exponential in
    place, all in ``workspace`` (buffers ``"A"``, ``"B"``, ``"C"``, ``"row"``); the scores are
    multiplied by ``scale`` (1: the queries are already scaled). Returns ``(B n d, H K)``, in
    ``"A"``.

    The softmax's division by the row sums is applied to the attention output (``T K`` numbers
    per head instead of ``T T``), fused with the copy that merges the heads; with many keys per
    head size (``T >= 4 K``) the output is computed transposed, ``(K, T) = v^T p^T``: matrix
    products with an output only ``K`` wide run several times slower on CPU."""
    views = _attention_views(qkv, num_heads, over_samples, workspace)
    parts, heads, q, key_t, scores, row, product, attended, merged, inverse, out, flat = views
    heads.copy_(parts)
    keep = None
    if over_samples and key_mask is not None:
        b, t = key_mask.shape
        keep = workspace.get("keep", (b, 1, 1, t))
        keep.copy_(key_mask[:, None, None, :])

    def fill_scores() -> torch.Tensor:
        if scale == 1.0:
            return torch.bmm(q, key_t, out=scores)
        return torch.baddbmm(scores, q, key_t, beta=0.0, alpha=scale, out=scores)

    summed = _exp_scores_(fill_scores(), row, fill_scores, keep)
    torch.bmm(*product, out=attended)
    if summed:  # the softmax's division, fused with the merge of the heads
        row.reciprocal_()
        torch.mul(merged, inverse, out=out)
    else:
        out.copy_(merged)
    return flat


def _attention_views(
    qkv: torch.Tensor, num_heads: int, over_samples: bool, workspace: InferenceWorkspace
) -> tuple:
    """The views :func:`inference_attention` works on, made once per input (its memory, shape
    and strides) and workspace buffers: ``(parts, heads, q, key^T, scores, row, (left, right)
    of the output product, its result, the result merged to ``(B, n, d, H, K)``, the row sums
    likewise, the output and its ``(B n d, H K)`` view)``. At B = 1 the ~20 view operations cost as much as the attention's
    arithmetic on the variables axis."""
    key = (qkv.data_ptr(), tuple(qkv.shape), qkv.stride(), num_heads, over_samples)
    views = workspace.plans.get(key)
    if views is not None:
        return views
    b, n, d, width = qkv.shape
    h, k = num_heads, width // (3 * num_heads)
    parts, a, t = _split_heads(qkv, num_heads, over_samples)
    heads = workspace.get("B", (3, b * a * h, t, k))
    scores = workspace.get("A", (b * a * h, t, t))
    row = workspace.get("row", (b * a * h, t, 1))
    q, key_, v = heads
    if t >= 4 * k:
        attended = workspace.get("C", (b * a * h, k, t))
        product = (v.transpose(1, 2), scores.transpose(1, 2))
        per_head = attended.view(b, a, h, k, t).transpose(3, 4)
    else:
        attended = workspace.get("C", (b * a * h, t, k))
        product = (scores, v)
        per_head = attended.view(b, a, h, t, k)
    out = workspace.get("A", (b, n, d, h, k))
    views = (
        parts,
        heads.view(parts.shape),
        q,
        key_.transpose(1, 2),
        scores,
        row,
        product,
        attended,
        _merge_heads(per_head, over_samples),
        _merge_heads(row.view(b, a, h, t, 1), over_samples),
        out,
        out.view(b * n * d, h * k),
    )
    workspace.plans[key] = views
    return views


_TINY_SUM = 1e-25
"""A row whose ``sum(exp(score))`` exceeds this has a term above ``1e-25 / T``: the terms that
underflow (below ``1.2e-38``) weigh less than ``T * 1e-13`` of the sum."""


def _exp_scores_(
    scores: torch.Tensor,
    row: torch.Tensor,
    recompute: Callable[[], torch.Tensor],
    keep: torch.Tensor | None,
) -> bool:
    """Softmax over the last axis of ``scores (N, T, T)``, in place, over the keys where
    ``keep (B, 1, 1, T)`` is 1 (0: masked; ``N`` a multiple of ``B``; None: all keys), but for
    its last step; ``row (N, T, 1)`` is scratch, ``recompute()`` fills ``scores`` again.
    ``True`` when ``scores`` holds
    ``exp(score)`` (0 on masked keys) and ``row`` their row sums, so that the caller divides
    (where it is cheapest); ``False`` when ``scores`` holds the softmax itself (the fallback).

    On CPU in float32 or float64 the maximum is not subtracted: ``exp``, times ``keep``, row
    sums, each one fast pass, where the row-wise maximum and ``Tensor.softmax`` are slow on
    short rows (and ``exp`` is slow on the ``-inf`` of masked keys). One reduction of the row
    sums checks the result: a score whose exponential overflows makes its row sum ``inf`` (or
    NaN, on a masked key); a row sum below :data:`_TINY_SUM` has lost terms to underflow. Then
    the scores are recomputed and the softmax subtracts the row maximum.
    """
    n, t, _ = scores.shape
    if scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64):
        scores.exp_()
        if keep is not None:
            scores.view(keep.shape[0], -1, t, t).mul_(keep)
        low, high = torch.aminmax(torch.sum(scores, -1, keepdim=True, out=row))
        if float(low) > _TINY_SUM and float(high) < math.inf:  # False for NaN
            return True
        recompute()
    if keep is not None:
        scores.view(keep.shape[0], -1, t, t).masked_fill_(keep == 0, float("-inf"))
    if t > _SHORT_SEQUENCE:
        torch.ops.aten._softmax.out(scores, -1, False, out=scores)
    else:
        scores.sub_(torch.amax(scores, -1, keepdim=True, out=row)).exp_()
        scores.div_(torch.sum(scores, -1, keepdim=True, out=row))
    return False
