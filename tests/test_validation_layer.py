"""The validation layer (issue 30 item 5): agent hyper-parameters, environment kwargs and reset
options, reward-model inputs, configuration files and policy names end in one-line errors that
name the argument or file (or in documented behaviour), before anything deep runs."""

from __future__ import annotations

import inspect

import gymnasium as gym
import pytest
import torch
from agent_toy_env import TINY_AVICI, ToyDesignEnv, tiny_policy_kwargs
from stable_baselines3.common.vec_env import DummyVecEnv

from caasl_agent import CAASL
from caasl_agent.bench.loaders import load_agent
from caasl_agent.hyperparams import CHECKS
from caasl_agent.pretrained import available_policies, load_policy, policy_path
from caasl_agent.safe_yaml import load_yaml
from caasl_agent.train import load_config
from caasl_envs import CausalDesignEnv, CausalDesignVectorEnv
from caasl_envs.reward.avici import AVICIModel

ABSENT_GPU = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 7}"


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def toy_env():
    return DummyVecEnv([lambda: ToyDesignEnv(d=3)])


def _tiny(env, **kwargs) -> CAASL:
    defaults = dict(
        seed=0, learning_starts=4, batch_size=4, buffer_size=64, device="cpu",
        policy_kwargs=tiny_policy_kwargs(),
    )  # fmt: skip
    return CAASL(env, **{**defaults, **kwargs})


# ---------------------------------------------------------------- agent hyper-parameters
BAD_HYPERPARAMETERS = [
    ("gamma", 2.0),
    ("gamma", -1.0),
    ("gamma", 0.0),
    ("tau", 5.0),
    ("tau", 0.0),
    ("learning_rate", -1e-3),
    ("learning_rate", "1e-3"),
    ("critic_learning_rate", 0.0),
    ("ent_coef_learning_rate", -1.0),
    ("ent_coef", -0.1),
    ("ent_coef", "auto_-1"),
    ("ent_coef", "automatic"),
    ("buffer_size", 0),
    ("batch_size", 0),
    ("batch_size", -4),
    ("gradient_steps", 0),
    ("gradient_steps", -2),
    ("train_freq", 0),
    ("train_freq", (1, "epoch")),
    ("learning_starts", -1),
    ("target_update_interval", 0),
    ("ensemble_size", 0),
    ("target_entropy", "high"),
    ("stats_window_size", 0),
    ("seed", -1),
    ("device", ABSENT_GPU),
    ("policy_kwargs", {"actor_encoder_kwargs": {"embed_dim": 0}}),
    ("policy_kwargs", {"critic_encoder_kwargs": {"n_heads": -2}}),
    ("policy_kwargs", {"net_arch": [16, 0]}),
]


@pytest.mark.parametrize(("name", "value"), BAD_HYPERPARAMETERS)
def test_caasl_refuses_out_of_range_hyperparameters(toy_env, name, value):
    with pytest.raises(ValueError, match=name) as err:
        _tiny(toy_env, **{name: value})
    _one_line(err)


def test_caasl_accepts_every_documented_form(toy_env):
    model = _tiny(
        toy_env,
        gamma=1.0,
        tau=1.0,
        gradient_steps=-1,  # SB3: as many as environment steps
        ent_coef="auto_0.5",
        train_freq=(1, "episode"),
        learning_rate=lambda progress: 1e-3 * progress,
    )
    assert model.gamma == 1.0 and model.gradient_steps == -1
    assert _tiny(toy_env, ent_coef=0.2).ent_coef == 0.2


def test_every_constructor_argument_has_a_check():
    checked_elsewhere = {
        "self", "env", "policy", "replay_buffer_class", "tensorboard_log", "imitation_labels",
        "_init_setup_model",
    }  # fmt: skip
    arguments = set(inspect.signature(CAASL.__init__).parameters) - checked_elsewhere
    assert arguments <= set(CHECKS), sorted(arguments - set(CHECKS))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"total_timesteps": -5}, "total_timesteps"),
        ({"total_timesteps": 0}, "total_timesteps"),
        ({"total_timesteps": 2.5}, "total_timesteps"),
        ({"total_timesteps": 8, "log_interval": 0}, "log_interval"),
    ],
)
def test_learn_refuses_bad_arguments(toy_env, kwargs, name):
    model = _tiny(toy_env)
    with pytest.raises(ValueError, match=name) as err:
        model.learn(**kwargs)
    _one_line(err)
    assert model.num_timesteps == 0


def test_learn_checks_hyperparameters_set_after_construction(toy_env):
    model = _tiny(toy_env)
    model.gamma = 3.0  # as a loaded zip or a hand edit would
    with pytest.raises(ValueError, match="gamma"):
        model.learn(8)
    model.gamma = 0.9
    model.learn(8)
    assert model.num_timesteps == 8


# ---------------------------------------------------------------- environment kwargs, options
def test_graph_degree_above_d_minus_one_is_refused():
    with pytest.raises(ValueError, match=r"graph_degree=5\.0 is larger than d - 1 = 3") as err:
        CausalDesignEnv(d=4, budget=1, graph_degree=5.0, reward_model="constant-prior")
    _one_line(err)
    with pytest.raises(ValueError, match="graph_degree"):
        gym.make("caasl/LinearGaussian-v0", d=5, graph_degree=4.5, reward_model="constant-prior")
    with pytest.raises(ValueError, match="graph_degree"):
        CausalDesignVectorEnv(2, d=6, graph_degree=6, reward_model="constant-prior")
    # d - 1 itself, and the default degree 3 on graphs of d <= 3 (the densest prior), are valid
    CausalDesignEnv(d=4, budget=1, graph_degree=3.0, reward_model="constant-prior")
    gym.make("caasl/LinearGaussian-v0", d=3, budget=1, reward_model="constant-prior").reset(seed=0)


@pytest.mark.parametrize("options", [{"foo": 1}, {"seed": 3}, "n0=5"])
def test_unknown_reset_options_are_refused(options):
    env = CausalDesignEnv(d=3, n0=2, budget=1, reward_model="constant-prior")
    vec = CausalDesignVectorEnv(2, d=3, n0=2, budget=1, reward_model="constant-prior")
    for target in (env, vec):
        with pytest.raises(ValueError, match="reset option") as err:
            target.reset(seed=0, options=options)
        _one_line(err)
        target.reset(seed=0, options={})
        target.reset(seed=0, options=None)


# ---------------------------------------------------------------- reward-model inputs
def _avici(counts: bool = False) -> AVICIModel:
    torch.manual_seed(0)
    return AVICIModel(**TINY_AVICI, expects_counts=counts).eval()


def _history(n: int = 6, d: int = 3, counts: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    values = torch.poisson(torch.full((1, n, d), 4.0), gen) if counts else torch.randn(1, n, d)
    flags = (torch.rand(1, n, d, generator=gen) < 0.3).float()
    return torch.stack([values, flags], -1)


@pytest.mark.parametrize("flag", [0.5, 2.0, -1.0])
def test_intervened_flags_other_than_0_or_1_are_refused(flag):
    x = _history()
    x[0, 2, 1, 1] = flag
    with pytest.raises(ValueError, match=r"flags \(channel 1\) must be 0 or 1") as err:
        _avici().edge_probs(x)
    _one_line(err)


def test_padded_rows_are_not_checked():
    x = _history()
    padded = torch.cat([x, torch.full((1, 2, 3, 2), 0.5)], 1)
    mask = torch.tensor([[True] * 6 + [False] * 2])
    model = _avici()
    torch.testing.assert_close(model.edge_probs(padded, mask), model.edge_probs(x))


def test_count_models_need_integral_counts():
    model = _avici(counts=True)
    x = _history(counts=True)
    model.edge_probs(x)
    x[0, 0, 0, 0] = 2.5
    with pytest.raises(ValueError, match="integer counts") as err:
        model.edge_probs(x)
    _one_line(err)
    _avici().edge_probs(x)  # a model of real values reads fractions


def test_float64_and_integer_histories_are_cast():
    model, x = _avici(counts=True), _history(counts=True)
    expected = model.edge_probs(x)
    torch.testing.assert_close(model.edge_probs(x.double()), expected)
    torch.testing.assert_close(model.edge_probs(x.long()), expected)


def test_zero_rows_are_refused():
    with pytest.raises(ValueError, match=r"no rows \(n=0\)") as err:
        _avici().edge_probs(torch.zeros(1, 0, 3, 2))
    _one_line(err)


# ---------------------------------------------------------------- files and names
def test_yaml_alias_bomb_is_one_line_error(tmp_path):
    lines, below = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"], "*l0"
    for i in range(1, 10):  # 10^10 nodes when expanded
        lines.append(f"l{i}: &l{i} [{', '.join([below] * 10)}]")
        below = f"*l{i}"
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="alias bomb") as err:
        load_config(path)
    assert str(path) in _one_line(err)
    with pytest.raises(ValueError, match="recursive alias"):
        load_yaml("a: &a [1, *a]", "cfg.yaml")
    assert load_yaml("m: &m {a: 1}\nn: {<<: *m, b: 2}", "cfg.yaml") == {
        "m": {"a": 1},
        "n": {"a": 1, "b": 2},
    }


@pytest.mark.parametrize("name", ["../pretrained/x", "/etc/passwd", "sub/name"])
def test_load_policy_takes_names_not_paths(name):
    with pytest.raises(ValueError, match="no shipped policy") as err:
        load_policy(name)
    _one_line(err)
    with pytest.raises(ValueError, match="no shipped policy"):
        load_agent(f"caasl:{name}")


def test_load_policy_refuses_an_existing_file_path():
    shipped = available_policies()[0]
    path = policy_path(shipped).with_suffix("")  # load_policy appends .zip to a name
    with pytest.raises(ValueError, match="no shipped policy"):
        load_policy(str(path))
    with pytest.raises(ValueError, match="no shipped policy"):
        load_agent(f"caasl:../pretrained/{shipped}")
