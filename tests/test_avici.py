"""AVICIModel: parity with the official JAX implementation, safe import, padding, standardisers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import caasl_envs
from caasl_envs.inference import standardize_counts, standardize_real
from caasl_envs.reward.avici import AVICIModel
from caasl_envs.reward.official import (
    InertStub,
    load_official_avici,
    load_official_checkpoint,
    restricted_load,
)

DATA = Path(__file__).parent / "data" / "avici"
FIXTURES = {"tiny": False, "tiny-grn": True}  # name -> expects_counts


def _cases(name: str):
    cases = np.load(DATA / name / "cases.npz", allow_pickle=False)
    for k in range(1, int(cases["n_cases"]) + 1):
        x = np.stack([cases[f"x_{k}"], cases[f"interv_{k}"]], axis=-1)
        yield k, torch.from_numpy(x.astype(np.float64))[None], cases


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_parity_float64_with_official(name):
    model = load_official_checkpoint(
        DATA / name, expects_counts=FIXTURES[name], dtype=torch.float64
    )
    assert model.mask_diag == bool(np.load(DATA / name / "cases.npz")["mask_diag"])
    for k, x, cases in _cases(name):
        np.testing.assert_allclose(
            model.standardize(x)[0].numpy(), cases[f"xstd_{k}"], atol=1e-9, rtol=0
        )
        logits = model(x)[0].detach().numpy()
        np.testing.assert_allclose(logits, cases[f"logits_{k}"], atol=1e-8, rtol=0)
        probs = model.edge_probs(x)[0].numpy()
        assert np.abs(probs - cases[f"probs_{k}"]).max() <= 1e-5


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_parity_float32_with_official(name):
    model = load_official_checkpoint(DATA / name, expects_counts=FIXTURES[name])
    for k, x, cases in _cases(name):
        probs = model.edge_probs(x.float())[0].double().numpy()
        assert np.abs(probs - cases[f"probs_{k}"]).max() <= 1e-5
        binary = (probs > 0.5).astype(np.int8)
        near_half = np.abs(cases[f"probs_f32_{k}"] - 0.5) < 1e-4
        assert (binary == cases[f"binary_{k}"])[~near_half].all()


def test_load_reward_model_accepts_checkpoint_folder():
    model = caasl_envs.load_reward_model(DATA / "tiny", expects_counts=False)
    assert isinstance(model, AVICIModel) and not model.training and model.expects_counts is False
    x = torch.stack([torch.randn(3, 20, 5), (torch.rand(3, 20, 5) < 0.1).float()], -1)
    probs = model.edge_probs(x)
    assert probs.shape == (3, 5, 5) and probs.dtype == torch.float32


class _Exploit:
    def __reduce__(self):
        return (
            exec,
            (
                "import pathlib; pathlib.Path(__import__('os').environ['CAASL_PWNED']).write_text('x')",
            ),
        )


def test_malicious_pickle_executes_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("CAASL_PWNED", str(marker))
    payload = tmp_path / "evil.pkl"
    payload.write_bytes(pickle.dumps({"params": _Exploit()}))
    loaded = restricted_load(payload)
    assert not marker.exists()
    assert isinstance(loaded["params"], InertStub)
    # the same file does run code with plain pickle: the test above can fail
    with open(payload, "rb") as handle:
        pickle.load(handle)
    assert marker.exists()


def test_malicious_checkpoint_folder_is_refused(tmp_path):
    (tmp_path / "kwargs.json").write_text((DATA / "tiny" / "kwargs.json").read_text())
    (tmp_path / "checkpoint_0000001.pkl").write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(ValueError, match="ModelState"):
        load_official_checkpoint(tmp_path)


def test_unsupported_kwargs_are_refused(tmp_path):
    text = (
        (DATA / "tiny" / "kwargs.json")
        .read_text()
        .replace('"cosine_sim": true', '"cosine_sim": false')
    )
    (tmp_path / "kwargs.json").write_text(text)
    (tmp_path / "checkpoint_0000000.pkl").write_bytes(
        (DATA / "tiny" / "checkpoint_0000000.pkl").read_bytes()
    )
    with pytest.raises(ValueError, match="cosine_sim"):
        load_official_checkpoint(tmp_path)


@pytest.mark.parametrize("expects_counts", [False, True])
def test_padding_changes_nothing(expects_counts):
    torch.manual_seed(0)
    model = (
        AVICIModel(dim=16, layers=2, num_heads=2, key_size=8, expects_counts=expects_counts)
        .double()
        .eval()
    )
    lengths = [7, 12, 3]
    n, d = max(lengths) + 2, 4
    x = torch.zeros(len(lengths), n, d, 2, dtype=torch.float64)
    mask = torch.zeros(len(lengths), n, dtype=torch.bool)
    singles = []
    for b, length in enumerate(lengths):
        values = (
            torch.poisson(torch.full((length, d), 3.0))
            if expects_counts
            else torch.randn(length, d)
        )
        flags = (torch.rand(length, d) < 0.2).double()
        rows = torch.stack([values, flags], -1)
        x[b, :length], mask[b, :length] = rows, True
        singles.append(model.edge_probs(rows[None])[0])
    batched = model.edge_probs(x, mask)
    for b in range(len(lengths)):
        torch.testing.assert_close(batched[b], singles[b], atol=1e-12, rtol=0)
    # garbage in padded rows changes nothing either
    noisy = x + (~mask)[..., None, None] * 100.0
    torch.testing.assert_close(model.edge_probs(noisy, mask), batched, atol=1e-12, rtol=0)


def test_any_d_and_n_and_bad_input():
    model = AVICIModel(dim=8, layers=1, num_heads=2, key_size=4).eval()
    for n, d in ((1, 2), (5, 3), (30, 11)):
        probs = model.edge_probs(torch.randn(2, n, d, 2).clamp(0, 1).round())  # flags 0/1
        assert probs.shape == (2, d, d) and torch.all(probs.diagonal(dim1=-2, dim2=-1) == 0)
        assert torch.all((probs >= 0) & (probs <= 1))
    with pytest.raises(ValueError, match="shape"):
        model.edge_probs(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="NaN"):
        model.edge_probs(torch.full((1, 4, 3, 2), float("nan")))
    with pytest.raises(ValueError, match="valid row"):
        model.edge_probs(torch.zeros(2, 4, 3, 2), torch.tensor([[True] * 4, [False] * 4]))
    with pytest.raises(ValueError, match="dim"):
        AVICIModel(dim=0)


def test_standardizers_by_hand():
    values = torch.tensor([[[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]]], dtype=torch.float64)
    out = standardize_real(values, torch.ones(1, 3, dtype=torch.bool))
    np.testing.assert_allclose(
        out[0, :, 0].numpy(), np.array([-1.0, 0.0, 1.0]) * np.sqrt(1.5), atol=1e-12
    )
    assert torch.all(out[0, :, 1] == 0)  # constant column: divided by 1
    counts = torch.tensor([[[0.0, 4.0], [2.0, 2.0], [0.0, 0.0]]], dtype=torch.float64)
    logs = np.log2(np.array([1e6, 5e5, 5e5]))
    expected = np.zeros((3, 2))
    expected[[0, 1, 1], [1, 0, 1]] = (logs - logs.min()) / logs.std()
    out = standardize_counts(counts, torch.ones(1, 3, dtype=torch.bool))
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-12)
    with pytest.raises(ValueError, match="non-negative"):
        standardize_counts(-counts - 1, torch.ones(1, 3, dtype=torch.bool))


def test_load_official_avici_through_hub_cache(tmp_path, monkeypatch):
    """The hub path with a stand-in ``huggingface_hub`` that serves the fixture (no network)."""
    import sys
    import types

    requested = []

    def hf_hub_download(repo_id, filename, **kwargs):
        requested.append((repo_id, filename, kwargs))
        name, base = filename.split("/")
        source = (
            DATA / "tiny" / ("checkpoint_0000000.pkl" if base.startswith("checkpoint_") else base)
        )
        target = tmp_path / name / base
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(source.read_bytes())
        return str(target)

    monkeypatch.setitem(
        sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download)
    )
    model = load_official_avici("scm-v0", local_files_only=True)
    assert {r[1] for r in requested} == {"scm-v0/kwargs.json", "scm-v0/checkpoint_0300000.pkl"}
    assert all(r[0] == "larslorch/avici" and r[2] == {"local_files_only": True} for r in requested)
    assert (
        model.expects_counts is False and load_official_avici("neurips-grn").expects_counts is True
    )
    with pytest.raises(ValueError, match="unknown official"):
        load_official_avici("neurips-nonlinear")


def test_shipped_linear_model_loads():
    assert "avici-linear-v0" in caasl_envs.available_reward_models()
    model = caasl_envs.load_reward_model("avici-linear-v0")
    assert isinstance(model, AVICIModel) and not model.training and model.expects_counts is False
    assert all(p.device.type == "cpu" for p in model.parameters())
    weights = Path(caasl_envs.reward.WEIGHTS_DIR)
    assert (weights / "avici-linear-v0.pt").stat().st_size < 5e6 and (
        weights / "avici-linear-v0.md"
    ).is_file()
    x = torch.stack([torch.randn(2, 60, 10), torch.zeros(2, 60, 10)], -1)
    probs = model.edge_probs(x)
    assert probs.shape == (2, 10, 10) and torch.all(probs.diagonal(dim1=-2, dim2=-1) == 0)


def test_saved_model_file_is_a_reward_model_spec_for_envs_and_benchmarks(tmp_path):
    from caasl_agent.bench.runner import benchmark
    from caasl_envs.reward import is_reward_model_spec

    path = tmp_path / "mine.pt"
    AVICIModel(dim=8, layers=1, num_heads=2, key_size=4).save(path)
    assert is_reward_model_spec(str(path)) and not is_reward_model_spec(str(tmp_path / "no.pt"))
    model = caasl_envs.load_reward_model(str(path))
    assert isinstance(model, AVICIModel)
    env = caasl_envs.CausalDesignEnv(d=3, n0=4, budget=1, reward_model=str(path))
    env.reset(seed=0)
    results = benchmark(
        ["random"],
        suite="tiny",
        settings=["d4"],
        episodes=1,
        reward_model=str(path),
        progress=False,
    )
    assert results.meta["settings"][0]["reward_model"] == str(path)


def _random_history(b: int, n: int, d: int, seed: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(b, n, d, generator=gen, dtype=dtype)
    flags = (torch.rand(b, n, d, generator=gen) < 0.2).to(dtype)
    return torch.stack([values, flags], -1)


def _check_inference_path(module: torch.nn.Module, x: torch.Tensor, mask) -> torch.Tensor:
    """Assert that ``module(x, mask)`` in eval mode gives the same under ``no_grad`` and
    ``inference_mode`` (the inference path) as with autograd, and leaves ``x`` as it was;
    return the differentiable path's output."""
    x_before = x.clone()
    reference = module(x, mask)  # grad enabled: the differentiable path
    assert reference.requires_grad
    for context in (torch.inference_mode, torch.no_grad):  # buffers made in inference mode
        with context():
            fast = module(x, mask)
        assert not fast.requires_grad
        torch.testing.assert_close(fast, reference.detach(), atol=1e-10, rtol=0)
    torch.testing.assert_close(x, x_before, atol=0, rtol=0)  # the input is not written to
    return reference


@pytest.mark.parametrize("masked", [False, True])
def test_inference_path_matches_differentiable_path(masked, monkeypatch):
    """The in-place inference path (centred stream, RMS norms, folded weights, workspace,
    batch chunks, softmax without the maximum) against the autograd path, in float64."""
    from caasl_envs import inference

    monkeypatch.setattr(inference, "INFERENCE_CHUNK_TOKENS", 2 * 9 * 5)  # chunks of 2 datasets
    torch.manual_seed(1)
    model = AVICIModel(dim=16, layers=2, num_heads=4, key_size=4).double().eval()
    with torch.no_grad():  # non-trivial LayerNorm affines, so the folding is exercised
        for name, p in model.named_parameters():
            if "ln_" in name or "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    x = _random_history(5, 9, 5, seed=2)
    mask = None
    if masked:
        mask = torch.ones(5, 9, dtype=torch.bool)
        mask[1, 6:], mask[4, 2:] = False, False
    reference = _check_inference_path(model, x, mask)
    # other shapes through the same workspace, then the first again
    with torch.no_grad():
        for b, n, d in ((1, 30, 3), (7, 4, 6)):
            other = _random_history(b, n, d, seed=b)
            torch.testing.assert_close(
                model(other), model(other.requires_grad_()).detach(), atol=1e-10, rtol=0
            )
        torch.testing.assert_close(model(x, mask), reference.detach(), atol=1e-10, rtol=0)


def test_inference_cache_follows_parameter_updates():
    """The folded inference weights are rebuilt after an optimiser step, ``load_state_dict``
    and a dtype change, and are not pickled."""
    torch.manual_seed(0)
    model = AVICIModel(dim=8, layers=1, num_heads=2, key_size=4).eval()
    x = _random_history(2, 6, 3, seed=0, dtype=torch.float32)

    def both() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            fast = model(x)
        return fast, model(x).detach()

    fast, slow = both()
    torch.testing.assert_close(fast, slow, atol=2e-6, rtol=0)
    assert model._inference_cache is not None
    clone = pickle.loads(pickle.dumps(model))  # pickled without the cache
    assert clone._inference_cache is None
    with torch.no_grad():
        torch.testing.assert_close(clone(x), fast, atol=0, rtol=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    model(x).sum().backward()
    optimiser.step()
    new_fast, new_slow = both()
    assert (new_slow - slow).abs().max() > 1e-3  # the step changed the model ...
    torch.testing.assert_close(new_fast, new_slow, atol=2e-6, rtol=0)  # ... and the cache
    other = AVICIModel(dim=8, layers=1, num_heads=2, key_size=4).eval()
    model.load_state_dict(other.state_dict())
    fast, slow = both()
    torch.testing.assert_close(fast, slow, atol=2e-6, rtol=0)
    torch.testing.assert_close(fast, other(x).detach(), atol=2e-6, rtol=0)
    with torch.no_grad():  # as a fused optimiser: no version bump; train()/eval() drop the cache
        for p in model.parameters():
            p.data.add_(0.01)
    model.train()
    model.eval()
    fast, slow = both()
    torch.testing.assert_close(fast, slow, atol=2e-6, rtol=0)
    model.double()
    x = x.double()
    fast, slow = both()
    assert fast.dtype == torch.float64
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)


@pytest.mark.parametrize("case", ["plain", "large", "tiny-rows", "masked"])
def test_softmax_in_place(case):
    """The inference softmax against ``torch.softmax``: its fast path (no maximum) and both
    fallbacks (a score above the exp limit; rows whose exponentials underflow)."""
    from caasl_envs.inference import _exp_scores_

    gen = torch.Generator().manual_seed(0)
    for t in (10, 60):
        raw = 4 * torch.randn(6, t, t, generator=gen)
        keep = None
        if case == "large":
            raw[2, 3, 1] = 100.0
        elif case == "tiny-rows":
            raw[1, 2] -= 120.0  # exp underflows on the whole row
        elif case == "masked":
            keep = (torch.rand(2, 1, 1, t, generator=gen) < 0.5).float()
            keep[..., 0] = 1.0
        expected = (
            raw
            if keep is None
            else raw.masked_fill(keep.repeat_interleave(3, 0).view(6, 1, t) == 0, float("-inf"))
        )
        expected = expected.softmax(-1)
        scores = raw.clone()
        calls = []

        def recompute(scores=scores, raw=raw, calls=calls):
            calls.append(1)
            return scores.copy_(raw)

        row = torch.empty(6, t, 1)
        if _exp_scores_(scores, row, recompute, keep):  # the caller's division by the row sums
            scores.mul_(row.reciprocal_())
        torch.testing.assert_close(scores, expected, atol=1e-6, rtol=1e-5)
        # the fast path sees the overflow ("large") or underflow in the row sums, then recomputes
        assert len(calls) == (case in ("large", "tiny-rows"))


@pytest.mark.parametrize("standardization", ["none", "zscore"])
@pytest.mark.parametrize("padded", [False, True])
def test_policy_encoder_inference_path(standardization, padded, monkeypatch):
    """The policy encoder shares the reward model's inference path (eval mode, no autograd)."""
    from caasl_agent.torch_layers import CAASLEncoder
    from caasl_envs import inference

    monkeypatch.setattr(inference, "INFERENCE_CHUNK_TOKENS", 2 * 8 * 5)  # chunks of 2 histories
    torch.manual_seed(0)
    encoder = CAASLEncoder(
        embed_dim=16, n_layers=2, n_heads=4, ff_dim=32, dropout=0.1, standardization=standardization
    )
    encoder.double().eval()
    history = _random_history(5, 8, 5, seed=1)
    mask = torch.ones(5, 8, dtype=torch.float64)
    if padded:
        mask[0, 5:], mask[3, 1:] = 0.0, 0.0
        history = history * mask[:, :, None, None]
    reference = _check_inference_path(encoder, history, mask)
    encoder.train()  # dropout on: the inference path is not taken, even without autograd
    with torch.no_grad():
        assert (encoder(history, mask) - reference.detach()).abs().max() > 1e-3


def test_inference_workspace_reuses_memory_and_stays_bounded():
    from caasl_envs.inference import _MAX_VIEWS, InferenceWorkspace

    workspace = InferenceWorkspace(torch.float32, torch.device("cpu"))
    big = workspace.get("A", (4, 5))
    small = workspace.get("A", (3,))
    assert small.data_ptr() == big.data_ptr() and workspace.get("A", (4, 5)) is big
    grown = workspace.get("A", (100,))  # a larger request replaces the buffer
    assert grown.numel() == 100 and workspace.buffers["A"].numel() == 100
    for length in range(1, 2 * _MAX_VIEWS):
        workspace.get("B", (length,))
    assert len(workspace.views) <= _MAX_VIEWS
