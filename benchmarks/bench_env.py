"""Env-steps per second: the natively batched env vs Gymnasium's SyncVectorEnv over single envs.

Measured side by side in one run at d=10, n0=50, budget 10 (the CAASL setting), for
B = 1, 64, 256, once with the real reward model and once with a trivial one (constant prior),
so that the simulator and the bookkeeping are measured on their own. Also the time share of the
reward model: the batched step divided by a bare reward-model forward on the same batch.

    python benchmarks/bench_env.py [--reward-model avici-linear-v0] [--batches 1 64 256]
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np
import torch

import caasl_envs
from caasl_envs import CausalDesignEnv, CausalDesignVectorEnv

SETTING = {**caasl_envs.ENV_IDS["caasl/LinearGaussian-v0"]}


def steps_per_second(make_and_run, min_seconds: float) -> float:
    steps, start = 0, time.perf_counter()
    while True:
        steps += make_and_run()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return steps / elapsed


def run_batched(b: int, reward_model, episodes_seconds: float) -> float:
    vec = CausalDesignVectorEnv(b, **SETTING, reward_model=reward_model)
    rng = np.random.default_rng(0)
    vec.reset(seed=0)

    def episode() -> int:
        vec.reset()
        for _ in range(SETTING["budget"]):
            vec.step(rng.uniform(-1, 1, vec.action_space.shape).astype(np.float32))
        return b * SETTING["budget"]

    episode()  # warm-up
    return steps_per_second(episode, episodes_seconds)


def run_sync(b: int, reward_model, episodes_seconds: float) -> float:
    vec = gym.vector.SyncVectorEnv(
        [lambda: CausalDesignEnv(**SETTING, reward_model=reward_model)] * b,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    rng = np.random.default_rng(0)
    vec.reset(seed=0)

    def episode() -> int:
        for _ in range(SETTING["budget"]):
            vec.step(rng.uniform(-1, 1, vec.action_space.shape).astype(np.float32))
        return b * SETTING["budget"]

    episode()
    return steps_per_second(episode, episodes_seconds)


def forward_seconds(reward_model, b: int, repeats: int = 5) -> float:
    """Mean time of one forward over the history lengths an episode's steps see."""
    d, n0, budget = SETTING["d"], SETTING["n0"], SETTING["budget"]
    xs = [torch.randn(b, n0 + t, d, 2) for t in range(1, budget + 1)]
    for x in xs:
        x[..., 1] = (torch.rand(b, x.shape[1], d) < 0.1).float()
    with torch.inference_mode():
        reward_model.edge_probs(xs[0])
        start = time.perf_counter()
        for _ in range(repeats):
            for x in xs:
                reward_model.edge_probs(x)
    return (time.perf_counter() - start) / (repeats * len(xs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward-model", default="avici-linear-v0")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing window per cell")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: small ops do not fight over cores)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    real, real_name = caasl_envs.load_reward_model(args.reward_model), args.reward_model
    models = [
        ("trivial (constant prior)", caasl_envs.load_reward_model("constant-prior")),
        (real_name, real),
    ]
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads"
    )
    print(
        "| reward model | B | batched env-steps/s | SyncVectorEnv env-steps/s | ratio | batched step / forward alone |"
    )
    print("|---|---|---|---|---|---|")
    for name, model in models:
        for b in args.batches:
            batched = run_batched(b, model, args.seconds)
            sync = run_sync(b, model, args.seconds)
            step_s = b / batched  # seconds per batched step (resets amortised)
            share = step_s / forward_seconds(model, b) if model is real else float("nan")
            share_txt = f"{share:.2f}x" if model is real else "—"
            print(
                f"| {name} | {b} | {batched:,.0f} | {sync:,.0f} | {batched / sync:.1f}x | {share_txt} |"
            )


if __name__ == "__main__":
    main()
