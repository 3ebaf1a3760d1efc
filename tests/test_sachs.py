"""caasl/Sachs-v0: the shipped Sachs et al. (2005) table, its rebuilt condition labels and the pool
environment (mapping, sampling without replacement, errors, checkers)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import caasl_envs  # noqa: F401  (registers the ids)
from caasl_envs import CausalDesignEnv, CausalDesignVectorEnv
from caasl_envs.real import data as real_data
from caasl_envs.real.sachs import (
    CONDITIONS,
    VARIABLES,
    condition_labels,
    load_sachs,
    reference_graph,
)
from caasl_envs.reward import ExactLinearGaussianPosterior

SIZES = [853, 902, 911, 723, 810, 799, 848, 913, 707]
COND = {c.name: i for i, c in enumerate(CONDITIONS)}


def labels_and_log():
    return condition_labels(), np.log(load_sachs())


def test_table_and_block_sizes():
    x, labels = load_sachs(), condition_labels()
    assert x.shape == (7466, 11) and (x > 0).all()
    assert [c.cells for c in CONDITIONS] == SIZES and sum(SIZES) == 7466
    assert np.bincount(labels).tolist() == SIZES and (np.diff(labels) >= 0).all()


def test_block_boundaries_are_the_largest_change_points():
    # Difference of 60-row window means either side of every row, summed over proteins.
    labels, x = labels_and_log()
    w = 60
    c = np.vstack([np.zeros(11), np.cumsum(x, 0)])
    i = np.arange(w, len(x) - w + 1)
    jump = np.abs((c[i] - c[i - w]) - (c[i + w] - c[i])).sum(1) / w
    picked = []
    for k in np.argsort(-jump):  # greedy local maxima, at least 100 rows apart
        if all(abs(i[k] - p) > 100 for p in picked):
            picked.append(int(i[k]))
        if len(picked) == 8:
            break
    boundaries = np.flatnonzero(np.diff(labels)) + 1
    assert np.abs(np.sort(picked) - boundaries).max() <= 10


def test_known_inhibitor_effects_on_measured_levels():
    labels, x = labels_and_log()
    med = {name: np.median(x[labels == i], 0) for name, i in COND.items()}
    erk, mek, pip2 = VARIABLES.index("Erk"), VARIABLES.index("Mek"), VARIABLES.index("PIP2")
    # U0126 blocks MEK's kinase activity: its substrate ERK is far less phosphorylated ...
    assert med["u0126"][erk] < med["cd3cd28"][erk] - 1.5
    # ... while phospho-MEK itself rises (why "inhibitor = do" is a model, not a fact)
    assert med["u0126"][mek] > med["cd3cd28"][mek] + 1.5
    # psitectorigenin inhibits PIP2
    assert med["psitect"][pip2] < med["cd3cd28"][pip2] - 2.0
    # the other blocks do not show these effects: the labels are not shifted
    others = [n for n in COND if n not in ("u0126", "psitect", "b2camp")]
    assert min(med[n][erk] for n in others) > med["u0126"][erk] + 1.0


def test_reference_graphs():
    g17, g18 = reference_graph("sachs2005"), reference_graph("cdt")
    assert g17.sum() == 17 and g18.sum() == 18 and (g17 * g18).sum() == 13
    assert np.trace(g17) == 0 and not (g17 * g17.T).any()
    with pytest.raises(ValueError, match="unknown reference"):
        reference_graph("bnlearn")


def test_corrupt_data_file_is_refused(tmp_path, monkeypatch):
    import gzip

    (tmp_path / "sachs2005.csv.gz").write_bytes(gzip.compress(b"praf,pmek\n1,2\n"))
    monkeypatch.setattr(real_data, "DATA_DIR", tmp_path)
    real_data.read_data_file.cache_clear()
    try:
        with pytest.raises(ValueError, match="SHA-256 .* does not match"):
            real_data.read_data_file("sachs2005.csv.gz")
    finally:
        real_data.read_data_file.cache_clear()


def test_registered_env_passes_checkers_and_uses_the_exact_posterior():
    env = gym.make("caasl/Sachs-v0")
    assert env.observation_space["history"].shape == (50 + 10 * 10, 11, 2)
    assert env.action_space.shape == (22,)
    assert isinstance(env.unwrapped.core.reward_model, ExactLinearGaussianPosterior)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(CausalDesignEnv(**caasl_envs.ENV_IDS["caasl/Sachs-v0"]))


def action(variable=None, value=1.0, d=11):
    a = np.full(2 * d, -1.0, dtype=np.float32)
    a[d:] = 0.0
    if variable is not None:
        j = VARIABLES.index(variable)
        a[j], a[d + j] = 1.0, value
    return a


def rows_of(history, start, stop):
    """Indices into the transformed table of the cells in history rows ``start:stop``."""
    prior = caasl_envs.scm.SIMULATORS["sachs"]()
    cells = history[start:stop, :, 0]
    match = np.abs(prior.data.numpy()[None] - cells[:, None]).max(-1) < 1e-5
    assert (match.sum(1) >= 1).all()
    return match.argmax(1)


def test_actions_map_to_conditions_and_cells_come_without_replacement():
    env = CausalDesignEnv(**{**caasl_envs.ENV_IDS["caasl/Sachs-v0"], "budget": 6})
    obs, _ = env.reset(seed=3)
    labels = condition_labels()
    plan = [("Mek", 0.3, "u0126"), ("Erk", 1.0, None), ("PKC", -0.5, "g0076")]
    plan += [("PKC", 0.5, "pma"), ("Mek", 0.9, "u0126"), (None, 0.0, None)]
    for t, (variable, value, condition) in enumerate(plan):
        obs, reward, *_ = env.step(action(variable, value))
        assert np.isfinite(reward)
        rows = slice(50 + 10 * t, 60 + 10 * t)
        flags = obs["history"][rows, :, 1]
        got = labels[rows_of(obs["history"], rows.start, rows.stop)]
        if condition is None:  # Erk has no condition: observational, flags all zero
            assert not flags.any() and set(got) <= {COND["cd3cd28"], COND["cd3cd28icam2"]}
        else:
            j = VARIABLES.index(variable)
            assert (flags[:, j] == 1).all() and flags.sum() == 10
            assert (got == COND[condition]).all()
    u0126 = np.r_[rows_of(obs["history"], 50, 60), rows_of(obs["history"], 90, 100)]
    assert len(set(u0126.tolist())) == 20  # the two U0126 experiments share no cell
    obs_rows = np.r_[rows_of(obs["history"], 0, 50), rows_of(obs["history"], 60, 70)]
    assert len(set(obs_rows.tolist())) == 60


def test_several_targets_pick_the_largest_value_and_seeds_choose_cells():
    vec = CausalDesignVectorEnv(2, **{**caasl_envs.ENV_IDS["caasl/Sachs-v0"], "budget": 1})
    obs, _ = vec.reset(seed=[5, 6])
    a = np.stack([action("PIP2", -0.2), action("PIP2", -0.2)])
    a[:, VARIABLES.index("PKA")], a[:, 11 + VARIABLES.index("PKA")] = 1.0, [0.9, 0.1]
    obs2, *_ = vec.step(a)
    flags = obs2["history"][:, 50, :, 1]
    assert flags[0, VARIABLES.index("PKA")] == 1 and flags[1, VARIABLES.index("PIP2")] == 1
    assert not np.allclose(obs["history"][0, :50], obs["history"][1, :50])
    env = CausalDesignEnv(**caasl_envs.ENV_IDS["caasl/Sachs-v0"])
    first, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first["history"][:50], obs["history"][0, :50])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"conditions": ("u0126", "aspirin")}, "unknown or repeated condition"),
        ({"observational": ("cd3cd28", "pma")}, "unknown or repeated condition"),
        ({"samples_per_step": 75}, "'g0076', which has 723"),
        ({"n0": 1700}, "observational pool, which has 1755"),
        ({"d": 10}, "d=11"),
        ({"reference": "bnlearn"}, "unknown reference"),
    ],
)
def test_bad_settings_are_refused_before_the_episode(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CausalDesignEnv(**{**caasl_envs.ENV_IDS["caasl/Sachs-v0"], **kwargs})


def test_restricted_conditions_fall_back():
    kwargs = {**caasl_envs.ENV_IDS["caasl/Sachs-v0"], "budget": 2, "conditions": ("pma",)}
    env = CausalDesignEnv(**kwargs)
    env.reset(seed=0)
    obs, *_ = env.step(action("PKC", -1.0))  # inhibitor asked for, only the activator offered
    labels = condition_labels()
    assert (labels[rows_of(obs["history"], 50, 60)] == COND["pma"]).all()
    obs, *_ = env.step(action("Mek", 1.0))  # U0126 not offered: observational
    assert not obs["history"][60:70, :, 1].any()
