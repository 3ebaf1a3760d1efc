"""The random-Fourier-feature SCMs (AVICI's rff family) and their environment ids."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import caasl_envs
from caasl_envs import CausalDesignEnv, CausalDesignVectorEnv
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import SIMULATORS
from caasl_envs.scm.rff import RFFSCMPrior

SMALL = {"d": 4, "n0": 8, "budget": 3}
IDS = ("caasl/NonlinearRFF-v0", "caasl/NonlinearRFFShift-v0")


def one_hot(b, d, j):
    t = torch.zeros(b, d, dtype=torch.bool)
    t[:, j] = True
    return t


@pytest.mark.parametrize("env_id", IDS)
def test_ids_pass_gymnasium_and_sb3_checkers(env_id, fast_reward):
    env = gym.make(env_id, reward_model=fast_reward, **SMALL)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(
        CausalDesignEnv(**{**caasl_envs.ENV_IDS[env_id], **SMALL, "reward_model": fast_reward})
    )
    assert SIMULATORS["rff"] is RFFSCMPrior
    assert env.unwrapped.core.prior.intervention == ("shift" if "Shift" in env_id else "do")


@pytest.mark.parametrize("mechanism", ["additive", "heteroscedastic"])
@pytest.mark.parametrize("noise", ["gauss", "laplace"])
def test_batched_equals_single_bit_for_bit_and_seeded(mechanism, noise):
    prior = RFFSCMPrior(d=6, mechanism=mechanism, noise=noise, intervention="shift")
    targets, values = torch.rand(3, 6) > 0.5, torch.rand(3, 6) * 2 - 1

    def run(seeds, t, v):
        rng = BatchedRNG.from_seeds(seeds)
        scm = prior.sample(rng)
        return scm.sample(rng, 7), scm.sample(rng, 2, t, v)

    batched = run([5, 6, 7], targets, values)
    assert all(torch.equal(a, b) for a, b in zip(batched, run([5, 6, 7], targets, values)))
    single = run([6], targets[1:2], values[1:2])
    assert all(torch.equal(a[1:2], b) for a, b in zip(batched, single))
    assert not torch.equal(batched[0][0], batched[0][1])


def test_env_batched_equals_single_and_overrides(fast_reward):
    kwargs = {**caasl_envs.ENV_IDS[IDS[0]], **SMALL, "reward_model": fast_reward}
    batched, _ = CausalDesignVectorEnv(2, **kwargs).reset(seed=[3, 4])
    single, _ = CausalDesignEnv(**kwargs).reset(seed=4)
    np.testing.assert_array_equal(batched["history"][1], single["history"])
    env = gym.make(IDS[1], reward_model=fast_reward, d=6, graph="scale_free", noise="laplace")
    prior = env.unwrapped.core.prior
    assert (prior.d, prior.graph, prior.noise, prior.intervention) == (
        6,
        "scale_free",
        "laplace",
        "shift",
    )


def test_do_clamps_at_values_relative_to_the_observational_scale():
    prior = RFFSCMPrior(d=5, graph_degree=1.0, intervention_scale=1.5)
    rng = BatchedRNG.from_seeds([0, 1])
    scm = prior.sample(rng)
    x = scm.sample(rng, 4000)
    torch.testing.assert_close(scm.obs_mean, x.mean(1), rtol=0, atol=float(0.25 * x.std(1).max()))
    values = torch.full((2, 5), -0.5)
    y = scm.sample(rng, 3, one_hot(2, 5, 2), values)
    expected = scm.obs_mean[:, 2] - 0.75 * scm.obs_std[:, 2]
    torch.testing.assert_close(y[:, :, 2], expected.unsqueeze(1).expand(2, 3))


def test_root_mechanism_is_a_constant_and_shift_moves_the_target_by_its_scale():
    prior = RFFSCMPrior(d=3, graph_degree=0.5, intervention="shift", noise_scale=(1.0, 1.0))
    rng = BatchedRNG.from_seeds([2])
    scm = prior.sample(rng)
    scm.graph.zero_()  # every node a root: x_j = const + bias + noise
    scm.mechanism.omega.zero_()
    z = torch.zeros(1, 4, 3)
    x = scm.sample_from_noise(z)
    assert torch.equal(x, x[:, :1].expand_as(x))
    shifted = scm.sample_from_noise(z, one_hot(1, 3, 1), torch.ones(1, 3))
    torch.testing.assert_close(shifted[0, :, 1] - x[0, :, 1], 2.0 * scm.obs_std[0, 1].expand(4))


def test_heteroscedastic_noise_scale_depends_on_the_parents():
    prior = RFFSCMPrior(d=2, graph_degree=1.0, mechanism="heteroscedastic", noise_output_scale=5.0)
    scm = prior.sample(BatchedRNG.from_seeds([11]))
    child = int(scm.graph[0].sum(0).argmax())
    assert scm.graph[0, 1 - child, child] == 1  # p = 0.99 at d = 2
    grid = torch.linspace(-30, 30, 64).view(1, 64, 1).expand(1, 64, 2)
    scale = torch.nn.functional.softplus(scm.noise_function(grid)).sqrt()[0]
    assert scale[:, child].std() > 0.1 and torch.all(scale > 0)
    assert math.isclose(float(scale[:, 1 - child].std()), 0.0, abs_tol=1e-6)  # a root: constant


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"noise": "cauchy"}, "noise"),
        ({"mechanism": "mlp"}, "mechanism"),
        ({"intervention": "knockout"}, "intervention"),
        ({"length_scale": (0.0, 1.0)}, "length_scale"),
        ({"output_scale": -1.0}, "output_scale"),
        ({"noise_scale": (2.0, 1.0)}, "noise_scale"),
        ({"noise_output_scale": 0.0}, "noise_output_scale"),
        ({"intervention_scale": -2.0}, "intervention_scale"),
        ({"n_features": 0}, "n_features"),
        ({"graph": "ring"}, "graph prior"),
    ],
)
def test_bad_settings_are_refused_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RFFSCMPrior(d=4, **kwargs)
    with pytest.raises(ValueError, match=match):
        gym.make(IDS[0], **SMALL, **kwargs)


def test_training_sampler_draws_environment_like_datasets_from_a_seed():
    from caasl_envs.reward.training.train_rff import RFFDatasetSampler

    sampler = RFFDatasetSampler(
        d_range=(4, 4),
        n_obs_range=(6, 6),
        n_int_range=(3, 3),
        p_obs_only=0.0,
        noise_mix={"gauss": 1.0, "laplace": 1.0},
        intervention_mix={"do": 1.0},
    )
    x, graph = sampler.sample((0, 1), 5)
    assert x.shape == (5, 9, 4, 2) and graph.shape == (5, 4, 4)
    assert torch.equal(x, sampler.sample((0, 1), 5)[0]) and torch.isfinite(x).all()
    flags = x[:, 6:, :, 1] > 0
    assert not x[:, :6, :, 1].any() and flags.any()
    with pytest.raises(ValueError, match="noise_mix"):
        RFFDatasetSampler(noise_mix={"cauchy": 1.0})


def test_default_reward_is_the_shipped_avici_rff_model():
    env = gym.make(IDS[0], d=5, n0=10, budget=2)
    model = env.unwrapped.core.reward_model
    assert type(model).__name__ == "AVICIModel" and not model.expects_counts
    env.reset(seed=1)
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)
