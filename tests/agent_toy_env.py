"""A tiny causal-design-shaped env for the agent tests (independent of caasl_envs).

Observation and action spaces follow the env contract of the project (COMMON.md): a Dict with
``history (N, d, 2)`` and ``mask (N,)``, valid rows first; actions ``[targets, values]`` in
``[-1, 1]^(2d)`` or targets only. Hidden system: independent Gaussians with random means; the
reward is the number of intervened variables whose mean is positive minus those with a negative
mean, so a policy can learn from the observed rows which variables to pick.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces


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


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The agent tests run tiny networks: on 2 shared cores, 2 torch threads are ~10x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
