"""The cut target head: its energy, gains, decoding, equivariance and imitation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from test_imitation import TINY, assert_reproduces_toy_teacher

import caasl_agent.cut_head as cut_head
from caasl_agent import CAASL
from caasl_agent.cut_head import (
    CutEnergy,
    alternating_signs,
    atypical_signs,
    data_correlation,
    edge_counts,
    pseudo_likelihood_loss,
    sign_coupling,
    targeted_rows,
    valid_sums,
)
from caasl_agent.hyperparams import check_hyperparameters
from caasl_agent.policies import ATYPICAL_METRICS
from caasl_envs.sb3 import SB3VecEnvAdapter
from caasl_envs.vector import CausalDesignVectorEnv


def _energy_of(weights, unary, member):
    """``F(S)`` by its definition: sum over j in S, k not in S of W_jk, plus sum_j in S u_j."""
    return (member[:, :, None] * weights * (1 - member)[:, None, :]).sum((1, 2)) + (
        member * unary
    ).sum(1)


def _random_inputs(b=3, n=9, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    belief = torch.rand(b, d, d, generator=g) * (1 - torch.eye(d))
    history = torch.randn(b, n, d, 2, generator=g)
    history[..., 1] = (torch.rand(b, n, d, generator=g) < 0.3).float()
    mask = torch.ones(b, n)
    mask[0, -2:] = 0
    return belief, history, mask


def test_edge_counts_count_rows_with_j_targeted_and_k_not():
    history = torch.zeros(1, 4, 3, 2)
    history[0, 0, :, 1] = torch.tensor([1.0, 0.0, 0.0])
    history[0, 1, :, 1] = torch.tensor([1.0, 1.0, 0.0])
    history[0, 2, :, 1] = torch.tensor([0.0, 0.0, 1.0])
    history[0, 3, :, 1] = torch.tensor([1.0, 0.0, 0.0])  # masked out
    n = edge_counts(history, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    expected = torch.tensor([[[0.0, 1.0, 2.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])
    torch.testing.assert_close(n, expected)
    # values alternate with each intervention on a variable: x0 twice, x1 and x2 once
    signs = alternating_signs(history, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    torch.testing.assert_close(signs, torch.tensor([[1.0, -1.0, -1.0]]))
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the caller's targeted rows give the same
    torch.testing.assert_close(
        alternating_signs(history, mask, targeted_rows(history, mask)), signs
    )


def test_untrained_head_is_the_hand_rule_and_gains_are_energy_differences():
    belief, history, mask = _random_inputs()
    energy = CutEnergy(discount=2.0, sharpness=3.0)
    weights, unary = energy(belief, history, mask)
    p = belief.clamp(1e-12, 1 - 1e-12)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()) * (1 - torch.eye(5))
    rule = 3.0 * entropy / (1 + 2.0 * edge_counts(history, mask))
    torch.testing.assert_close(weights, rule, atol=1e-5, rtol=1e-5)
    assert unary.abs().max() <= 3.0 * cut_head.TIE_BREAK  # only the tie-breaker
    unary = torch.randn(3, 5)
    for bits in itertools.islice(itertools.product([0.0, 1.0], repeat=5), 0, 32, 5):
        member = torch.tensor(bits).expand(3, 5)
        gains = CutEnergy.gains(weights, unary, member)
        for j in range(5):
            plus, minus = member.clone(), member.clone()
            plus[:, j], minus[:, j] = 1.0, 0.0
            diff = _energy_of(weights, unary, plus) - _energy_of(weights, unary, minus)
            torch.testing.assert_close(gains[:, j], diff, atol=1e-5, rtol=1e-5)


def test_inference_skips_only_mlps_whose_output_is_zero():
    """Without a gradient an all-zero last layer is not evaluated: the energy is bit for bit
    the one with the MLPs evaluated, and a trained layer is used."""
    belief, history, mask = _random_inputs()
    energy = CutEnergy(discount=2.0, sharpness=3.0)
    evaluated = energy(belief, history, mask)  # parameters need a gradient: MLPs evaluated
    with torch.no_grad():
        skipped = energy(belief, history, mask)
    for a, b in zip(evaluated, skipped):
        assert torch.equal(a.detach(), b)
    with torch.no_grad():
        energy.phi[-1].bias.fill_(0.5)
        energy.unary[-1].bias.fill_(0.1)
        trained = energy(belief, history, mask)
    for a, b in zip(energy(belief, history, mask), trained):
        torch.testing.assert_close(a.detach(), b)
    off = 1 - torch.eye(5)
    torch.testing.assert_close(trained[0], skipped[0] * math.exp(0.5) * off)
    torch.testing.assert_close(trained[1], skipped[1] + 0.3)
    with torch.no_grad():  # a belief with a non-zero diagonal still gives W a zero diagonal
        weights, _ = energy(belief + 0.3 * torch.eye(5), history, mask)
    assert weights.diagonal(dim1=1, dim2=2).eq(0).all()


def test_gains_and_decoding_are_permutation_equivariant():
    torch.manual_seed(0)
    energy = CutEnergy()
    for module in (energy.phi, energy.unary):
        torch.nn.init.normal_(module[-1].weight)  # a trained-looking head
    belief, history, mask = _random_inputs()
    perm = torch.tensor([3, 0, 4, 1, 2])
    gains = energy.decode(*energy(belief, history, mask))
    permuted = energy.decode(*energy(belief[:, perm][:, :, perm], history[:, :, perm], mask))
    torch.testing.assert_close(permuted, gains[:, perm], atol=1e-5, rtol=1e-5)
    assert energy.decode(*energy(belief.flip(0), history, mask)).ne(gains).any()


def test_pseudo_likelihood_prefers_the_sets_the_energy_favours():
    belief, history, mask = _random_inputs()
    weights, unary = CutEnergy()(belief, history, mask)
    decoded = CutEnergy.gains(weights, unary, torch.full((3, 5), 0.5)) > 0
    good, _ = pseudo_likelihood_loss(weights, unary, decoded)
    bad, _ = pseudo_likelihood_loss(weights, unary, ~decoded)
    assert good < bad


def _cut_model(**policy):
    vec = CausalDesignVectorEnv(2, **TINY, observe_belief=True)
    encoder = {"embed_dim": 8, "n_layers": 1, "n_heads": 2, "ff_dim": 16, "dropout": 0.0}
    kwargs = {
        "net_arch": [16],
        "actor_encoder_kwargs": encoder,
        "critic_encoder_kwargs": encoder,
        "target_head": "cut",
        **policy,
    }
    return CAASL(
        SB3VecEnvAdapter(vec), batch_size=8, learning_starts=4, seed=0, policy_kwargs=kwargs
    )


def test_toy_teacher_is_reproduced_exactly_by_the_cut_head(tmp_path):
    model = _cut_model()
    obs = assert_reproduces_toy_teacher(model, tmp_path, learning_rate=1e-2)
    action, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "cut")
    loaded = CAASL.load(tmp_path / "cut", device="cpu")
    again, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(again, action)


def test_cut_head_needs_the_belief_and_a_known_name():
    model = _cut_model()
    history, mask = np.zeros((1, 8, 4, 2), np.float32), np.ones((1, 8), np.float32)
    with pytest.raises(ValueError, match="observe_belief=True"):
        model.predict({"history": history, "mask": mask})
    with pytest.raises(ValueError, match="target_head"):
        check_hyperparameters({"policy_kwargs": {"target_head": "greedy"}})
    model.learn(12)  # SAC's losses run through the decoded gains


def test_decoding_a_strong_flat_coupling_does_not_swing_to_all_or_nothing(monkeypatch):
    """Many uncertain edges of similar weight (an observational history read through a blurry
    belief at d = 20) make the synchronous updates swing between every variable and none; the
    decoded design is neither, and does not depend on the parity of the iteration count."""
    d = 20
    p = 0.2 + 0.1 * torch.rand(4, d, d, generator=torch.Generator().manual_seed(0))
    weights = -10 * (p * p.log() + (1 - p) * (1 - p).log()) * (1 - torch.eye(d))
    designs = []
    for iterations in (30, 31):
        monkeypatch.setattr(cut_head, "DECODE_ITERATIONS", iterations)
        designs.append(CutEnergy().decode(weights, torch.zeros(4, d)) > 0)
    assert torch.equal(designs[0], designs[1])
    sizes = designs[0].sum(1)
    assert ((sizes >= d // 4) & (sizes <= 3 * d // 4)).all(), sizes


def test_a_flat_belief_still_gets_a_design():
    """Every gain is exactly 0 under a constant belief before any intervention; the tie-breaker
    (each variable's own data) still picks some variables, not none and not all."""
    model = _cut_model()
    vec = CausalDesignVectorEnv(
        16, **{**TINY, "reward_model": "constant-prior"}, observe_belief=True
    )
    obs, _ = vec.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    sizes = (action[:, :4] > 0).sum(1)
    assert 0 < sizes.mean() < 4


def _correlated_history(b=32, n=60, d=6, seed=0):
    """Valid rows of ``b`` random linear mixings (strong correlations of both signs)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=g) @ torch.randn(b, d, d, generator=g)
    history = torch.zeros(b, n, d, 2)
    history[..., 0] = x
    history[:, -5:, 0, 1] = 1.0  # a few interventional rows
    return history, torch.ones(b, n)


def _sign_objective(corr, targets, signs):
    """``sum_{i != j, both targets} C_ij v_i v_j``."""
    member = (targets.float() * signs)[:, :, None] * (targets.float() * signs)[:, None, :]
    return (corr * member * (1 - torch.eye(corr.shape[-1]))).sum((1, 2))


def test_atypical_signs_oppose_correlated_targets_and_keep_the_rest():
    history, mask = _correlated_history(b=1, d=4)
    z = torch.randn(2, 60, generator=torch.Generator().manual_seed(1))
    history[0, :, :, 0] = torch.stack([z[0], z[0] + 0.1, z[1], -z[1]], -1)  # 0 ~ 1, 2 ~ -3
    start = torch.ones(1, 4)
    signs = atypical_signs(history, mask, torch.tensor([[True, True, True, False]]), start)
    assert signs[0, 0] * signs[0, 1] == -1 and signs[0, 3] == 1  # the non-target keeps +1
    signs = atypical_signs(history, mask, torch.ones(1, 4, dtype=torch.bool), start)
    assert signs[0, 0] * signs[0, 1] == -1 and signs[0, 2] * signs[0, 3] == 1


def test_atypical_signs_never_raise_the_objective_and_are_equivariant():
    history, mask = _correlated_history()
    g = torch.Generator().manual_seed(2)
    targets = torch.rand(32, 6, generator=g) < 0.6
    start = torch.where(torch.rand(32, 6, generator=g) < 0.5, -1.0, 1.0)
    signs = atypical_signs(history, mask, targets, start)
    corr = data_correlation(history, mask)
    before, after = _sign_objective(corr, targets, start), _sign_objective(corr, targets, signs)
    assert (after <= before + 1e-6).all() and (after < before - 1e-6).any()
    assert torch.equal(signs[~targets], start[~targets])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    permuted = atypical_signs(history[:, :, perm], mask, targets[:, perm], start[:, perm])
    assert torch.equal(permuted, signs[:, perm])


def test_mahalanobis_signs_raise_the_distance_and_are_equivariant():
    """The Mahalanobis rule never lowers ``v^T C_SS^-1 v`` (the targets' values' distance from
    the data), raises it somewhere, and relabelling the variables relabels the signs."""
    history, mask = _correlated_history()
    g = torch.Generator().manual_seed(3)
    targets = torch.rand(32, 6, generator=g) < 0.6
    start = torch.where(torch.rand(32, 6, generator=g) < 0.5, -1.0, 1.0)
    signs = atypical_signs(history, mask, targets, start, "mahalanobis")
    corr = data_correlation(history, mask)
    member = targets.float()
    block = corr * member[:, :, None] * member[:, None, :] + torch.diag_embed(1 - member)
    precision = torch.linalg.inv(block + cut_head.MAHALANOBIS_RIDGE * torch.eye(6))

    def distance(v):
        v = v * member
        return torch.einsum("bi,bij,bj->b", v, precision, v)

    assert (distance(signs) >= distance(start) - 1e-4).all()
    assert (distance(signs) > distance(start) + 1e-3).any()
    assert torch.equal(signs[~targets], start[~targets])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    permuted = atypical_signs(
        history[:, :, perm], mask, targets[:, perm], start[:, perm], "mahalanobis"
    )
    assert torch.equal(permuted, signs[:, perm])
    assert not torch.equal(signs, atypical_signs(history, mask, targets, start))
    with pytest.raises(ValueError, match="metric"):
        sign_coupling(history, mask, targets, "euclidean")


def test_local_search_reaches_a_local_maximum_of_the_energy():
    """From the mean-field cut, flips never lower ``F``, end where no single flip raises it,
    and the returned gains are positive exactly on the final set."""
    torch.manual_seed(0)
    belief = torch.rand(64, 8, 8) * (1 - torch.eye(8))
    history = torch.randn(64, 30, 8, 2)
    history[..., 1] = (torch.rand(64, 30, 8) < 0.2).float()
    mask = torch.ones(64, 30)
    weights, unary = CutEnergy()(belief, history, mask)
    start = CutEnergy().mean_field(weights, unary) > 0
    gains = CutEnergy.improve(weights, unary, start, valid_sums(history, mask))
    final = gains > 0
    before = _energy_of(weights, unary, start.float())
    after = _energy_of(weights, unary, final.float())
    assert (after >= before - 1e-5).all() and (after > before + 1e-3).any()
    for j in range(8):
        flipped = final.clone()
        flipped[:, j] = ~flipped[:, j]
        assert (_energy_of(weights, unary, flipped.float()) <= after + 1e-4).all()


def test_local_search_breaks_ties_by_the_data_not_the_labels():
    """A flat coupling (every pair the same weight) leaves every flip tied; with the data as
    the tie key the decoded set follows the variables under relabelling (by label it would
    not)."""
    d = 6
    weights = torch.full((1, d, d), 0.7) * (1 - torch.eye(d))
    history, mask = _correlated_history(b=1, d=d)
    key = valid_sums(history, mask)
    energy = CutEnergy(local_search=True)
    unary = torch.zeros(1, d)
    gains = energy.decode(weights, unary, key)
    assert 0 < (gains > 0).sum() < d
    for perm in (torch.tensor([3, 0, 5, 1, 4, 2]), torch.tensor([5, 4, 3, 2, 1, 0])):
        permuted = energy.decode(weights, unary, key[:, perm])
        assert torch.equal(permuted > 0, (gains > 0)[:, perm])
    with pytest.raises(ValueError, match="tie_key"):
        energy.decode(weights, unary)
    with pytest.raises(TypeError, match="local_search"):
        CutEnergy(local_search=1)


def test_cut_actor_signs_its_values_as_asked():
    vec = CausalDesignVectorEnv(8, **TINY, observe_belief=True)
    obs, _ = vec.reset(seed=0)
    history, mask = torch.as_tensor(obs["history"]), torch.as_tensor(obs["mask"])
    for rule in ("alternating", "atypical", "mahalanobis"):
        action, _ = _cut_model(value_signs=rule).predict(obs, deterministic=True)
        targets = torch.as_tensor(action[:, :4] > 0)
        expected = alternating_signs(history, mask)
        if rule in ATYPICAL_METRICS:
            expected = atypical_signs(history, mask, targets, expected, ATYPICAL_METRICS[rule])
        np.testing.assert_array_equal(np.sign(action[:, 4:]), expected.numpy())
        assert np.abs(action[:, 4:]).max() < 1.0  # tanh(3) by default
    with pytest.raises(ValueError, match="value_signs"):
        _cut_model(value_signs="random")
    with pytest.raises(ValueError, match="value_signs"):
        _cut_model(target_head="mlp", value_signs="atypical")


def test_cut_actor_values_at_the_bound_and_local_search_options():
    vec = CausalDesignVectorEnv(8, **TINY, observe_belief=True)
    obs, _ = vec.reset(seed=0)
    cut = {"local_search": True}
    action, _ = _cut_model(value_mean=10.0, cut_kwargs=cut).predict(obs, deterministic=True)
    np.testing.assert_array_equal(np.abs(action[:, 4:]), 1.0)
    model = _cut_model(cut_kwargs=cut)
    history, mask = torch.as_tensor(obs["history"]), torch.as_tensor(obs["mask"])
    energy = model.policy.actor.cut
    weights, unary = energy(torch.as_tensor(obs["belief"]), history, mask)
    expected = (
        energy.improve(
            weights, unary, energy.mean_field(weights, unary) > 0, valid_sums(history, mask)
        )
        > 0
    )
    action, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action[:, :4] > 0, expected.numpy())
    for bad in (0.0, float("inf"), "10", True):
        with pytest.raises(ValueError, match="value_mean"):
            _cut_model(value_mean=bad)
    with pytest.raises(ValueError, match="value_mean"):
        _cut_model(target_head="mlp", value_mean=10.0)
