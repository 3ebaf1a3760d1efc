"""A tiny causal-design-shaped env and the tiny network configs of the agent tests.

Observation and action spaces follow the env contract of the project (COMMON.md): a Dict with
``history (N, d, 2)`` and ``mask (N,)``, valid rows first; actions ``[targets, values]`` in
``[-1, 1]^(2d)`` or targets only. Hidden system: independent Gaussians with random means; the
reward is the number of intervened variables whose mean is positive minus those with a negative
mean, so a policy can learn from the observed rows which variables to pick (independent of
caasl_envs).

:data:`TINY_ENCODER` and :func:`tiny_policy_kwargs` are the one definition of the tiny CAASL
networks the agent tests train and of the tiny AVICI models of the reward tests
(``conftest.py`` also hands :func:`tiny_policy_kwargs` to tests as a fixture).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: A one-layer CAASL encoder of width 8: fast, and it still runs every part of the network.
TINY_ENCODER = dict(embed_dim=8, n_layers=1, n_heads=2, ff_dim=16, dropout=0.0)

#: A tiny AVICI reward model.
TINY_AVICI = dict(dim=8, layers=1, num_heads=2, key_size=4)


def tiny_policy_kwargs(net_arch: int = 16) -> dict:
    """``policy_kwargs`` of a CAASL policy with :data:`TINY_ENCODER` for actor and critics and
    one hidden layer of ``net_arch`` units."""
    return dict(
        net_arch=[net_arch], actor_encoder_kwargs=TINY_ENCODER, critic_encoder_kwargs=TINY_ENCODER
    )


class ToyDesignEnv(gym.Env):
    def __init__(
        self,
        d: int = 4,
        n0: int = 3,
        budget: int = 3,
        samples_per_step: int = 1,
        targets_only: bool = False,
    ):
        self.d, self.n0, self.budget, self.k = d, n0, budget, samples_per_step
        self.n_rows = n0 + budget * samples_per_step
        self.observation_space = spaces.Dict(
            {
                "history": spaces.Box(-np.inf, np.inf, (self.n_rows, d, 2), np.float32),
                "mask": spaces.Box(0.0, 1.0, (self.n_rows,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, ((1 if targets_only else 2) * d,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.means = self.np_random.normal(size=self.d)
        self.history = np.zeros((self.n_rows, self.d, 2), np.float32)
        self.history[: self.n0, :, 0] = self.means + self.np_random.normal(size=(self.n0, self.d))
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        mask = (np.arange(self.n_rows) < self.n0 + self.t * self.k).astype(np.float32)
        return {"history": self.history.copy(), "mask": mask}

    def step(self, action):
        targets = action[: self.d] > 0
        rows = self.means + self.np_random.normal(size=(self.k, self.d))
        if self.action_space.shape[0] == 2 * self.d:
            rows[:, targets] = action[self.d :][targets]
        start = self.n0 + self.t * self.k
        self.history[start : start + self.k, :, 0] = rows
        self.history[start : start + self.k, :, 1] = targets
        self.t += 1
        reward = float(np.sign(self.means)[targets].sum())
        return self._obs(), reward, self.t == self.budget, False, {}
