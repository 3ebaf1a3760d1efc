"""The expected-information-gain designers (caasl_agent.bench.eig) against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from caasl_agent.bench.agents import IncompatibleAgentError
from caasl_agent.bench.baselines import make_baseline
from caasl_agent.bench.eig import (
    EIGAgent,
    EIGBatchAgent,
    eig_terms,
    log_likelihoods,
    predictive_tables,
    sample_graphs,
)
from caasl_agent.bench.runner import run_setting
from caasl_agent.bench.suites import Setting
from caasl_envs.reward import ExactLinearGaussianPosterior
from caasl_envs.reward.bge import bge_local_scores
from caasl_envs.reward.exact import order_dp_edge_marginals


def chain_history(n: int, d: int, seed: int, intervened: int = 0, skip: float = 0.0) -> np.ndarray:
    """``(1, n, d, 2)`` rows of a linear chain ``0 -> 1 -> ...`` (and edges ``i - 2 -> i`` of
    weight ``skip``); the last ``intervened`` rows are do-interventions on variables in turn."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, d, 2), np.float32)

    def mechanism(i: int, rows) -> np.ndarray:
        parent = 0.9 * x[rows, i - 1, 0] if i else 0.0
        return parent + (skip * x[rows, i - 2, 0] if i > 1 else 0.0)

    for i in range(d):
        x[:, i, 0] = mechanism(i, slice(None)) + rng.normal(0, 0.5, n)
    for r in range(n - intervened, n):
        j = r % d
        x[r, j, 0], x[r, j, 1] = rng.choice([-2.0, 2.0]), 1.0
        for i in range(j + 1, d):
            x[r, i, 0] = mechanism(i, r) + rng.normal(0, 0.5)
    return x[None]


def full_mask(history: np.ndarray) -> np.ndarray:
    return np.ones(history.shape[:2], np.float32)


def test_predictive_is_the_bge_score_increment_of_one_row():
    d, n = 4, 12
    sets_model = ExactLinearGaussianPosterior(max_in_degree=3)
    x = torch.as_tensor(chain_history(n, d, 0, intervened=4)).expand(2, -1, -1, -1).clone()
    x[1, :, :, 0] += torch.randn(n, d, generator=torch.Generator().manual_seed(1))
    values, rows = sets_model.score_inputs(x)
    _, sets = sets_model.local_weights(x)
    tables = predictive_tables(values, rows, sets)
    y = torch.randn(2, d, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    more = bge_local_scores(
        torch.cat([values, y[:, None]], 1), torch.cat([rows, torch.ones(2, 1, d).double()], 1), sets
    )
    increment = more - bge_local_scores(values, rows, sets)  # (B, d, P)
    p = increment.shape[-1]
    # Graph sample g gives every variable its g-th parent set; candidate c keeps variable c only.
    parents = torch.arange(p).view(1, p, 1).expand(2, p, d)
    targets = ~torch.eye(d, dtype=torch.bool).expand(2, d, d)
    outcome = torch.cat([y, torch.zeros(2, 1, dtype=torch.float64)], 1)[:, None, None]
    ll = log_likelihoods(tables, parents, outcome.expand(2, 1, d, d + 1), targets)
    torch.testing.assert_close(ll[:, 0], increment, rtol=0, atol=2e-4)


def test_graph_samples_follow_the_exact_posterior():
    model = ExactLinearGaussianPosterior(max_in_degree=2)
    x = torch.as_tensor(chain_history(15, 4, 3))
    log_beta, sets = model.local_weights(x)
    probs, _ = order_dp_edge_marginals(log_beta, sets)
    s = 20000
    _, parents = sample_graphs(log_beta, sets, s, torch.Generator().manual_seed(0))
    member = sets.member[torch.arange(4), parents[0]]  # (S, d, d): member[s, j, i] = i -> j
    freq = member.mean(0).T
    sd = (probs[0] * (1 - probs[0]) / s).sqrt()
    assert probs[0].min() < 0.9 and probs[0].max() > 0.1  # an uncertain posterior
    assert ((freq - probs[0]).abs() <= 5 * sd + 1e-9).all(), (freq, probs[0])


def dags(d: int, k: int) -> dict[tuple[int, ...], list[tuple[tuple[int, ...], int]]]:
    """Every DAG on ``d`` nodes with in-degree <= k, keyed by its parent sets, with the
    (order, parent-set indices) pairs that give it (enumerated, no order DP)."""
    from caasl_envs.reward.bge import parent_sets

    sets = parent_sets(d, k)
    out: dict[tuple[int, ...], list] = {}
    for order in itertools.permutations(range(d)):
        before = {v: sum(1 << u for u in order[: order.index(v)]) for v in range(d)}
        choices = [
            [p for p in range(sets.bits.shape[1]) if int(sets.bits[v, p]) & ~before[v] == 0]
            for v in range(d)
        ]
        for combo in itertools.product(*choices):
            key = tuple(int(sets.bits[v, p]) for v, p in enumerate(combo))
            out.setdefault(key, []).append(combo)
    return out


def brute_force_eig(model, x, target: int, value: float, half_width=14.0, cells=321) -> float:
    """EIG of ``do(x_target = value)`` (standardised) at d = 3 by enumerating all DAGs and a
    2-D quadrature over the other two variables, with likelihoods from BGe score increments."""
    d = x.shape[2]
    log_beta, sets = model.local_weights(x)
    values, rows = model.score_inputs(x)
    graphs = dags(d, d - 1)
    keys = list(graphs)
    weight = torch.stack(
        [
            torch.logsumexp(
                torch.stack([log_beta[0, torch.arange(d), torch.tensor(c)].sum() for c in combos]),
                0,
            )
            for combos in graphs.values()
        ]
    )
    weight = (weight - weight.logsumexp(0)).exp()  # posterior of each DAG
    grid = torch.linspace(-half_width, half_width, cells, dtype=torch.float64)
    area = (grid[1] - grid[0]) ** 2
    others = [i for i in range(d) if i != target]
    ya, yb = torch.meshgrid(grid, grid, indexing="ij")
    y = torch.full((cells * cells, d), value, dtype=torch.float64)
    y[:, others[0]], y[:, others[1]] = ya.flatten(), yb.flatten()
    m = y.shape[0]
    row = torch.ones(m, 1, d, dtype=torch.float64)
    row[:, :, target] = 0.0  # the target's own score leaves the row out
    more = bge_local_scores(
        torch.cat([values.expand(m, -1, -1), y[:, None]], 1),
        torch.cat([rows.expand(m, -1, -1), row], 1),
        sets,
    )
    increment = more - bge_local_scores(values, rows, sets)  # (M, d, P)
    bits = sets.bits
    index = torch.tensor(
        [[int((bits[v] == key[v]).nonzero()) for v in range(d)] for key in keys]
    )  # (G, d) parent-set index of each variable in each DAG
    logp = sum(increment[:, v, index[:, v]] for v in others)  # (M, G)
    mass = logp.exp().sum(0) * area
    assert (mass - 1).abs().max() < 1e-3, mass  # the grid holds the predictive densities
    log_mix = torch.logsumexp(logp + weight.log(), 1, keepdim=True)
    return float((weight * (logp.exp() * (logp - log_mix)).sum(0) * area).sum())


def test_eig_matches_brute_force_at_d3():
    model = ExactLinearGaussianPosterior(max_in_degree=2, graph_degree=1.0)
    history = chain_history(8, 3, 5)
    agent = EIGAgent(model, seed=0, samples=1500)
    plan = agent.plan(history, full_mask(history))
    target, raw = 1, 1.0
    std_value = float((raw - plan.mean[0, target]) / plan.std[0, target])
    targets = torch.zeros(1, 1, 3, dtype=torch.bool)
    targets[0, 0, target] = True
    terms = eig_terms(
        plan.tables,
        plan.draws,
        targets,
        torch.full((1, 1, 3), std_value, dtype=torch.float64),
    )[0, :, 0]
    estimate, se = float(terms.mean()), float(terms.std() / math.sqrt(len(terms)))
    exact = brute_force_eig(model, torch.as_tensor(history), target, std_value)
    assert exact > 0.05  # an informative design, so the comparison means something
    # The estimator is a lower bound in expectation (module docstring): exact within 4 s.e.,
    # plus its O(1/S) bias below.
    assert exact - 4 * se - 1.0 / agent.samples <= estimate <= exact + 4 * se, (estimate, exact, se)


def test_a_certain_posterior_and_an_all_target_design_carry_no_information():
    model = ExactLinearGaussianPosterior(max_in_degree=2)
    history = chain_history(400, 3, 7, intervened=150, skip=0.8)  # the complete DAG
    agent = EIGAgent(model, seed=0)
    plan = agent.plan(history, full_mask(history))
    probs = model.edge_probs(torch.as_tensor(history))[0]
    assert ((probs < 1e-3) | (probs > 1 - 1e-3)).all()  # every edge settled
    single = torch.eye(3, dtype=torch.bool)[None]
    eig = plan.eig(single, torch.ones(1, 3, 3))
    assert eig.abs().max() < 1e-3, eig
    uncertain = chain_history(10, 3, 7)
    plan = agent.plan(uncertain, full_mask(uncertain))
    every = plan.eig(torch.ones(1, 1, 3, dtype=torch.bool), torch.ones(1, 1, 3))
    assert float(every) == pytest.approx(0.0, abs=1e-12)
    assert plan.eig(single, torch.ones(1, 3, 3)).max() > 0.05


def test_batch_design_is_at_least_as_informative_as_the_best_single_target():
    history = chain_history(10, 4, 11)
    mask = full_mask(history)
    single, batch = EIGAgent(seed=3), EIGBatchAgent(seed=3)
    action = batch.predict({"history": history, "mask": mask})[0][0]
    plan = single.plan(history, mask)  # the same draws as the batch agent's
    chosen = torch.as_tensor(action[None, None, :4] > 0)
    values = torch.as_tensor(action[None, None, 4:]).double()
    one = plan.eig(torch.eye(4, dtype=torch.bool)[None].repeat(1, 3, 1), _grid_values(4))
    assert float(plan.eig(chosen, values)) >= float(one.max()) - 1e-9
    assert chosen.sum() >= 1


def _grid_values(d: int) -> torch.Tensor:
    return torch.tensor([-1.0, 0.0, 1.0]).repeat_interleave(d).view(1, -1, 1).expand(1, -1, d)


def test_eig_beats_random_under_the_exact_posterior():
    setting = Setting(
        "small",
        "caasl/LinearGaussian-v0",
        {
            "d": 5,
            "n0": 10,
            "budget": 4,
            "graph_degree": 1.5,
            "reward_model": "exact-linear-gaussian",
        },
    )
    seeds = list(range(40))
    final = {
        name: run_setting(name, setting, seeds, True)["metrics"]["expected_correct_entries"][:, -1]
        for name in ("eig", "random")
    }
    diff = final["eig"] - final["random"]
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    assert diff.mean() > 2 * se, (diff.mean(), se)


def test_designers_refuse_without_a_likelihood_or_beyond_the_exact_range():
    with pytest.raises(IncompatibleAgentError, match="likelihood"):
        make_baseline("eig", target_only=True)
    agent = make_baseline("eig-batch", reward_model="exact-linear-gaussian")
    history = np.zeros((1, 5, 31, 2), np.float32)  # d <= 14 exact, <= 30 order MCMC
    with pytest.raises(IncompatibleAgentError, match="d <= 30"):
        agent.predict({"history": history, "mask": np.ones((1, 5), np.float32)})
    with pytest.raises(ValueError, match="intervention"):
        EIGAgent(intervention="knockout")


def test_shift_designer_acts_and_is_reproducible():
    history = chain_history(12, 4, 2)
    obs = {"history": history.repeat(3, 0), "mask": full_mask(history).repeat(3, 0)}
    first, _ = EIGAgent(seed=4, intervention="shift").predict(obs)
    again, _ = EIGAgent(seed=4, intervention="shift").predict(obs)
    np.testing.assert_array_equal(first, again)
    assert ((first[:, :4] > 0).sum(1) == 1).all()


def test_the_harness_tells_the_planners_the_environments_intervention_and_value_scale():
    from caasl_agent.bench.runner import _prepare_agent, setting_env
    from caasl_agent.bench.suites import get_suite

    setting = get_suite("tiny").setting("d5-shift")
    vec = setting_env(setting, 2, None, "cpu")
    vec.core.value_scale = 2.5
    for name in ("eig", "eig-batch"):
        agent = _prepare_agent(name, vec, 0)
        assert agent.intervention == "shift" and agent.value_scale == 2.5
