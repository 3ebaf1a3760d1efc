"""What a policy designs: targets per experiment, step by step, on fixed validation envs.

Runs a shipped CAASL policy (or any ``caasl bench`` agent spec) sampled on ``--envs``
environments of an env id (the reward model does not affect the designs' statistics, so the
constant prior stands in) and prints, per experiment, the mean number of targets and the share
of experiments without any target (pure observational / wild-type samples).

    python benchmarks/design_stats.py --agent caasl:caasl-sergio-cpu-v0 --env caasl/SERGIO-v0
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

from caasl_agent.bench.loaders import load_agent
from caasl_envs import CausalDesignVectorEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", default="caasl:caasl-sergio-cpu-v0")
    parser.add_argument("--env", default="caasl/SERGIO-v0")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=10000, help="the training validation seed")
    parser.add_argument("--deterministic", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    agent = load_agent(args.agent)
    kwargs = {**gym.spec(args.env).kwargs, "reward_model": "constant-prior"}
    vec = CausalDesignVectorEnv(args.envs, **kwargs)
    obs, _ = vec.reset(seed=args.seed)
    counts = []
    for _ in range(vec.core.budget):
        action, _ = agent.predict(obs, deterministic=args.deterministic)
        counts.append((np.asarray(action)[:, : vec.core.d] > 0).sum(1))
        obs, *_ = vec.step(action)
    counts = np.stack(counts, 1)  # (envs, budget)
    print(f"{args.agent} on {args.env}, {args.envs} envs from seed {args.seed}")
    print("| experiment | " + " | ".join(str(t + 1) for t in range(counts.shape[1])) + " | all |")
    print("|---|" + "---:|" * (counts.shape[1] + 1))
    means = [f"{m:.2f}" for m in counts.mean(0)] + [f"{counts.mean():.2f}"]
    empty = [f"{e:.2f}" for e in (counts == 0).mean(0)] + [f"{(counts == 0).mean():.2f}"]
    print("| targets (mean) | " + " | ".join(means) + " |")
    print("| share without targets | " + " | ".join(empty) + " |")


if __name__ == "__main__":
    main()
