"""Stock Stable-Baselines3 / sb3-contrib agents on a causal design env.

    python examples/other_sb3_agents.py [--timesteps 2000] [--algorithms SAC,TQC] [--eval-envs 32]

Every algorithm is trained with ``"MultiInputPolicy"`` twice: with SB3's default
``CombinedExtractor`` (flattens history and mask) and with :class:`~caasl_agent.CAASLFeaturesExtractor`
(the CAASL encoder, per-variable embeddings flattened, so fixed ``d``). Then each designs on 32
held-out envs and the table shows the final expected number of correct adjacency entries.
"""

import argparse

import numpy as np
import torch
from sb3_contrib import TQC
from stable_baselines3 import A2C, PPO, SAC, TD3

import caasl_envs
from caasl_agent import CAASLFeaturesExtractor

ENV_KWARGS = dict(d=5, reward_model="exact-linear-gaussian")


def heldout_score(model, n_envs: int = 32) -> float:
    env = caasl_envs.make_sb3_vec_env(
        "caasl/LinearGaussian-v0", n_envs=n_envs, seed=10_000, **ENV_KWARGS
    )
    obs = env.reset()
    while True:
        obs, _, done, info = env.step(model.predict(obs, deterministic=False)[0])
        if done.all():
            return float(np.mean([i["final_metrics"]["expected_correct_entries"] for i in info]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=2000)
    parser.add_argument("--algorithms", default="SAC,TD3,TQC,PPO,A2C", help="comma-separated")
    parser.add_argument("--eval-envs", type=int, default=32, help="held-out envs per score")
    args = parser.parse_args()
    torch.set_num_threads(1)
    encoder = dict(embed_dim=16, n_layers=1, n_heads=2, ff_dim=32, dropout=0.0)
    print(f"{'algorithm':<10} {'extractor':<10} final E[correct entries]")
    algorithms = {
        "SAC": (SAC, {}),
        "TD3": (TD3, {}),
        "TQC": (TQC, {}),
        "PPO": (PPO, dict(n_steps=64, batch_size=64)),  # 64 x 8 envs per rollout
        "A2C": (A2C, {}),
    }
    chosen = args.algorithms.split(",")
    unknown = sorted(set(chosen) - set(algorithms))
    if unknown:
        parser.error(f"--algorithms: unknown {unknown}; expected some of {list(algorithms)}")
    for name in chosen:
        algorithm, kwargs = algorithms[name]
        for extractor in ("default", "caasl"):
            env = caasl_envs.make_sb3_vec_env(
                "caasl/LinearGaussian-v0", n_envs=8, seed=0, **ENV_KWARGS
            )
            policy_kwargs = {}
            if extractor == "caasl":
                policy_kwargs = dict(
                    features_extractor_class=CAASLFeaturesExtractor,
                    features_extractor_kwargs=encoder,
                )
            model = algorithm(
                "MultiInputPolicy", env, seed=0, policy_kwargs=policy_kwargs, **kwargs
            )
            model.learn(args.timesteps)
            print(f"{name:<10} {extractor:<10} {heldout_score(model, args.eval_envs):.2f}")


if __name__ == "__main__":
    main()
