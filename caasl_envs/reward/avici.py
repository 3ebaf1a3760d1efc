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

Differences that change no output: the three q/k/v LayerNorms are folded into one fused
projection (their affine parameters are linear in the normalised input); the residual stream
keeps the layout ``(B, n, d, dim)`` instead of swapping the axes after every block (only q/k/v
and the attention output are permuted); and a row-validity mask keeps zero-padded rows out of
the standardisation, the attention over samples and the max pooling, so a padded dataset gives
the same probabilities as the unpadded one.

Without autograd (eval mode under ``torch.no_grad`` / ``torch.inference_mode``) a separate
inference path runs, equal to float rounding (``AVICIModel._forward_inference``): the
residual stream is kept centred so that every LayerNorm is an RMS norm, the LayerNorm affines
and the attention scale are folded into the weights once (cached), the blocks update the stream
in place with every intermediate in buffers reused from call to call (no page faults), the
batch runs in cache-sized chunks, and the softmax skips the row maximum when no score can
overflow. These kernels live in :mod:`caasl_envs.inference`, which the policy encoder
(:class:`caasl_agent.CAASLEncoder`) uses too.
"""

from __future__ import annotations

import operator
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from caasl_envs.checks import resolve_device
from caasl_envs.histories import checked_history
from caasl_envs.inference import (
    LN_EPS,
    InferenceWorkspace,
    attention,
    centred,
    drop_workspaces,
    inference_attention,
    inference_chunks,
    inference_workspace,
    rms_normalised,
    standardize_history,
)


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
    """One AVICI block: pre-norm attention over one axis of ``z (B, n, d, dim)``, then a pre-norm
    ReLU feed-forward, both residual.

    The official block swaps the sample and variable axes after each block; here the residual
    stream keeps the layout ``(B, n, d, dim)`` throughout (every layer except the attention acts
    on each token alone, so the order of the tokens is free) and only q/k/v and the attention
    output are permuted to and from the attended axis.
    """

    def __init__(
        self, dim: int, num_heads: int, key_size: int, widening_factor: int, dropout: float
    ):
        super().__init__()
        self.ln_q = nn.LayerNorm(dim, eps=LN_EPS)
        self.ln_k = nn.LayerNorm(dim, eps=LN_EPS)
        self.ln_v = nn.LayerNorm(dim, eps=LN_EPS)
        self.attention = _MultiHeadAttention(dim, num_heads, key_size)
        self.ln_ff = nn.LayerNorm(dim, eps=LN_EPS)
        self.ff_in = nn.Linear(dim, widening_factor * dim)
        self.ff_out = nn.Linear(widening_factor * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def folded_qkv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The q/k/v LayerNorm affines folded into one ``(3 H K, dim)`` projection of the plain
        normalised input, ``Linear(LN_affine(z_hat)) = (W * gamma) z_hat + (W beta + b)``,
        queries also scaled by ``1 / sqrt(K)``: ``w_qkv (3 H K, dim)``, ``b_qkv (3 H K,)``."""
        scale = self.attention.key_size**-0.5
        weights, biases = [], []
        for ln, lin, factor in (
            (self.ln_q, self.attention.query, scale),
            (self.ln_k, self.attention.key, 1.0),
            (self.ln_v, self.attention.value, 1.0),
        ):
            weights.append(lin.weight * (ln.weight * factor))
            biases.append((lin.weight @ ln.bias + lin.bias) * factor)
        return torch.cat(weights), torch.cat(biases)

    def forward(
        self, z: torch.Tensor, over_samples: bool, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Differentiable block: ``z (B, n, d, dim)`` -> ``(B, n, d, dim)``, attending over the
        samples (``key_mask (B, n)`` bool or None) or over the variables."""
        w_qkv, b_qkv = self.folded_qkv()
        qkv = F.linear(F.layer_norm(z, z.shape[-1:], eps=LN_EPS), w_qkv, b_qkv)
        out = attention(qkv, self.attention.num_heads, over_samples, key_mask)
        z = z + self.dropout(self.attention.linear(out))
        return z + self.dropout(self.ff_out(F.relu(self.ff_in(self.ln_ff(z)))))

    def inference_weights(self) -> tuple[torch.Tensor, ...]:
        """:meth:`folded_qkv`, the feed-forward LayerNorm affine folded likewise into ``ff_in``,
        and the two residual outputs centred (:func:`centred`), as ``(w_qkv^T, b_qkv,
        w_attention_out^T, b_attention_out, w_ff^T, b_ff, w_ff_out^T, b_ff_out)``, the weights
        transposed to ``(in, out)`` views."""
        w_qkv, b_qkv = self.folded_qkv()
        w_ff = self.ff_in.weight * self.ln_ff.weight
        b_ff = self.ff_in.weight @ self.ln_ff.bias + self.ff_in.bias
        w_att, b_att = centred(self.attention.linear)
        w_out, b_out = centred(self.ff_out)
        return w_qkv.t(), b_qkv, w_att.t(), b_att, w_ff.t(), b_ff, w_out.t(), b_out

    def forward_(
        self,
        z: torch.Tensor,
        over_samples: bool,
        key_mask: torch.Tensor | None,
        weights: tuple[torch.Tensor, ...],
        workspace: InferenceWorkspace,
    ) -> None:
        """Inference block, in place on the contiguous, centred ``z (B, n, d, dim)``.

        ``z`` has mean zero over ``dim`` for every token (see :func:`centred`), so each
        LayerNorm is an RMS norm, and stays so since ``weights`` (:meth:`inference_weights`)
        centre what is added to it. The residual sums accumulate into ``z`` inside the matmuls
        (``addmm_``), the ReLU and softmax run in place and every intermediate lives in
        ``workspace``: no allocation of the size of the activations.
        """
        b, n, d, dim = z.shape
        w_qkv, b_qkv, w_att, b_att, w_ff, b_ff, w_out, b_out = weights
        # workspace buffer "A" holds q/k/v, then (in the attention) the scores and the attention
        # output; "B" the heads, then the feed-forward hidden layer: one dead before the next
        # use, which keeps the footprint in cache
        flat = z.view(-1, dim)
        tokens = flat.shape[0]
        qkv = workspace.get("A", (tokens, w_qkv.shape[1]))
        torch.addmm(b_qkv, rms_normalised(flat, workspace), w_qkv, out=qkv)
        out = inference_attention(
            qkv.view(b, n, d, -1), self.attention.num_heads, over_samples, key_mask, workspace
        )
        flat.addmm_(out, w_att).add_(b_att)
        hidden = workspace.get("B", (tokens, w_ff.shape[1]))
        torch.addmm(b_ff, rms_normalised(flat, workspace), w_ff, out=hidden).relu_()
        flat.addmm_(hidden, w_out).add_(b_out)


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
        self.final_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.u_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.u_head = nn.Linear(dim, out_dim)
        self.v_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.v_head = nn.Linear(dim, out_dim)
        self.learned_temp = nn.Parameter(torch.tensor(float(cosine_temp_init)))
        self.final_matrix_bias = nn.Parameter(torch.tensor(float(logit_bias_init)))
        self._inference_cache: tuple | None = None

    def standardize(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, n, d, 2)`` raw history -> model input: channel 0 standardised, channel 1 kept."""
        return standardize_history(x, _valid_mask(x, mask), self.expects_counts)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Edge logits ``(B, d, d)`` from a raw history ``(B, n, d, 2)`` (optional ``(B, n)`` mask).

        The diagonal is not masked here (see :meth:`edge_probs`). In eval mode without autograd
        (under ``torch.no_grad`` / ``torch.inference_mode``, or nothing requiring gradients)
        the inference path runs (:meth:`_forward_inference`); its logits match the
        differentiable path's to float rounding.
        """
        x = checked_history(x, mask, self.embedding.weight.dtype, counts=self.expects_counts)
        key_mask = None if mask is None else _valid_mask(x, mask)
        x = self.standardize(x, mask)
        grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        if grad or self.training:
            z = self.embedding(x)  # (B, n, d, dim)
            for index, block in enumerate(self.blocks):
                # even blocks attend over the variables, odd ones over the samples
                z = block(z, index % 2 == 1, key_mask)
            z = self.final_norm(z)
            if key_mask is not None:
                z = z.masked_fill(~key_mask[:, :, None, None], float("-inf"))
            return self._edge_logits(z.amax(1))
        with torch.no_grad():
            return self._forward_inference(x, key_mask)

    def _forward_inference(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """Edge logits ``(B, d, d)`` of the standardised ``x (B, n, d, 2)``, without autograd.

        The blocks run in place on a centred residual stream (:meth:`_Block.forward_`) in
        buffers reused from call to call (:class:`~caasl_envs.inference.InferenceWorkspace`), with weights folded once
        (:meth:`_inference_weights`), and the batch in chunks of about
        :data:`~caasl_envs.inference.INFERENCE_CHUNK_TOKENS` tokens, which keeps the activations in cache.
        """
        (w_embedding, b_embedding), *weights = self._inference_weights()
        workspace = inference_workspace(self, x)
        b, n, d, _ = x.shape
        dim = self.config["dim"]
        chunks = []
        for part in inference_chunks(b, n, d):
            chunk = x[part]
            z = workspace.get("z", (chunk.shape[0], n, d, dim))
            torch.addmm(b_embedding, chunk.reshape(-1, 2), w_embedding.t(), out=z.view(-1, dim))
            chunk_mask = None if key_mask is None else key_mask[part]
            for index, (block, folded) in enumerate(zip(self.blocks, weights)):
                block.forward_(z, index % 2 == 1, chunk_mask, folded, workspace)
            # the final LayerNorm (of a centred stream: an RMS norm, then the affine)
            z = rms_normalised(z.view(-1, dim), workspace).view(z.shape)
            z.mul_(self.final_norm.weight).add_(self.final_norm.bias)
            if chunk_mask is not None:
                z.masked_fill_(~chunk_mask[:, :, None, None], float("-inf"))
            chunks.append(self._edge_logits(z.amax(1)))
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def _inference_weights(self) -> list[tuple[torch.Tensor, ...]]:
        """The centred embedding ``(weight, bias)`` and every block's
        :meth:`_Block.inference_weights`, cached while every parameter is the same tensor with
        the same storage and version: an in-place update (an optimiser step, ``load_state_dict``)
        bumps the version, ``.to(dtype or device)`` moves the storage, and :meth:`train` /
        ``eval()`` drop the cache. Updates that bump no version (fused optimisers, writes
        through ``.data``) made while the model stays in eval mode, and replacing a submodule,
        need :meth:`clear_inference_cache`."""
        cached = self._inference_cache
        if cached is not None:
            holders, params, state, weights = cached
            current = [p for holder in holders for p in holder.values() if p is not None]
            if (
                len(current) == len(params)
                and all(map(operator.is_, current, params))
                and [(p._version, p.data_ptr()) for p in current] == state
            ):
                return weights
        holders = [module._parameters for module in self.modules()]
        params = [p for holder in holders for p in holder.values() if p is not None]
        state = [(p._version, p.data_ptr()) for p in params]
        weights = [centred(self.embedding)]
        weights += [block.inference_weights() for block in self.blocks]
        self._inference_cache = (holders, params, state, weights)
        return weights

    def train(self, mode: bool = True) -> AVICIModel:
        """``nn.Module.train``; also drops the inference cache, since a fused optimiser's step
        bumps no parameter version (see :meth:`_inference_weights`)."""
        self._inference_cache = None
        return super().train(mode)

    def __getstate__(self) -> dict:
        """Pickled and deep-copied without the inference cache (rebuilt when next needed)."""
        return {**super().__getstate__(), "_inference_cache": None}

    def clear_inference_cache(self) -> None:
        """Drop the cached inference weights (see :meth:`forward`) and this thread's inference
        buffers; both are rebuilt when next needed."""
        self._inference_cache = None
        drop_workspaces(self)

    def _edge_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """``pooled (B, d, dim)``, the final LayerNorm's output max-pooled over the valid samples
        -> edge logits ``(B, d, d)``."""
        u = F.normalize(self.u_head(self.u_norm(pooled)), dim=-1)
        v = F.normalize(self.v_head(self.v_norm(pooled)), dim=-1)
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
        return cls.from_payload(_load_payload(path, device), path, device)

    @classmethod
    def from_payload(
        cls, payload: dict, path: str | Path, device: str | torch.device = "cpu"
    ) -> AVICIModel:
        """:meth:`load` of a payload already read by :func:`_load_payload` (``path`` names it
        in errors)."""
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
