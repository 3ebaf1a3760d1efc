"""The exact linear-Gaussian edge posterior as the environments' reward model.

No training and no checkpoint: ``reward_model="exact-linear-gaussian"`` makes every reward the
gain in expected correct adjacency entries under the exact Bayesian posterior (BGe + order DP,
in-degree <= 3). Any agent trained on this SB3 ``VecEnv`` learns against that reward.

    python examples/exact_posterior_reward.py
"""

import numpy as np

from caasl_envs import make_sb3_vec_env

venv = make_sb3_vec_env(
    "caasl/LinearGaussian-v0", n_envs=16, seed=0, reward_model="exact-linear-gaussian"
)
obs = venv.reset()
rng = np.random.default_rng(0)
returns = np.zeros(venv.num_envs)
for step in range(10):
    obs, reward, done, infos = venv.step(
        rng.uniform(-1, 1, (venv.num_envs, venv.action_space.shape[0]))
    )
    returns += reward
    print(
        f"step {step + 1}: mean reward {reward.mean():+.3f}, mean E-SHD {np.mean([i['eshd'] for i in infos]):.2f}"
    )
print(
    f"random designs: mean return {returns.mean():.3f} (expected correct entries gained in 10 steps)"
)
