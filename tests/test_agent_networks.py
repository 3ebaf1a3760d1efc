"""Properties of the CAASL encoder: equivariance in variables, invariance in sample order,
independence from padding; standardisation of the inputs."""

import numpy as np
import pytest
import torch
from agent_toy_env import TINY_ENCODER

from caasl_agent.torch_layers import (
    CAASLEncoder,
    CAASLFeaturesExtractor,
    standardize_history,
    valid_rows,
)

TINY = dict(TINY_ENCODER, n_layers=2)  # two layers: one over variables, one over samples each
ATOL = 1e-5


def make_batch(b=3, n=7, d=4, valid=(5, 3, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    history = torch.randn(b, n, d, 2, generator=g)
    history[..., 1] = (torch.rand(b, n, d, generator=g) < 0.3).float()
    mask = (torch.arange(n)[None] < torch.tensor(valid)[:, None]).float()
    history = history * mask[:, :, None, None]
    return history, mask


@pytest.fixture(params=["none", "zscore", "counts"])
def encoder(request):
    torch.manual_seed(0)
    return CAASLEncoder(**TINY, standardization=request.param).eval()


def counts_if_needed(encoder, history):
    if encoder.standardization == "counts":
        return torch.stack([history[..., 0].abs().mul(5).floor(), history[..., 1]], dim=-1)
    return history


def test_equivariant_in_variables(encoder):
    history, mask = make_batch()
    history = counts_if_needed(encoder, history)
    out = encoder(history, mask)
    for seed in range(3):
        perm = torch.randperm(history.shape[2], generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(
            encoder(history[:, :, perm], mask), out[:, perm], atol=ATOL, rtol=0
        )


def test_invariant_to_sample_order(encoder):
    history, mask = make_batch(valid=(7, 7, 7))
    history = counts_if_needed(encoder, history)
    out = encoder(history, mask)
    perm = torch.randperm(history.shape[1], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(encoder(history[:, perm], mask[:, perm]), out, atol=ATOL, rtol=0)


def test_independent_of_padding_content_and_amount(encoder):
    history, mask = make_batch()
    history = counts_if_needed(encoder, history)
    out = encoder(history, mask)
    garbage = history + 50 * (1 - mask)[:, :, None, None] * torch.randn_like(history).abs()
    torch.testing.assert_close(encoder(garbage, mask), out, atol=ATOL, rtol=0)
    longer = torch.cat([history, torch.zeros(3, 9, 4, 2)], dim=1)
    torch.testing.assert_close(
        encoder(longer, torch.cat([mask, torch.zeros(3, 9)], 1)), out, atol=ATOL, rtol=0
    )
    # one env alone gives the same result as inside a batch with other envs
    torch.testing.assert_close(
        encoder(history[1:2, :3], mask[1:2, :3]), out[1:2], atol=ATOL, rtol=0
    )


def test_output_depends_on_the_data():
    torch.manual_seed(0)
    enc = CAASLEncoder(**TINY).eval()
    history, mask = make_batch()
    changed = history.clone()
    changed[0, 0, 0, 0] += 1.0
    assert (enc(changed, mask)[0] - enc(history, mask)[0]).abs().max() > 1e-4


def test_empty_history_is_finite_and_bad_shapes_raise():
    enc = CAASLEncoder(**TINY).eval()
    assert torch.isfinite(enc(torch.zeros(2, 5, 3, 2), torch.zeros(2, 5))).all()
    with pytest.raises(ValueError, match="history must have shape"):
        enc(torch.zeros(2, 5, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="mask must have shape"):
        enc(torch.zeros(2, 5, 3, 2), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="n_heads"):
        CAASLEncoder(embed_dim=6, n_heads=4)


def test_zscore_uses_valid_rows_only():
    history, mask = make_batch()
    valid = mask > 0
    z = standardize_history(history, valid, "zscore")
    for b in range(3):
        rows = z[b, valid[b], :, 0]
        torch.testing.assert_close(rows.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(rows.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(z[..., 1], history[..., 1])


def test_counts_standardisation_matches_avici_recipe():
    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, size=(6, 4)).astype(np.float64)
    x[2] = 0.0  # an all-zero row: 0/0 -> missing
    with np.errstate(divide="ignore", invalid="ignore"):
        cpm = x / x.sum(1, keepdims=True) * 1e6
        logged = np.log2(np.where(cpm > 0, cpm, np.nan))
    expected = np.nan_to_num((logged - np.nanmin(logged)) / np.nanstd(logged), nan=0.0)
    history = torch.zeros(1, 9, 4, 2, dtype=torch.float64)
    history[0, :6, :, 0] = torch.from_numpy(x)
    history[0, 6:, :, 0] = 1000.0  # padding must not count
    valid = torch.arange(9)[None] < 6
    out = standardize_history(history, valid, "counts")
    np.testing.assert_allclose(out[0, :6, :, 0].numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("mode", ["zscore", "counts"])
def test_encoder_standardises_exactly_as_avici(mode):
    from caasl_envs.reward.avici import AVICIModel

    history, mask = make_batch()
    if mode == "counts":
        history[..., 0] = torch.poisson(history[..., 0].abs() * 3) * mask[:, :, None]
    history[1, 4:, :, 1] = 1.0  # flags on padded rows: both must zero them
    avici = AVICIModel(dim=8, layers=1, num_heads=2, key_size=4, expects_counts=mode == "counts")
    expected = avici.standardize(history, mask > 0)
    ours = standardize_history(history, valid_rows(mask), mode)
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)
    assert not ours[1, 4:].any()


def test_counts_standardisation_rejects_negative_counts():
    history, mask = make_batch()
    with pytest.raises(ValueError, match="non-negative"):
        standardize_history(history, mask > 0, "counts")


def test_features_extractor_shapes():
    from gymnasium import spaces

    space = spaces.Dict(
        {
            "history": spaces.Box(-np.inf, np.inf, (7, 4, 2), np.float32),
            "mask": spaces.Box(0, 1, (7,), np.float32),
        }
    )
    history, mask = make_batch()
    flat = CAASLFeaturesExtractor(space, **TINY)
    pooled = CAASLFeaturesExtractor(space, variable_pooling="mean-max", **TINY)
    assert flat({"history": history, "mask": mask}).shape == (3, flat.features_dim) == (3, 32)
    assert pooled({"history": history, "mask": mask}).shape == (3, 16)
