import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import caasl_envs
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import TECHNICAL_NOISE, Measurement, SergioGRN, SergioPrior


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The simulator's many small per-step ops run faster on one thread than on two busy ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def chain_grn(basal=(2.0, 1.5), k_scale=1.0, **kwargs):
    """0 -> 1 (activates, K=3), 0 -> 2 (represses, K=-3), 1 -> 3 (activates, K=2), 4 alone.

    Two cell types; ``basal`` sets the master regulators 0 and 4 per cell type, ``k_scale``
    multiplies every interaction strength.
    """
    k = torch.zeros(1, 5, 5)
    k[0, 0, 1], k[0, 0, 2], k[0, 1, 3] = 3.0 * k_scale, -3.0 * k_scale, 2.0 * k_scale
    basal = torch.tensor(
        [[[basal[0], 1.0, 1.0, 1.0, basal[1]], [basal[1], 1.0, 1.0, 1.0, basal[0]]]]
    )
    return SergioGRN((k != 0).float(), k, basal, **{"counts": False, **kwargs})


def one_hot(b, d, *genes):
    t = torch.zeros(b, d, dtype=torch.bool)
    t[:, list(genes)] = True
    return t


def z_shift(after, before):
    """z-scores of the change in per-gene means between two independent samples ``(.., n, d)``."""
    n = after.shape[-2]
    se = ((after.var(-2) + before.var(-2)) / n).sqrt()
    return (after.mean(-2) - before.mean(-2)) / se


def test_knockout_silences_gene_and_moves_its_targets_by_the_interaction_sign():
    grn = chain_grn()
    rng = BatchedRNG.from_seeds([0])
    wild = grn.expression(rng, 3000)
    ko = grn.expression(rng, 3000, one_hot(1, 5, 0))
    assert torch.all(ko[..., 0] == 0)
    z = z_shift(ko, wild)[0]
    assert z[1] < -4  # activated target drops
    assert z[2] > 4  # repressed target rises
    assert z[3] < -4  # the drop propagates: half-responses stay those of the wild type
    assert abs(z[4]) < 4  # unrelated gene unchanged
    # Exactly zero also after technical noise and counting.
    noisy = chain_grn(
        counts=True, measurement=Measurement.draw(rng, TECHNICAL_NOISE["drop-seq"], 5)
    )
    assert torch.all(noisy.sample(rng, 200, one_hot(1, 5, 0))[..., 0] == 0)


def _descendants(adj: np.ndarray) -> np.ndarray:
    reach = adj.astype(bool)
    for _ in range(len(adj)):
        reach = reach | ((reach.astype(int) @ adj.astype(int)) > 0)
    return reach


def test_knockout_shifts_direct_targets_by_sign_across_prior_systems():
    prior = SergioPrior(d=8, technical_noise="clean", counts=False)
    rng = BatchedRNG.from_seeds(range(10, 22))
    grn = prior.sample(rng)
    hub = grn.graph.sum(-1).argmax(-1)  # knock out each system's most connected regulator
    targets = torch.zeros(12, 8, dtype=torch.bool)
    targets[torch.arange(12), hub] = True
    z = z_shift(grn.expression(rng, 1500, targets), grn.expression(rng, 1500))
    checked = 0
    for b in range(12):
        adj = grn.graph[b].numpy()
        i = int(hub[b])
        below = _descendants(adj)[i]
        for j in np.flatnonzero(adj[i]):
            # Only targets whose other regulators the knockout leaves alone have a signed answer.
            if any(below[p] for p in np.flatnonzero(adj[:, j]) if p != i):
                continue
            # Losing an activator lowers the target, losing a repressor raises it.
            assert -z[b, j] * torch.sign(grn.k[b, i, j]) > 4, (b, i, j, z[b, j].item())
            checked += 1
    assert checked >= 12


def test_knockdown_halves_mean_expression_of_the_target():
    # High rates keep expression far from zero, where truncation at zero would bias the mean.
    grn = chain_grn(basal=(20.0, 15.0), k_scale=10.0, intervention="knockdown")
    rng = BatchedRNG.from_seeds([1])
    n = 4000
    wild = grn.expression(rng, n)[0]
    for genes in ((0, 4), (3,)):
        kd = grn.expression(rng, n, one_hot(1, 5, *genes))[0]
        for j in genes:
            m1, m0 = kd[:, j].mean(), wild[:, j].mean()
            ratio = m1 / m0
            se = ratio * math.sqrt((kd[:, j].var() / m1**2 + wild[:, j].var() / m0**2) / n)
            assert abs(ratio - 0.5) < 4 * se, (genes, j, ratio.item(), se.item())
    # The deterministic fixed point of the target is halved exactly.
    factor = grn.production_factor(one_hot(1, 5, 3))
    assert torch.allclose(grn.steady_state(factor)[..., 3], 0.5 * grn.steady_state()[..., 3])


def test_noise_free_cells_sit_on_the_fixed_point_of_a_random_cell_type():
    grn = chain_grn(noise_scale=0.0)
    rng = BatchedRNG.from_seeds([2])
    n = 2000
    x = grn.expression(rng, n)[0].double()
    fixed = grn.steady_state()[0]  # (C, d)
    dist = (x[:, None, :] - fixed[None]).abs().amax(-1)  # (n, C)
    assert torch.all(dist.amin(-1) < 1e-4 * fixed.max())
    share = (dist.argmin(-1) == 0).double().mean().item()
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / n)


def test_steady_state_mean_matches_fixed_point_with_small_noise():
    grn = chain_grn(noise_scale=0.1, basal=(2.0, 2.0))  # one effective cell type
    rng = BatchedRNG.from_seeds([3])
    n = 3000
    x = grn.expression(rng, n)[0].double()
    se = x.std(0) / math.sqrt(n)
    assert torch.all((x.mean(0) - grn.steady_state()[0, 0]).abs() < 4 * se)


def test_half_responses_are_wild_type_means_over_cell_types():
    grn = SergioPrior(d=7, technical_noise="clean").sample(BatchedRNG.from_seeds([4, 5]))
    assert torch.allclose(grn.half_response, grn.steady_state().mean(1))


def test_linear_noise_start_matches_a_long_run():
    """The default burn-in from the linear-noise start agrees with 1000 steps (10 decay times)."""
    prior = SergioPrior(d=6, technical_noise="clean", counts=False, cell_types=1)
    grn = prior.sample(BatchedRNG.from_seeds([6, 7, 8]))
    n = 2000
    short = grn.expression(BatchedRNG.from_seeds([60, 70, 80]), n)
    grn.burn_in_steps = 1000
    long = grn.expression(BatchedRNG.from_seeds([61, 71, 81]), n)
    sd = long.std(1)
    # Documented accuracy of the default: means within 0.15 sd, variances within 20 %.
    assert torch.all((short.mean(1) - long.mean(1)).abs() < 0.15 * sd)
    ratio = short.var(1) / long.var(1)
    assert torch.all((ratio > 0.8) & (ratio < 1.25)), ratio


def test_noisy_interventions_flip_target_bits():
    grn = chain_grn(basal=(20.0, 15.0), intervention_noise=1.0)  # never near zero
    rng = BatchedRNG.from_seeds([9])
    # Every bit flipped: gene 0 is spared and all the others are knocked out.
    x = grn.expression(rng, 50, one_hot(1, 5, 0))[0]
    assert torch.all(x[:, 1:] == 0) and torch.all(x[:, 0] > 0)
    # An experiment without targets stays wild type.
    wild = grn.expression(rng, 50, torch.zeros(1, 5, dtype=torch.bool))[0]
    assert torch.all(wild[:, 0] > 0) and torch.all(wild[:, 4] > 0)


@pytest.mark.parametrize("config", sorted(TECHNICAL_NOISE))
def test_counts_are_non_negative_integers_for_every_technical_noise(config):
    prior = SergioPrior(d=6, technical_noise=config, burn_in_steps=20)
    rng = BatchedRNG.from_seeds([0, 1, 2])
    grn = prior.sample(rng)
    x = grn.sample(rng, 30, one_hot(3, 6, 1))
    assert x.shape == (3, 30, 6) and x.dtype == torch.float32
    assert torch.all(x >= 0) and torch.all(x == x.round()) and torch.all(x[..., 1] == 0)
    assert x.sum() > 0


EXTREMES = [
    {"d": 2, "hill": 4.0, "k_range": (50.0, 100.0), "basal_range": (1e-4, 1e-4)},
    {"d": 20, "decay": 50.0, "noise_scale": 10.0, "technical_noise": "smart-seq"},
    {"d": 12, "decay": 0.05, "noise_scale": 0.0, "hill": 2.0, "intervention": "knockdown"},
    {"d": 15, "k_range": (1e-3, 1e-3), "basal_range": (100.0, 1000.0), "cell_types": 1},
    {"d": 10, "graph": "scale_free", "noise_scale": 5.0, "intervention_noise": 0.5},
    {"d": 10, "hill": 10.0, "k_range": (1.0, 100.0), "technical_noise": "drop-seq"},
]


@pytest.mark.parametrize("kwargs", EXTREMES)
def test_extreme_parameters_give_finite_integer_counts(kwargs):
    prior = SergioPrior(burn_in_steps=30, **kwargs)
    rng = BatchedRNG.from_seeds(range(4))
    grn = prior.sample(rng)
    d = prior.d
    for targets in (None, torch.ones(4, d, dtype=torch.bool), torch.rand(4, d) > 0.5):
        x = grn.sample(rng, 7, targets)
        assert torch.isfinite(x).all() and torch.all(x >= 0) and torch.all(x == x.round())
        e = grn.expression(rng, 3, targets)
        assert torch.isfinite(e).all() and torch.all(e >= 0)


def test_same_seeds_same_cells_and_batched_equals_single():
    prior = SergioPrior(d=6)
    targets = one_hot(3, 6, 2)

    def run(seeds, t):
        rng = BatchedRNG.from_seeds(seeds)
        grn = prior.sample(rng)
        return grn.sample(rng, 8), grn.sample(rng, 1, t)

    batched = run([5, 6, 7], targets)
    assert all(torch.equal(a, b) for a, b in zip(batched, run([5, 6, 7], targets)))
    single = run([6], targets[1:2])
    assert all(torch.equal(a[1:2], b) for a, b in zip(batched, single))


def test_prior_exposes_the_simulator_protocol():
    prior = SergioPrior(d=5)
    assert prior.action_kind == "target_only"
    grn = prior.sample(BatchedRNG.from_seeds([0, 1]))
    assert grn.graph.shape == (2, 5, 5) and torch.all(
        torch.diagonal(grn.graph, dim1=1, dim2=2) == 0
    )
    assert grn.sample(BatchedRNG.from_seeds([0, 1]), 2, None, torch.zeros(2, 5)).shape == (2, 2, 5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"technical_noise": "10x"}, "technical_noise"),
        ({"intervention": "do"}, "intervention"),
        ({"graph": "ring"}, "graph prior"),
        ({"hill": 0.5}, "hill"),
        ({"decay": 200.0}, "decay"),
        ({"intervention_noise": 1.5}, "intervention_noise"),
        ({"k_range": (0.0, 1.0)}, "k_range"),
        ({"cell_types": 0}, "cell_types"),
        ({"d": 1}, "d must be"),
        ({"start": "zero"}, "start"),
    ],
)
def test_bad_prior_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SergioPrior(**{"d": 4, **kwargs})


def test_bad_inputs_raise():
    grn = chain_grn()
    rng = BatchedRNG.from_seeds([0])
    with pytest.raises(ValueError, match="targets must have shape"):
        grn.sample(rng, 2, torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="n must be"):
        grn.sample(rng, 0)
    with pytest.raises(ValueError, match="generators"):
        grn.sample(BatchedRNG.from_seeds([0, 1]), 2)
    with pytest.raises(ValueError, match="NaN"):
        grn.sample(rng, 2, torch.full((1, 5), float("nan")))
    k = torch.zeros(1, 3, 3)
    k[0, 0, 1] = 1.0
    with pytest.raises(ValueError, match="off the graph"):
        SergioGRN(torch.zeros(1, 3, 3), k, torch.ones(1, 1, 3))
    with pytest.raises(ValueError, match="basal"):
        SergioGRN((k != 0).float(), k, -torch.ones(1, 1, 3))


SMALL_ENV = {**caasl_envs.ENV_IDS["caasl/SERGIO-v0"], "d": 4, "n0": 8, "budget": 3}


def test_sergio_env_passes_checkers_and_records_counts(fast_reward):
    env = gym.make("caasl/SERGIO-v0", reward_model=fast_reward, d=4, n0=8, budget=3)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.action_space.shape == (4,)
    env.reset(seed=3)
    for _ in range(3):
        obs, *_ = env.step(np.array([1.0, -1.0, -1.0, 1.0], dtype=np.float32))
    history = obs["history"][obs["mask"] > 0]
    counts, flags = history[..., 0], history[..., 1]
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))
    # Knocked-out genes read zero in every experiment's row; the flags record the targets.
    assert np.all(flags[8:] == [1, 0, 0, 1]) and np.all(counts[8:][:, [0, 3]] == 0)


def test_sergio_env_batched_equals_single(fast_reward):
    vec = caasl_envs.CausalDesignVectorEnv(2, **SMALL_ENV, reward_model=fast_reward)
    batched, _ = vec.reset(seed=[3, 4])
    single, _ = caasl_envs.CausalDesignEnv(**SMALL_ENV, reward_model=fast_reward).reset(seed=4)
    np.testing.assert_array_equal(batched["history"][1], single["history"])


def test_reward_training_data_and_trainer_on_sergio_counts(tmp_path):
    from caasl_envs.reward.training.train_sergio import (
        SERGIO_HELDOUT,
        SergioDatasetSampler,
        make_trainer,
    )
    from caasl_envs.reward.training.trainer import TrainConfig

    sampler = SergioDatasetSampler(
        d_range=(4, 4), n_obs_range=(6, 6), n_int_range=(3, 3), p_obs_only=0.0,
        target_prob_range=(0.5, 0.5), prior={"burn_in_steps": 10},
    )  # fmt: skip
    x, graph = sampler.sample((0, 1), 5)
    assert x.shape == (5, 9, 4, 2) and graph.shape == (5, 4, 4)
    assert torch.equal(x, sampler.sample((0, 1), 5)[0])
    counts, flags = x[..., 0], x[..., 1]
    assert torch.all(flags[:, :6] == 0) and torch.all(counts[flags > 0] == 0)
    assert torch.all(counts == counts.round()) and flags[:, 6:].sum() > 0
    small = {"d_range": (4, 4), "n_obs_range": (6, 6), "prior": {"burn_in_steps": 10}}
    config = TrainConfig(
        out_dir=str(tmp_path), steps=2, batch_size=4, eval_every=2, eval_datasets=4,
        device="cpu", model=dict(dim=8, layers=1, num_heads=2, key_size=4, expects_counts=True),
        data={**small, "n_int_range": (0, 2)},
        eval_data={**SERGIO_HELDOUT, **small},
    )  # fmt: skip
    trainer = make_trainer(config)
    result = trainer.run(progress=False)
    assert trainer.step == 2 and 0.0 <= result["auprc"] <= 1.0
    assert trainer.heldout[0][0].shape == (4, 16, 4, 2)  # 6 wild-type + 10 knockout cells


def test_shipped_sergio_reward_model_beats_the_constant_prior():
    from caasl_envs.metrics import all_metrics
    from caasl_envs.reward.training.train_sergio import SERGIO_HELDOUT, SergioDatasetSampler

    model = caasl_envs.load_reward_model("avici-sergio-v0")
    assert model.expects_counts
    x, graph = SergioDatasetSampler(**SERGIO_HELDOUT).sample((99, 1), 32)
    with torch.inference_mode():
        probs = model.edge_probs(x)
    assert probs.shape == (32, 10, 10) and torch.all((probs >= 0) & (probs <= 1))
    auprc = all_metrics(probs, graph)["auprc"]
    # The constant prior's AUPRC is the edge density, ~1/3; per-dataset AUPRCs spread ~0.1.
    density = graph.sum((1, 2)) / 90
    assert (auprc - density).mean() > 4 * (auprc - density).std() / math.sqrt(32)
    assert auprc.mean() > 0.5


def test_sergio_env_default_reward_model_steps():
    env = gym.make("caasl/SERGIO-v0", budget=2)
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)
