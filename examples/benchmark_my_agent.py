"""Benchmark your own experimental-design agent against the baselines (and CAASL).

An agent is anything with Stable-Baselines3's ``predict`` on batched observations, or a plain
callable ``observation -> action``. This one intervenes, in every environment, on the variable
with the largest sample variance so far, with value +1 (times the environment's value scale).

    python examples/benchmark_my_agent.py            # tiny suite, a few seconds
    python examples/benchmark_my_agent.py linear 10  # the linear suite, 10 episodes per setting
"""

from __future__ import annotations

import sys

import numpy as np

from caasl_agent.bench.runner import benchmark


class MaxVarianceAgent:
    """Intervene on the variable with the largest variance over the valid rows."""

    name = "max-variance"

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        history, mask = observation["history"], observation["mask"]  # (B, N, d, 2), (B, N)
        values, weights = history[..., 0], mask[..., None]
        count = weights.sum(1)
        mean = (values * weights).sum(1) / count
        var = (((values - mean[:, None]) ** 2) * weights).sum(1) / count  # (B, d)
        b, d = var.shape
        targets = np.where(np.arange(d) == var.argmax(1)[:, None], 1.0, -1.0)
        return np.concatenate([targets, np.ones((b, d))], axis=1).astype(np.float32), state


if __name__ == "__main__":
    suite = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    episodes = int(sys.argv[2]) if len(sys.argv) > 2 else None
    results = benchmark(
        [MaxVarianceAgent(), "random", "observational", "uncertainty"],
        suite=suite,
        episodes=episodes,
        seed=0,
        # The environments' default is the shipped AVICI model; partial correlation needs
        # no weights and keeps this example fast.
        reward_model="partial-correlation",
        reference="random",
        out=f"results/my_agent_{suite}",
    )
    results.print()
    print(f"tables, CSV/JSON and plots in results/my_agent_{suite}/")
