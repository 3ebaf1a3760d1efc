"""AVICI (Lorch et al., 2022) in PyTorch: the amortized causal-discovery reward model.

The architecture follows the official JAX/Haiku ``BaseModel`` exactly (docs/design.md §5), so official
checkpoints load into it (see :mod:`caasl_envs.reward.official`):

* ``Linear(2 -> dim)`` embedding of every (sample, variable) cell;
* ``2 * layers`` blocks; each block is pre-norm multi-head self-attention with *separate*
  LayerNorms for queries, keys and values, then a pre-norm ReLU feed-forward (``widening_factor``),
  both residual, then the sample and variable axes are swapped. Block 0 attends over variables,
  block 1 over samples, and so on;
* final LayerNorm, max over samples, two heads ``LayerNorm -> Linear`` giving ``u`` and ``v``,
  L2-normalised; ``logits[i, j] = exp(learned_temp) * <u_i, v_j> + final_matrix_bias``.

Two differences that change no output: the three q/k/v LayerNorms are folded into one fused
projection (their affine parameters are linear in the normalised input), and a row-validity
mask keeps zero-padded rows out of the standardisation, the attention over samples and the max
pooling, so a padded dataset gives the same probabilities as the unpadded one.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from caasl_envs.checks import resolve_device
from caasl_envs.reward.base import check_history

_LN_EPS = 1e-5


def _valid_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``(B, n)`` bool validity mask (all rows valid when ``mask`` is None)."""
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    mask = mask.to(device=x.device, dtype=torch.bool)
    if not bool(mask.any(1).all()):
        raise ValueError(
            "every dataset needs at least one valid row (mask is all False for some b)"
        )
    return mask


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
    """AVICI's input standardisation, shared with the policy encoder
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


class _MultiHeadAttention(nn.Module):
    """Haiku-style multi-head attention: q/k/v projections with biases, ``Linear(H*K -> dim)`` out."""

    def __init__(self, dim: int, num_heads: int, key_size: int):
        super().__init__()
        self.num_heads, self.key_size = num_heads, key_size
        self.query = nn.Linear(dim, num_heads * key_size)
        self.key = nn.Linear(dim, num_heads * key_size)
        self.value = nn.Linear(dim, num_heads * key_size)
        self.linear = nn.Linear(num_heads * key_size, dim)


class _Block(nn.Module):
    """One AVICI block: attention over the token axis (-2), feed-forward, then swap axes 1 and 2."""

    def __init__(
        self, dim: int, num_heads: int, key_size: int, widening_factor: int, dropout: float
    ):
        super().__init__()
        self.ln_q = nn.LayerNorm(dim, eps=_LN_EPS)
        self.ln_k = nn.LayerNorm(dim, eps=_LN_EPS)
        self.ln_v = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attention = _MultiHeadAttention(dim, num_heads, key_size)
        self.ln_ff = nn.LayerNorm(dim, eps=_LN_EPS)
        self.ff_in = nn.Linear(dim, widening_factor * dim)
        self.ff_out = nn.Linear(widening_factor * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _fused_qkv(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Linear(LN_affine(z_hat)) = (W * gamma) z_hat + (W beta + b): one matmul instead of three.
        weights, biases = [], []
        for ln, lin in (
            (self.ln_q, self.attention.query),
            (self.ln_k, self.attention.key),
            (self.ln_v, self.attention.value),
        ):
            weights.append(lin.weight * ln.weight)
            biases.append(lin.weight @ ln.bias + lin.bias)
        return torch.cat(weights), torch.cat(biases)

    def forward(self, z: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """``z (B, A, T, dim)`` attending over ``T``; ``key_mask (B, T)`` bool or None -> ``(B, T, A, dim)``."""
        b, a, t, dim = z.shape
        h, k = self.attention.num_heads, self.attention.key_size
        z_hat = F.layer_norm(z, (dim,), eps=_LN_EPS)
        w, bias = self._fused_qkv()
        qkv = F.linear(z_hat, w, bias).view(b * a, t, 3, h, k)
        mask = None if key_mask is None else key_mask[:, None, :].expand(b, a, t).reshape(b * a, t)
        out = _attention(qkv, mask).view(b, a, t, h * k)
        z = z + self.dropout(self.attention.linear(out))
        z = z + self.dropout(self.ff_out(F.relu(self.ff_in(self.ln_ff(z)))))
        return z.transpose(1, 2)


_SHORT_SEQUENCE = 16
"""Up to this many tokens and without autograd, attention is two batched matmuls: faster on CPU
than the flash kernel for the forward alone (with the backward the flash kernel is faster)."""


def _attention(qkv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax attention of every head: ``qkv (N, T, 3, H, K)``, ``mask (N, T)`` bool keys or None
    -> ``(N, T, H, K)`` (contiguous)."""
    n, t, _, h, k = qkv.shape
    if t > _SHORT_SEQUENCE or (torch.is_grad_enabled() and qkv.requires_grad):
        q, key, v = qkv.permute(2, 0, 3, 1, 4)  # (N, H, T, K) strided views
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, key, v, attn_mask=attn_mask)
        return out.transpose(1, 2).contiguous()
    q, key, v = qkv.permute(2, 0, 3, 1, 4).reshape(3, n * h, t, k)  # one copy into (3, N*H, T, K)
    scores = torch.baddbmm(
        q.new_zeros(()), q, key.transpose(1, 2), beta=0.0, alpha=k**-0.5
    )  # (N*H, T, T)
    if mask is not None:
        scores = scores.view(n, h, t, t).masked_fill(~mask[:, None, None, :], float("-inf"))
    weights = scores.view(n * h, t, t).softmax(-1)
    return torch.bmm(weights, v).view(n, h, t, k).transpose(1, 2).contiguous()


class AVICIModel(nn.Module):
    """AVICI edge-probability model ``(B, n, d, 2) -> (B, d, d)``, the official architecture.

    :param dim: model width.
    :param layers: number of (variable, sample) block pairs; ``2 * layers`` blocks in total.
    :param num_heads: attention heads.
    :param key_size: per-head key/query/value size.
    :param widening_factor: feed-forward hidden size is ``widening_factor * dim``.
    :param dropout: dropout after attention and feed-forward (training only).
    :param out_dim: size of the ``u``/``v`` embeddings (None: ``dim``).
    :param mask_diag: force ``P[i, i] = 0``.
    :param expects_counts: standardise channel 0 as count data (log2 CPM) instead of z-scores.
    :param cosine_temp_init: initial ``learned_temp`` (logit scale is ``exp`` of it).
    :param logit_bias_init: initial ``final_matrix_bias``.
    """

    def __init__(
        self,
        dim: int = 128,
        layers: int = 8,
        num_heads: int = 8,
        key_size: int = 32,
        widening_factor: int = 4,
        dropout: float = 0.0,
        out_dim: int | None = None,
        mask_diag: bool = True,
        expects_counts: bool = False,
        cosine_temp_init: float = 2.0,
        logit_bias_init: float = -3.0,
    ):
        super().__init__()
        for name, value in (
            ("dim", dim),
            ("layers", layers),
            ("num_heads", num_heads),
            ("key_size", key_size),
            ("widening_factor", widening_factor),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        out_dim = dim if out_dim is None else out_dim
        self.config = dict(
            dim=dim,
            layers=layers,
            num_heads=num_heads,
            key_size=key_size,
            widening_factor=widening_factor,
            dropout=dropout,
            out_dim=out_dim,
            mask_diag=mask_diag,
            expects_counts=expects_counts,
            cosine_temp_init=cosine_temp_init,
            logit_bias_init=logit_bias_init,
        )
        self.mask_diag = mask_diag
        self.expects_counts = expects_counts
        self.embedding = nn.Linear(2, dim)
        self.blocks = nn.ModuleList(
            _Block(dim, num_heads, key_size, widening_factor, dropout) for _ in range(2 * layers)
        )
        self.final_norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.u_norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.u_head = nn.Linear(dim, out_dim)
        self.v_norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.v_head = nn.Linear(dim, out_dim)
        self.learned_temp = nn.Parameter(torch.tensor(float(cosine_temp_init)))
        self.final_matrix_bias = nn.Parameter(torch.tensor(float(logit_bias_init)))

    def standardize(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, n, d, 2)`` raw history -> model input: channel 0 standardised, channel 1 kept."""
        return standardize_history(x, _valid_mask(x, mask), self.expects_counts)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Edge logits ``(B, d, d)`` from a raw history ``(B, n, d, 2)`` (optional ``(B, n)`` mask).

        The diagonal is not masked here (see :meth:`edge_probs`).
        """
        check_history(x, mask)
        key_mask = None if mask is None else _valid_mask(x, mask)
        z = self.embedding(self.standardize(x, mask))  # (B, n, d, dim)
        for index, block in enumerate(self.blocks):
            # even blocks see (B, n, d, .) and attend over variables; odd ones (B, d, n, .) over samples
            z = block(z, key_mask if index % 2 == 1 else None)
        z = self.final_norm(z)
        if key_mask is not None:
            z = z.masked_fill(~key_mask[:, :, None, None], float("-inf"))
        z = z.amax(1)  # (B, d, dim)
        u = F.normalize(self.u_head(self.u_norm(z)), dim=-1)
        v = F.normalize(self.v_head(self.v_norm(z)), dim=-1)
        return self.learned_temp.exp() * (u @ v.transpose(-1, -2)) + self.final_matrix_bias

    @torch.no_grad()
    def edge_probs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``P[b, i, j] = p(i -> j | x_b)``, shape ``(B, d, d)``; 0 on the diagonal if ``mask_diag``."""
        probs = torch.sigmoid(self.forward(x, mask))
        if self.mask_diag:
            eye = torch.eye(probs.shape[-1], dtype=torch.bool, device=probs.device)
            probs = probs.masked_fill(eye, 0.0)
        return probs

    def save(self, path: str | Path) -> Path:
        """Write ``{"config": constructor kwargs, "state_dict": float32 CPU tensors}`` with ``torch.save``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {key: value.detach().float().cpu() for key, value in self.state_dict().items()}
        torch.save({"config": dict(self.config), "state_dict": state}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> AVICIModel:
        """A model in eval mode from a file written by :meth:`save` (read with ``weights_only=True``).

        :raises ValueError: naming ``path`` when it is not such a file (truncated or corrupt,
            another format, objects other than tensors, or a config or weights that do not fit).
        """
        payload = _load_payload(path, device)
        try:
            model = cls(**payload["config"])
            model.load_state_dict(payload["state_dict"])
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"{path}: the reward-model config or weights do not fit ({err})"
            ) from None
        return model.to(device).eval()


def _load_payload(path: str | Path, device: str | torch.device) -> dict:
    """The ``{"config", "state_dict"}`` dict :meth:`AVICIModel.save` wrote; ``ValueError``
    naming ``path`` otherwise (``FileNotFoundError`` when there is no file)."""
    what = f"{path} is not a reward-model file written by AVICIModel.save"
    resolve_device(device)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():  # torch refused a non-tensor object
            raise ValueError(f"{what}: it holds objects other than tensors") from None
        raise ValueError(f"{what}: it is truncated, corrupt or of another format") from err
    except Exception as err:  # EOFError, KeyError, OSError, RuntimeError, ... from torch
        raise ValueError(f"{what}: it is truncated, corrupt or of another format") from err
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= payload.keys():
        raise ValueError(f"{what}: expected the entries 'config' and 'state_dict'")
    if not isinstance(payload["config"], dict):
        raise ValueError(f"{what}: 'config' is not a dict")
    return payload
