"""Training CAASL from a preset: ``caasl train --config <preset>``.

A preset is a YAML file in ``caasl_agent/configs/`` (or any path) with the env id and kwargs,
the number of envs, the :class:`~caasl_agent.CAASL` arguments (``algorithm``), the policy
kwargs, the evaluation settings and optionally ``normalize_reward: true`` (SB3's
``VecNormalize`` on the rewards only). :func:`train` writes into the output folder:

* ``checkpoints/`` (periodic ``CAASL.save`` files, resumable with ``--resume``),
* ``best_model.zip``: the best policy so far by periodic evaluation on a fixed set of envs,
* ``final_model.zip``, ``evaluations.csv``, ``learning_curve.png``, ``tb/`` (TensorBoard),
* ``results.json``: the best policy (sampled, the headline, and deterministic) and the
  random-intervention baseline on held-out envs (other seeds than the periodic evaluation):
  final expected correct entries, mean and standard error, and the paired difference.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.vec_env import VecNormalize

import caasl_envs
from caasl_agent._argtypes import positive_int
from caasl_agent.caasl import CAASL
from caasl_agent.serialization import safe_custom_objects
from caasl_envs.core import resolve_device

CONFIG_DIR = Path(__file__).parent / "configs"
#: reward models tried, in order, for ``reward_model: auto``
AUTO_REWARD_MODELS = ("avici-linear-v0", "exact-linear-gaussian")

Designer = Callable[[dict[str, np.ndarray]], np.ndarray]


def available_presets() -> list[str]:
    """Names accepted by :func:`load_config` besides paths."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path) -> dict[str, Any]:
    """A preset by name (see :func:`available_presets`) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown config {str(name_or_path)!r}: not a file and not one of {available_presets()}"
        )
    with path.open() as f:
        return yaml.safe_load(f)


def resolve_reward_model(name: str) -> str:
    """``"auto"`` -> the first registered of :data:`AUTO_REWARD_MODELS`; other names unchanged."""
    if name != "auto":
        return name
    registered = caasl_envs.available_reward_models()
    for candidate in AUTO_REWARD_MODELS:
        if candidate in registered:
            return candidate
    raise ValueError(
        f"reward_model 'auto' needs one of {AUTO_REWARD_MODELS}; registered: {registered}"
    )


def env_kwargs_of(config: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(config.get("env_kwargs") or {})
    if "reward_model" in kwargs:
        kwargs["reward_model"] = resolve_reward_model(kwargs["reward_model"])
    return kwargs


def evaluate_designer(
    designer: Designer, env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Run one episode on each of ``n_envs`` fixed envs (seeds ``seed .. seed + n_envs - 1``).

    Torch's global generator (used by a sampling policy) is seeded with ``seed`` inside and
    restored afterwards, so evaluations are reproducible and do not disturb training.

    :return: ``"return"`` and ``"final_expected_correct_entries"``, each ``(n_envs,)``.
    """
    env = caasl_envs.make_sb3_vec_env(env_id, n_envs=n_envs, seed=seed, monitor=False, **env_kwargs)
    obs = env.reset()
    returns = np.zeros(n_envs)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        while True:
            obs, rewards, dones, infos = env.step(designer(obs))
            returns += rewards
            if dones.all():
                break
    env.close()
    final = np.array([info["final_metrics"]["expected_correct_entries"] for info in infos])
    return {"return": returns, "final_expected_correct_entries": final}


def policy_designer(model: CAASL, deterministic: bool = True) -> Designer:
    return lambda obs: model.predict(obs, deterministic=deterministic)[0]


def random_designer(action_size: int, seed: int) -> Designer:
    """The random-intervention baseline: every action entry uniform in ``[-1, 1]``."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1.0, 1.0, (len(obs["mask"]), action_size)).astype(np.float32)


def summarize(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "stderr": float(values.std(ddof=1) / np.sqrt(len(values))),
    }


class DesignEvalCallback(BaseCallback):
    """Every ``every_steps`` env steps, evaluate the policy on fixed envs; keep the best one
    (mean final expected correct entries) in ``best_model.zip``. ``deterministic=False``
    samples the policy (an equivariant deterministic policy gives every variable with similar
    data the same target decision, so it tends to intervene on all or none)."""

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict,
        n_envs: int,
        seed: int,
        every_steps: int,
        output_dir: Path,
        deterministic: bool = False,
    ):
        super().__init__()
        self.deterministic = deterministic
        self.env_id, self.env_kwargs, self.n_envs, self.seed = env_id, env_kwargs, n_envs, seed
        self.every_steps, self.output_dir = every_steps, output_dir
        self.best = -np.inf
        self.history: list[dict[str, float]] = []
        self._next = every_steps
        self.random_mean = float("nan")

    def _on_training_start(self) -> None:
        # A resumed model starts at its saved step count: evaluate every_steps from there.
        self._next = self.num_timesteps + self.every_steps
        action_size = self.model.action_space.shape[0]
        random = evaluate_designer(
            random_designer(action_size, self.seed),
            self.env_id,
            self.n_envs,
            self.seed,
            self.env_kwargs,
        )
        self.random_mean = float(random["final_expected_correct_entries"].mean())

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every_steps
            self.evaluate()
        return True

    def evaluate(self) -> None:
        result = evaluate_designer(
            policy_designer(self.model, self.deterministic),
            self.env_id,
            self.n_envs,
            self.seed,
            self.env_kwargs,
        )
        final = summarize(result["final_expected_correct_entries"])
        row = {"timesteps": self.num_timesteps, **{f"final_ece_{k}": v for k, v in final.items()}}
        row["return_mean"] = float(result["return"].mean())
        row["random_final_ece_mean"] = self.random_mean
        self.history.append(row)
        self.logger.record("eval/final_expected_correct_entries", final["mean"])
        self.logger.record("eval/return", row["return_mean"])
        if final["mean"] > self.best:
            self.best = final["mean"]
            self.model.save(self.output_dir / "best_model")
        with (self.output_dir / "evaluations.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(self.history)


def plot_learning_curve(history: list[dict[str, float]], random_mean: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([row["timesteps"] for row in history])
    mean = np.array([row["final_ece_mean"] for row in history])
    err = np.array([row["final_ece_stderr"] for row in history])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(steps, mean, marker="o", label="CAASL")
    ax.fill_between(steps, mean - err, mean + err, alpha=0.3)
    ax.axhline(random_mean, color="gray", linestyle="--", label="random interventions")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("final E[# correct entries]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def model_from_config(
    config: dict[str, Any], env, tensorboard_log: str | None = None, verbose: int = 0
) -> CAASL:
    """A new :class:`CAASL` on ``env`` with the preset's algorithm and policy settings."""
    algorithm = dict(config.get("algorithm") or {})
    if isinstance(algorithm.get("train_freq"), list):
        algorithm["train_freq"] = tuple(algorithm["train_freq"])
    return CAASL(
        env,
        seed=config["seed"],
        device=config.get("device", "auto"),
        tensorboard_log=tensorboard_log,
        policy_kwargs=config.get("policy_kwargs"),
        verbose=verbose,
        **algorithm,
    )


def train(
    config: dict[str, Any],
    output_dir: str | Path,
    device: str | None = None,
    n_envs: int | None = None,
    total_timesteps: int | None = None,
    seed: int | None = None,
    resume: str | Path | None = None,
    progress_bar: bool = False,
    verbose: int = 1,
    trust_pickles: bool = False,
) -> dict[str, Any]:
    """Train CAASL as ``config`` says (arguments that are not ``None`` override it).

    :param resume: a checkpoint zip, loaded safely unless ``trust_pickles``
        (:meth:`CAASL.load <caasl_agent.CAASL.load>`).
    :return: the content of ``results.json``.
    """
    config = copy.deepcopy(config)
    for key, value in {
        "device": device,
        "n_envs": n_envs,
        "total_timesteps": total_timesteps,
        "seed": seed,
    }.items():
        if value is not None:
            config[key] = value
    if int(config["total_timesteps"]) < 1 or int(config["n_envs"]) < 1:
        raise ValueError(
            f"total_timesteps and n_envs must be >= 1, got {config['total_timesteps']} "
            f"and {config['n_envs']}"
        )
    resolve_device(config.get("device", "auto"))  # before the output folder is made
    if resume is not None and not trust_pickles:
        safe_custom_objects(resume)  # a crafted or corrupt zip fails before anything is written
    output = Path(output_dir)
    (output / "checkpoints").mkdir(parents=True, exist_ok=True)
    env_id = config["env_id"]
    env_kwargs = env_kwargs_of(config)
    with (output / "config.yaml").open("w") as f:
        yaml.safe_dump({**config, "env_kwargs": env_kwargs}, f, sort_keys=False)

    env = caasl_envs.make_sb3_vec_env(
        env_id, n_envs=config["n_envs"], seed=config["seed"], **env_kwargs
    )
    if config.get("normalize_reward", False):
        # One set of SAC settings (entropy coefficient, learning rates) then fits reward models
        # whose per-step rewards differ by orders of magnitude (SERGIO's are ~0.01). The buffer
        # keeps the raw rewards; SB3 rescales them when it samples. The running statistics
        # restart on --resume.
        gamma = (config.get("algorithm") or {}).get("gamma", 0.99)
        env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=gamma)
    if resume is not None:
        model = CAASL.load(
            resume, env=env, device=config.get("device", "auto"), trust_pickles=trust_pickles
        )
        model.tensorboard_log = str(output / "tb")
    else:
        model = model_from_config(config, env, tensorboard_log=str(output / "tb"), verbose=verbose)
    evaluation = config["evaluation"]
    n = config["n_envs"]
    eval_callback = DesignEvalCallback(
        env_id,
        env_kwargs,
        evaluation["n_envs"],
        evaluation["seed"],
        evaluation["every_steps"],
        output,
        deterministic=evaluation.get("deterministic", False),
    )
    checkpoints = CheckpointCallback(
        max(config["checkpoint_every_steps"] // n, 1),
        str(output / "checkpoints"),
        name_prefix="caasl",
    )
    start = time.perf_counter()
    model.learn(
        config["total_timesteps"],
        callback=[checkpoints, eval_callback],
        log_interval=10 * n,  # SB3 counts episodes; all n envs end together: every 10 rounds
        progress_bar=progress_bar,
        tb_log_name="CAASL",
        reset_num_timesteps=resume is None,
    )
    train_seconds = time.perf_counter() - start
    model.save(output / "final_model")
    if not eval_callback.history or eval_callback.history[-1]["timesteps"] != model.num_timesteps:
        eval_callback.evaluate()

    best = CAASL.load(output / "best_model", device=config.get("device", "auto"))
    action_size = env.action_space.shape[0]
    heldout = (evaluation["heldout_n_envs"], evaluation["heldout_seed"])
    caasl_result = evaluate_designer(policy_designer(best, False), env_id, *heldout, env_kwargs)
    deterministic_result = evaluate_designer(
        policy_designer(best, True), env_id, *heldout, env_kwargs
    )
    random_result = evaluate_designer(
        random_designer(action_size, heldout[1]), env_id, *heldout, env_kwargs
    )
    difference = (
        caasl_result["final_expected_correct_entries"]
        - random_result["final_expected_correct_entries"]
    )
    results = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "timesteps": int(model.num_timesteps),
        "train_seconds": round(train_seconds, 1),
        "heldout_envs": {"n": heldout[0], "seed": heldout[1]},
        "best_model_selected_by": "sampled"
        if not evaluation.get("deterministic", False)
        else "deterministic",
        "caasl_final_expected_correct_entries": summarize(
            caasl_result["final_expected_correct_entries"]
        ),
        "caasl_deterministic_final_expected_correct_entries": summarize(
            deterministic_result["final_expected_correct_entries"]
        ),
        "random_final_expected_correct_entries": summarize(
            random_result["final_expected_correct_entries"]
        ),
        "paired_difference": summarize(difference),
        "caasl_return": summarize(caasl_result["return"]),
        "random_return": summarize(random_result["return"]),
    }
    with (output / "results.json").open("w") as f:
        json.dump(results, f, indent=2)
    plot_learning_curve(
        eval_callback.history,
        eval_callback.random_mean,
        output / "learning_curve.png",
    )
    env.close()
    return results


def _train_command(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = train(
        load_config(args.config),
        args.output_dir
        or f"runs/{Path(args.config).stem}-seed{args.seed if args.seed is not None else 0}",
        device=args.device,
        n_envs=args.n_envs,
        total_timesteps=args.total_timesteps,
        seed=args.seed,
        resume=args.resume,
        progress_bar=args.progress_bar,
        trust_pickles=args.trust_pickles,
    )
    print(json.dumps(results, indent=2))


def add_train_parser(subparsers) -> None:
    """Register ``caasl train`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("train", help="train CAASL from a preset (see caasl_agent/configs)")
    p.add_argument(
        "--config", default="cpu-quick", help=f"preset name {available_presets()} or YAML path"
    )
    p.add_argument("--output-dir", default=None, help="default: runs/<config>-seed<seed>")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, ... (default: the preset's)")
    p.add_argument("--n-envs", type=positive_int, default=None)
    p.add_argument("--total-timesteps", type=positive_int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--resume", default=None, help="a checkpoint .zip to continue training from")
    p.add_argument(
        "--trust-pickles",
        action="store_true",
        help="unpickle the --resume zip as Stable-Baselines3 does (runs code a crafted file "
        "holds; default: only allow-listed objects)",
    )
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--progress-bar", action="store_true")
    p.set_defaults(func=_train_command)
