import numpy as np
import pytest
import torch

from caasl_envs.graphs import GRAPH_PRIORS, is_dag, sample_graphs
from caasl_envs.rng import BatchedRNG


@pytest.mark.parametrize("kind", GRAPH_PRIORS)
@pytest.mark.parametrize("d", [2, 5, 12])
def test_graphs_are_dags_without_self_loops(kind, d):
    g = sample_graphs(BatchedRNG.from_seeds(range(40)), kind, d, 3.0)
    assert g.shape == (40, d, d)
    assert bool(is_dag(g).all())
    assert torch.diagonal(g, dim1=-2, dim2=-1).abs().sum() == 0


def test_is_dag_detects_cycles():
    g = torch.zeros(2, 3, 3)
    g[0, 0, 1] = g[0, 1, 2] = g[0, 2, 0] = 1  # 3-cycle
    g[1, 0, 1] = g[1, 1, 2] = 1
    assert is_dag(g).tolist() == [False, True]


def test_erdos_renyi_edge_count_matches_degree_parameterisation():
    d, degree, b = 10, 3.0, 400
    g = sample_graphs(BatchedRNG.from_seeds(range(b)), "erdos_renyi", d, degree)
    pairs = d * (d - 1) / 2
    p = min(degree * d / pairs, 0.99)
    edges = g.sum((1, 2))
    # Binomial(pairs, p) per graph: mean within 4 standard errors.
    se = np.sqrt(pairs * p * (1 - p) / b)
    assert abs(edges.mean().item() - pairs * p) < 4 * se


def test_scale_free_has_hub_causes_and_transpose_has_hub_effects():
    rng = BatchedRNG.from_seeds(range(50))
    g = sample_graphs(rng, "scale_free", 20, 3.0)
    gt = sample_graphs(BatchedRNG.from_seeds(range(50)), "scale_free_transpose", 20, 3.0)
    assert torch.equal(g.transpose(-1, -2), gt)
    out_max, in_max = g.sum(2).amax(1).mean(), g.sum(1).amax(1).mean()
    assert out_max > in_max  # hubs point at many children


def test_graphs_depend_only_on_each_env_seed():
    a = sample_graphs(BatchedRNG.from_seeds([3, 4, 5]), "scale_free", 8, 3.0)
    b = sample_graphs(BatchedRNG.from_seeds([4]), "scale_free", 8, 3.0)
    assert torch.equal(a[1], b[0])


def test_unknown_prior_is_rejected():
    with pytest.raises(ValueError, match="unknown graph prior"):
        sample_graphs(BatchedRNG.from_seeds([0]), "small_world", 5)


def test_in_place_fill_draws_what_draw_draws():
    def stacked(rng):
        return rng.draw(lambda g: g.standard_normal((3, 4), dtype=np.float32))

    def filled(rng):
        return rng.fill(lambda g, row: g.standard_normal(dtype=np.float32, out=row), (3, 4))

    a, b = BatchedRNG.from_seeds(range(5)), BatchedRNG.from_seeds(range(5))
    for _ in range(2):  # the generators advance alike
        x, y = stacked(a), filled(b)
        assert y.shape == (5, 3, 4) and y.dtype == torch.float32
        torch.testing.assert_close(x, y, rtol=0, atol=0)
