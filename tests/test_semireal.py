"""caasl/GeneNetwork-v0: sub-networks of pgmpy's fitted linear-Gaussian networks."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from scipy.sparse.csgraph import connected_components
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import caasl_envs
from caasl_envs import CausalDesignEnv
from caasl_envs.real.networks import NETWORKS, GeneNetworkPrior, load_network
from caasl_envs.reward import ExactLinearGaussianPosterior
from caasl_envs.rng import BatchedRNG

SIZES = {
    "ecoli70": (46, 70),
    "magic-niab": (44, 66),
    "magic-irri": (64, 102),
    "arth150": (107, 150),
}


@pytest.mark.parametrize("name", NETWORKS)
def test_networks_load_with_their_sizes(name):
    net = load_network(name)
    assert (len(net.nodes), int((net.weights != 0).sum())) == SIZES[name]
    assert (net.noise_std > 0).all() and np.isfinite(net.means()).all()
    # a DAG: I - W is unipotent after a topological sort, so (W^D) = 0
    assert not np.linalg.matrix_power(net.weights != 0, len(net.nodes)).any()


@pytest.mark.parametrize("name", NETWORKS)
def test_sub_networks_are_connected_induced_and_clamped_exactly(name):
    net = load_network(name)
    prior = GeneNetworkPrior(d=12, network=name, standardize=False)
    seeds = [0, 1, 2, 3]
    idx = prior.draw_nodes(BatchedRNG.from_seeds(seeds)).numpy()
    scm = prior.sample(BatchedRNG.from_seeds(seeds))
    for b, nodes in enumerate(idx):
        assert len(set(nodes.tolist())) == 12
        sub = net.weights[np.ix_(nodes, nodes)]
        np.testing.assert_allclose(scm.weights[b].double().numpy(), sub, rtol=1e-6)
        assert connected_components(sub != 0, directed=True, connection="weak")[0] == 1
        # the rest clamped at its means: the sub-network's means are the full network's
        mean = np.linalg.solve((np.eye(12) - sub).T, scm.bias[b].double().numpy())
        np.testing.assert_allclose(mean, net.means()[nodes], rtol=1e-4, atol=1e-4)
    assert len({tuple(sorted(n)) for n in idx.tolist()}) > 1  # seeds draw different sets
    again = prior.draw_nodes(BatchedRNG.from_seeds([2])).numpy()
    np.testing.assert_array_equal(again[0], idx[2])  # batched = one environment alone


def test_standardised_sub_networks_have_unit_variance_and_exact_do():
    prior = GeneNetworkPrior(d=10, network="ecoli70")
    scm = prior.sample(BatchedRNG.from_seeds([7, 8]))
    x = scm.sample(BatchedRNG.from_seeds([1, 2]), 20000)
    np.testing.assert_allclose(x.var(1).numpy(), 1.0, atol=0.06)
    np.testing.assert_allclose(x.mean(1).numpy(), 0.0, atol=0.05)
    targets = torch.zeros(2, 10, dtype=torch.bool)
    targets[:, 3] = True
    values = torch.full((2, 10), 0.7)
    y = scm.sample(BatchedRNG.from_seeds([1, 2]), 50, targets, values)
    assert torch.equal(y[:, :, 3], torch.full((2, 50), 0.7))


def test_registered_env_passes_checkers_with_the_exact_posterior():
    env = gym.make("caasl/GeneNetwork-v0", network="arth150")
    assert env.observation_space["history"].shape == (60, 12, 2)
    assert isinstance(env.unwrapped.core.reward_model, ExactLinearGaussianPosterior)
    small = {**caasl_envs.ENV_IDS["caasl/GeneNetwork-v0"], "d": 10, "n0": 8, "budget": 2}
    check_env(CausalDesignEnv(**small), skip_render_check=True)
    sb3_check_env(CausalDesignEnv(**{**small, "network": "magic-niab"}))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"network": "alarm"}, "unknown network 'alarm'"),
        ({"d": 60}, "d must be between 2 and 46"),
        ({"intervention": "knockout"}, "unknown intervention"),
        ({"standardize": "yes"}, "standardize must be True or False"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CausalDesignEnv(**{**caasl_envs.ENV_IDS["caasl/GeneNetwork-v0"], **kwargs})


def test_real_suite_runs_the_gene_network_setting():
    from caasl_agent.bench.runner import run_setting
    from caasl_agent.bench.suites import get_suite

    suite = get_suite("real")
    assert suite.names() == ["sachs", "sachs-cdt", "ecoli70", "magic-niab", "magic-irri", "arth150"]
    setting = suite.setting("magic-irri")
    out = run_setting("random", setting, suite.episode_seeds("magic-irri", 2), True)
    assert out["metrics"]["shd"].shape == (2, 11) and out["graphs"].shape == (2, 12, 12)
    assert np.isfinite(out["metrics"]["return"]).all()
