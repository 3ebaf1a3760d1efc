"""Quality floors for what the project ships, on fixed held-out environments (seconds each).

* Every shipped AVICI reward model for the linear environments (registered names
  ``avici-linear-*``) beats the constant prior on fixed held-out datasets of the environments'
  setting, and ranks edges better than chance.
* Every shipped CAASL policy either beats random interventions under the reward model it was
  trained for, on fixed held-out environments, or is listed below with the reason it does not
  (checked: that test fails the day it starts beating random).

Seeds 40000+ are used by no model card, training run or benchmark suite.
"""

import numpy as np
import pytest
import torch

import caasl_agent
from caasl_agent.bench.runner import run_setting
from caasl_agent.bench.suites import Setting
from caasl_agent.train import evaluate_agent
from caasl_envs import available_reward_models, load_reward_model, metrics
from caasl_envs.reward import AVICIModel

LINEAR = "caasl/LinearGaussian-v0"
HELDOUT = range(40_000, 40_032)
AVICI_LINEAR = [n for n in available_reward_models() if n.startswith("avici-linear")]

#: policy -> (env id, the reward model it was trained with)
BEATS_RANDOM = {
    "caasl-linear-exact-v0": (LINEAR, "exact-linear-gaussian"),
    "caasl-linear-imitation-v0": (LINEAR, "exact-linear-scm"),
    "caasl-linear-cut-v0": (LINEAR, "exact-linear-scm"),
    "caasl-linear-cut-v1": (LINEAR, "exact-linear-scm"),
    "caasl-linear-cut-v2": (LINEAR, "exact-linear-scm"),
    "caasl-sergio-perturbseq-cpu-v0": ("caasl/SERGIOPerturbSeq-v0", "avici-sergio-perturbseq-v0"),
}
#: held-out envs per policy where 32 are too few for its margin (+0.5 of 90 entries, SD ~1.2)
HELDOUT_SIZE = {"caasl-sergio-perturbseq-cpu-v0": 100}
#: policies that are known not to beat random, with the reason (each checked to still fail)
KNOWN_NOT_BETTER = {
    "caasl-linear-cpu-quick-v0": (
        (LINEAR, "avici-linear-v0"),
        "trained under interim avici-linear-v0 weights (step 1629) since replaced; under the "
        "shipped avici-linear-v0 it ties random on its card's held-out envs (+0.01 +- 0.23)",
    ),
}
#: policies with no floor at all, and why
NO_FLOOR = {
    "caasl-sergio-cpu-v0": "its model card: no better than random knockouts, because the SERGIO "
    "reward model it was trained for does not value knockouts (no agent can beat random there)",
    "caasl-linear-cpu-quick-v1": "its model card: level with random under its training reward "
    "avici-linear-v1 (+0.24 [-0.06, +0.55] on its held-out envs), so neither a floor nor a strict "
    "xfail is stable; below random under the exact posterior (shipped to show exactly that)",
}


def sem(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x)))


@torch.no_grad()
def scores(model, history: torch.Tensor, graphs: torch.Tensor) -> dict[str, np.ndarray]:
    probs = model.edge_probs(history)
    return {
        "ece": metrics.expected_correct_entries(probs, graphs).double().numpy(),
        "auroc": metrics.auroc(probs, graphs).double().numpy(),
    }


def test_the_reward_model_floor_covers_the_shipped_linear_models():
    assert "avici-linear-v0" in AVICI_LINEAR


@pytest.mark.parametrize("name", AVICI_LINEAR)
def test_avici_linear_reward_model_beats_the_constant_prior_on_heldout_data(name):
    """Histories of random designs (50 observational + 10 interventional rows, d = 10)."""
    model = load_reward_model(name)
    assert isinstance(model, AVICIModel)
    out = run_setting(
        "random", Setting("heldout", LINEAR), HELDOUT, False, reward_model="constant-prior"
    )
    history = torch.as_tensor(out["history"])
    graphs = torch.as_tensor(out["graphs"]).float()
    assert out["mask"].all()  # every row is data after the last experiment
    learned = scores(model, history, graphs)
    prior = scores(load_reward_model("constant-prior"), history, graphs)
    difference = learned["ece"] - prior["ece"]
    assert difference.mean() > 3 * sem(difference), (difference.mean(), sem(difference))
    assert learned["auroc"].mean() - 0.5 > 3 * sem(learned["auroc"]), learned["auroc"].mean()


def test_every_shipped_policy_has_a_floor_or_a_stated_reason():
    classified = set(BEATS_RANDOM) | set(KNOWN_NOT_BETTER) | set(NO_FLOOR)
    assert set(caasl_agent.available_policies()) == classified


def paired_gain(name: str, env_id: str, reward_model: str, reference: str = "random") -> np.ndarray:
    """Final expected correct entries of the sampled policy minus ``reference`` (a baseline or
    a shipped policy), on the same held-out envs (same hidden systems and initial data),
    ``(n,)`` with ``n`` from :data:`HELDOUT_SIZE` (default ``len(HELDOUT)``)."""
    kwargs = {"reward_model": reward_model}
    policy = caasl_agent.load_policy(name)
    if reference in caasl_agent.available_policies():
        reference = caasl_agent.load_policy(reference)
    n = HELDOUT_SIZE.get(name, len(HELDOUT))
    runs = [evaluate_agent(agent, env_id, kwargs, n, HELDOUT[0]) for agent in (policy, reference)]
    return runs[0]["final_expected_correct_entries"] - runs[1]["final_expected_correct_entries"]


@pytest.mark.parametrize("name", list(BEATS_RANDOM))
def test_shipped_policy_beats_random_interventions_under_its_reward(name):
    env_id, reward_model = BEATS_RANDOM[name]
    gain = paired_gain(name, env_id, reward_model)
    assert gain.mean() > 2 * sem(gain), (gain.mean(), sem(gain))


@pytest.mark.parametrize("name", list(KNOWN_NOT_BETTER))
def test_policy_known_not_better_still_does_not_beat_random(name):
    """The stated reason still holds: the day the policy beats random this fails, and the policy
    moves to BEATS_RANDOM."""
    (env_id, reward_model), reason = KNOWN_NOT_BETTER[name]
    gain = paired_gain(name, env_id, reward_model)
    assert gain.mean() <= 2 * sem(gain), (reason, gain.mean(), sem(gain))


def test_atypical_value_signs_beat_alternating_ones_on_heldout_envs():
    """caasl-linear-cut-v1 is caasl-linear-cut-v0 with atypical value signs: its margin on the
    suite (+1.2 to +2.0 entries, paired SD ~2.2) is ~3 s.e. on these 32 envs."""
    gain = paired_gain("caasl-linear-cut-v1", LINEAR, "exact-linear-scm", "caasl-linear-cut-v0")
    assert gain.mean() > 2 * sem(gain), (gain.mean(), sem(gain))
