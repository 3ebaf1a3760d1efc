"""The ten-line tour: make an environment, run one episode of random experiments.

python examples/quickstart.py [reward-model-name]
"""

import sys

import gymnasium as gym

import caasl_envs  # noqa: F401  (registers the ids)

reward_model = sys.argv[1] if len(sys.argv) > 1 else None  # None: the env's default (AVICI)
env = gym.make("caasl/LinearGaussian-v0", reward_model=reward_model)
obs, info = env.reset(seed=0)
print(f"history {obs['history'].shape}, initial E[correct entries] {info['initial_score']:.2f}")
terminated = False
while not terminated:
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    print(f"experiment {int(obs['mask'].sum()) - 50:2d}: reward {reward:+.3f}")
print({k: round(v, 3) for k, v in info["final_metrics"].items()})
