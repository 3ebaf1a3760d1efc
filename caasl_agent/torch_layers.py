"""The alternating-attention history encoder and its Stable-Baselines3 features extractor.

A history is a padded batch of experiments: ``history`` of shape ``(B, N, d, 2)`` (channel 0 the
measured value, channel 1 the intervened-on flag) and ``mask`` of shape ``(B, N)``, 1 for valid
rows (valid rows first, padded rows zero). :class:`CAASLEncoder` maps it to one embedding per
variable, ``(B, d, D)``:

* permutation-equivariant in the variables (no positional information over variables),
* invariant to the order of the samples (no positional information over samples, max-pool),
* independent of the padding: padded rows are key-padded in the attention over samples and
  excluded from the max-pool, so neither their content nor their number changes the output
  (fix of defect 7 of the original code, docs/design.md §6).

Nothing in the weights depends on ``d`` or ``N``: one encoder acts on histories of any size.
"""

from __future__ import annotations

import math
from typing import Literal

import gymnasium as gym
import torch
import torch.nn.functional as F
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from caasl_envs import inference  # the kernels AVICI shares; no reward model
from caasl_envs.histories import check_history, history_space_dims, required_belief

Standardization = Literal["none", "zscore", "counts"]
STANDARDIZATIONS = ("none", "zscore", "counts")


def valid_rows(mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B, N)`` validity; a history with no valid row counts all its rows as valid.

    Observations of our environments always hold ``n0 >= 1`` valid rows; the fallback only keeps
    shape probes with all-zero observations (SB3 does those) finite instead of NaN.
    """
    valid = mask > 0.5
    return valid | ~valid.any(dim=1, keepdim=True)


def standardize_history(
    history: torch.Tensor, valid: torch.Tensor, mode: Standardization
) -> torch.Tensor:
    """The encoder's input: ``history (B, N, d, 2)`` standardised on the valid rows ``(B, N)``.

    ``"none"`` returns the input; ``"zscore"`` (real values) and ``"counts"`` (gene-expression
    counts) are AVICI's own standardisation
    (:func:`caasl_envs.inference.standardize_history`): channel 0 standardised, channel 1
    (the intervened flag) kept, padded rows zero; negative counts are refused.
    """
    if mode == "none":
        return history
    if mode not in STANDARDIZATIONS:
        raise ValueError(f"standardization must be one of {STANDARDIZATIONS}, got {mode!r}")
    return inference.standardize_history(history, valid, counts=mode == "counts")


class PreNormAttentionBlock(nn.Module):
    """Pre-norm transformer layer: ``x + MHA(LN(x))`` then ``x + FF(LN(x))`` (ReLU).

    Written out (rather than ``nn.TransformerEncoderLayer``) because the latter's inference
    fast path with a key-padding mask runs a masked-softmax kernel that is ~10x slower on CPU.

    :param dim: token width; :param n_heads: heads (must divide ``dim``);
    :param ff_dim: feed-forward width; :param dropout: dropout on attention and residual branches.
    """

    def __init__(self, dim: int, n_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attention_out = nn.Linear(dim, dim)
        self.feedforward_norm = nn.LayerNorm(dim)
        self.feedforward = nn.Sequential(
            nn.Linear(dim, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim)
        )
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """``x (S, L, dim)``; ``key_valid (S, L)`` bool, keys each sequence may attend to."""
        s, length, dim = x.shape
        q, k, v = (
            self.qkv(self.attention_norm(x))
            .view(s, length, 3, self.n_heads, -1)
            .permute(2, 0, 3, 1, 4)
        )
        mask = None if key_valid is None else key_valid[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.residual_dropout(
            self.attention_out(attended.transpose(1, 2).reshape(s, length, dim))
        )
        return x + self.residual_dropout(self.feedforward(self.feedforward_norm(x)))

    def forward_(
        self,
        z: torch.Tensor,
        over_samples: bool,
        key_valid: torch.Tensor | None,
        workspace: inference.InferenceWorkspace,
    ) -> None:
        """The same layer without autograd or dropout, in place on the contiguous
        ``z (B, N, d, dim)``, attending over the samples (``key_valid (B, N)`` bool or None)
        or over the variables; intermediates live in ``workspace`` (the reward model's
        inference path, :meth:`caasl_envs.reward.avici._Block.forward_`)."""
        b, n, d, dim = z.shape
        flat = z.view(-1, dim)
        qkv = workspace.get("A", (flat.shape[0], 3 * dim))
        torch.addmm(
            self.qkv.bias,
            self._normalised(self.attention_norm, flat, workspace),
            self.qkv.weight.t(),
            out=qkv,
        )
        attended = inference.inference_attention(
            qkv.view(b, n, d, -1),
            self.n_heads,
            over_samples,
            key_valid,
            workspace,
            scale=(dim // self.n_heads) ** -0.5,
        )
        flat.addmm_(attended, self.attention_out.weight.t()).add_(self.attention_out.bias)
        ff_in, ff_out = self.feedforward[0], self.feedforward[3]
        hidden = workspace.get("B", (flat.shape[0], ff_in.out_features))
        torch.addmm(
            ff_in.bias,
            self._normalised(self.feedforward_norm, flat, workspace),
            ff_in.weight.t(),
            out=hidden,
        ).relu_()
        flat.addmm_(hidden, ff_out.weight.t()).add_(ff_out.bias)

    @staticmethod
    def _normalised(
        norm: nn.LayerNorm, flat: torch.Tensor, workspace: inference.InferenceWorkspace
    ) -> torch.Tensor:
        """``norm(flat)`` for ``flat (T, dim)``, into ``workspace``."""
        tokens = flat.shape[0]
        out = workspace.get("normalised", flat.shape)
        torch.ops.aten.native_layer_norm.out(
            flat,
            list(flat.shape[1:]),
            norm.weight,
            norm.bias,
            norm.eps,
            out0=out,
            out1=workspace.get("mean", (tokens, 1)),
            out2=workspace.get("rstd", (tokens, 1)),
        )
        return out


#: Per-variable belief features of :func:`belief_features`.
BELIEF_NODE_FEATURES = 6
#: Per-pair belief features of :func:`belief_features`.
BELIEF_PAIR_FEATURES = 4


def belief_features(belief: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge probabilities ``belief (B, d, d)`` (``belief[b, i, j]`` of an edge ``i -> j``) ->
    per-variable features ``(B, d, 6)`` and per-pair features ``(B, d, d, 4)``.

    Pair ``(i, j)``: ``p_ij``, ``p_ji`` and their uncertainties ``p (1 - p)``. Variable ``i``:
    expected out- and in-degree, summed uncertainty of its outgoing and incoming edges, and the
    largest of each. Permuting the variables permutes both outputs the same way.
    """
    p = belief
    q = p.transpose(1, 2)
    u, uq = p * (1 - p), q * (1 - q)
    pair = torch.stack([p, q, u, uq], dim=-1)
    node = torch.stack([p.sum(2), q.sum(2), u.sum(2), uq.sum(2), u.amax(2), uq.amax(2)], dim=-1)
    return node, pair


class BeliefBlock(nn.Module):
    """Pre-norm self-attention over variables whose scores get a learned bias per head from
    the pair features of :func:`belief_features`, then a feed-forward block.

    ``z (B, d, D)``, ``pair (B, d, d, 4)`` -> ``(B, d, D)``; equivariant in the variables."""

    def __init__(self, dim: int, n_heads: int, ff_dim: int):
        super().__init__()
        self.n_heads = n_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.bias = nn.Sequential(
            nn.Linear(BELIEF_PAIR_FEATURES, 16), nn.ReLU(), nn.Linear(16, n_heads)
        )
        self.ff = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, ff_dim), nn.ReLU(), nn.Linear(ff_dim, dim)
        )

    def forward(self, z: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        b, d, dim = z.shape
        heads = self.qkv(self.norm(z)).view(b, d, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = heads[0], heads[1], heads[2]  # (B, H, d, D / H)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        scores = scores + self.bias(pair).permute(0, 3, 1, 2)
        mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, d, dim)
        z = z + self.out(mixed)
        return z + self.ff(z)


class CAASLEncoder(nn.Module):
    """Alternating self-attention over variables and samples, max-pooled over valid samples.

    Linear ``2 -> embed_dim`` embedding, then ``n_layers`` pairs of pre-norm transformer layers
    (attention over the ``d`` variables of each sample, then over the ``N`` samples of each
    variable with the padded rows as key padding), a final LayerNorm and a max over the valid
    samples. Reference sizes (docs/design.md §4): ``embed_dim=32, n_layers=4, n_heads=8, ff_dim=128, dropout=0.1``.

    :param embed_dim: width ``D`` of the token embeddings and of the output.
    :param n_layers: number of (variable-attention, sample-attention) layer pairs.
    :param n_heads: attention heads; must divide ``embed_dim``.
    :param ff_dim: hidden width of each feed-forward block.
    :param dropout: dropout inside the transformer layers (off in ``eval()`` mode).
    :param standardization: ``"none"``, ``"zscore"`` or ``"counts"`` (see :func:`standardize_history`).
    :param belief_layers: number of :class:`BeliefBlock` s reading the observation's edge
        probabilities ``belief (B, d, d)`` after the pooling (0: the encoder reads the history
        only). The variable features of :func:`belief_features` are embedded and added to the
        pooled embeddings first.
    """

    def __init__(
        self,
        embed_dim: int = 32,
        n_layers: int = 4,
        n_heads: int = 8,
        ff_dim: int = 128,
        dropout: float = 0.1,
        standardization: Standardization = "none",
        belief_layers: int = 0,
    ):
        super().__init__()
        if belief_layers < 0:
            raise ValueError(f"belief_layers must be >= 0, got {belief_layers}")
        if embed_dim % n_heads != 0:
            raise ValueError(f"n_heads={n_heads} must divide embed_dim={embed_dim}")
        if standardization not in STANDARDIZATIONS:
            raise ValueError(
                f"standardization must be one of {STANDARDIZATIONS}, got {standardization!r}"
            )
        self.embed_dim = embed_dim
        self.standardization = standardization
        self.embedding = nn.Linear(2, embed_dim)

        self.variable_layers = nn.ModuleList(
            PreNormAttentionBlock(embed_dim, n_heads, ff_dim, dropout) for _ in range(n_layers)
        )
        self.sample_layers = nn.ModuleList(
            PreNormAttentionBlock(embed_dim, n_heads, ff_dim, dropout) for _ in range(n_layers)
        )
        self.final_norm = nn.LayerNorm(embed_dim)
        self.belief_layers = belief_layers
        if belief_layers:
            self.belief_embedding = nn.Linear(BELIEF_NODE_FEATURES, embed_dim)
            self.belief_blocks = nn.ModuleList(
                BeliefBlock(embed_dim, n_heads, ff_dim) for _ in range(belief_layers)
            )

    def forward(
        self, history: torch.Tensor, mask: torch.Tensor, belief: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``history (B, N, d, 2)``, ``mask (B, N)`` and, for an encoder with belief layers,
        ``belief (B, d, d)`` -> per-variable embeddings ``(B, d, D)``.

        In eval mode without autograd (SB3's rollouts) the inference path runs
        (:meth:`_forward_inference`), equal to float rounding."""
        z = self._pooled(history, mask)
        if not self.belief_layers:
            return z
        belief = required_belief(belief, "this encoder")
        node, pair = belief_features(belief.to(z.dtype))
        z = z + self.belief_embedding(node)
        for block in self.belief_blocks:
            z = block(z, pair)
        return z

    def _pooled(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The history part of :meth:`forward`: pooled per-variable embeddings ``(B, d, D)``."""
        check_history(history, mask, min_d=1)
        b, n, d, _ = history.shape
        valid = valid_rows(mask)
        x = self.embedding(standardize_history(history, valid, self.standardization))
        all_valid = bool(valid.all())
        if not (self.training or torch.is_grad_enabled()):
            return self._forward_inference(x, None if all_valid else valid)
        # keys each variable's sequence of samples may attend to: (B * d, N); None if all valid
        sample_keys = None if all_valid else valid.repeat_interleave(d, dim=0)
        for over_variables, over_samples in zip(self.variable_layers, self.sample_layers):
            x = over_variables(x.reshape(b * n, d, -1)).reshape(b, n, d, -1)
            x = x.transpose(1, 2).reshape(b * d, n, -1)
            x = over_samples(x, sample_keys)
            x = x.reshape(b, d, n, -1).transpose(1, 2)
        x = self.final_norm(x)
        x = x.masked_fill(~valid[:, :, None, None], -math.inf)
        return x.amax(dim=1)

    def _forward_inference(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """:meth:`forward` in eval mode without autograd, from the embedded history
        ``x (B, N, d, D)`` and ``valid (B, N)`` bool or None (all rows valid), as the reward
        model's inference path (:meth:`caasl_envs.reward.avici.AVICIModel._forward_inference`):
        the layers run in place without moving the variable and sample axes (only q/k/v and
        the attention output are permuted), attention as batched matmuls, intermediates in
        buffers reused from call to call, the batch in chunks of about
        :data:`~caasl_envs.inference.INFERENCE_CHUNK_TOKENS` tokens."""
        workspace = inference.inference_workspace(self, x)
        b, n, d, dim = x.shape
        pooled = []
        for part in inference.inference_chunks(b, n, d):
            chunk = x[part]
            z = workspace.get("z", tuple(chunk.shape))
            z.copy_(chunk)
            keys = None if valid is None else valid[part]
            for over_variables, over_samples in zip(self.variable_layers, self.sample_layers):
                over_variables.forward_(z, False, None, workspace)
                over_samples.forward_(z, True, keys, workspace)
            z = PreNormAttentionBlock._normalised(self.final_norm, z.view(-1, dim), workspace)
            z = z.view(-1, n, d, dim)
            if keys is not None:
                z.masked_fill_(~keys[:, :, None, None], -math.inf)
            pooled.append(z.amax(dim=1))
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled)


class CAASLFeaturesExtractor(BaseFeaturesExtractor):
    """:class:`CAASLEncoder` as an SB3 features extractor for stock agents (SAC, PPO, TD3, ...).

    Stock policies need a flat vector of fixed size. ``variable_pooling="flatten"`` concatenates
    the ``d`` per-variable embeddings (``d * D`` features; keeps which variable is which, so an
    MLP head can pick intervention targets, but ties the agent to the training ``d``);
    ``"mean-max"`` concatenates the mean and the max over variables (``2 D`` features,
    independent of ``d`` but blind to variable identity).

    :param observation_space: the env's Dict space with ``"history" (N, d, 2)`` and ``"mask" (N,)``.
    :param variable_pooling: ``"flatten"`` or ``"mean-max"``.
    :param encoder_kwargs: keyword arguments of :class:`CAASLEncoder`.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        variable_pooling: Literal["flatten", "mean-max"] = "flatten",
        **encoder_kwargs,
    ):
        d = history_space_dims(observation_space)[1]
        encoder = CAASLEncoder(**encoder_kwargs)
        if variable_pooling == "flatten":
            features_dim = d * encoder.embed_dim
        elif variable_pooling == "mean-max":
            features_dim = 2 * encoder.embed_dim
        else:
            raise ValueError(
                f"variable_pooling must be 'flatten' or 'mean-max', got {variable_pooling!r}"
            )
        super().__init__(observation_space, features_dim)
        self.encoder = encoder
        self.variable_pooling = variable_pooling

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Dict of ``history (B, N, d, 2)`` and ``mask (B, N)`` -> ``(B, features_dim)``."""
        z = self.encoder(observations["history"], observations["mask"])
        if self.variable_pooling == "flatten":
            return z.flatten(1)
        return torch.cat([z.mean(dim=1), z.amax(dim=1)], dim=-1)
