"""Milliseconds per designed intervention: CAASL policy forward (``predict``) on CPU.

Times ``model.predict(obs, deterministic=True)`` of a freshly initialised policy with the
paper's actor (DESIGN.md §4: embed 32, 4 layer pairs, 8 heads, feed-forward 128) on histories
of ``N = 60`` rows (n0 = 50 + budget 10), for d in {10, 20, 50} and batch 1 and 256. The
weights do not matter for the latency; the observation is a random valid history.

    python benchmarks/bench_design_latency.py [--threads 1] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gymnasium import spaces

from caasl_agent import CAASLPolicy


def observation(batch: int, n_rows: int, d: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    history = rng.normal(size=(batch, n_rows, d, 2)).astype(np.float32)
    history[..., 1] = rng.random((batch, n_rows, d)) < 0.1
    mask = np.ones((batch, n_rows), dtype=np.float32)
    return {"history": history, "mask": mask}


def policy_for(d: int, n_rows: int) -> CAASLPolicy:
    obs_space = spaces.Dict(
        {
            "history": spaces.Box(-np.inf, np.inf, (n_rows, d, 2), np.float32),
            "mask": spaces.Box(0.0, 1.0, (n_rows,), np.float32),
        }
    )
    action_space = spaces.Box(-1.0, 1.0, (2 * d,), np.float32)
    return CAASLPolicy(obs_space, action_space, lambda _: 1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rows", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = policy_for(10, args.rows)  # one policy for every d: nothing depends on d
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), N={args.rows} rows, median of {args.repeats}"
    )
    print(f"{'d':>4} {'batch':>6} {'ms / call':>10} {'ms / design':>12}")
    for d in (10, 20, 50):
        for batch in (1, 256):
            obs = observation(batch, args.rows, d, rng)
            policy.predict(obs, deterministic=True)  # warm-up
            times = []
            for _ in range(args.repeats if batch == 1 else max(args.repeats // 4, 3)):
                start = time.perf_counter()
                policy.predict(obs, deterministic=True)
                times.append(time.perf_counter() - start)
            ms = 1e3 * float(np.median(times))
            print(f"{d:>4} {batch:>6} {ms:>10.2f} {ms / batch:>12.3f}")


if __name__ == "__main__":
    main()
