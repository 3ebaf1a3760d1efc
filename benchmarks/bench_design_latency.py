"""Milliseconds per designed intervention: CAASL policy forward (``predict``) on CPU.

Times ``policy.predict(obs, deterministic=True)`` of a freshly initialised policy with the
actor of a preset (default ``paper``: docs/design.md §4, embed 32, 4 layer pairs, 8 heads,
feed-forward 128) on histories of ``N = 60`` rows (n0 = 50 + budget 10), for d in
{10, 20, 50} and batch 1 and 256. The weights do not matter for the latency; the observation
is a random valid history (and a random edge-probability matrix for policies that read the
belief channel, e.g. ``--preset imitation-linear`` or ``imitation-cut``). Both wall-clock and process CPU time are reported: on a shared
machine the wall clock also counts the time other processes hold the core. Several presets
(``--preset A B``) are timed side by side, their calls alternating, so that a ratio is measured
under the same load.

    python benchmarks/bench_design_latency.py [--threads 1] [--repeats 20] [--preset cpu-quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gymnasium import spaces

from caasl_agent import CAASLPolicy
from caasl_agent.train import load_config
from caasl_envs.histories import observation_space


def observation(batch: int, n_rows: int, d: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random valid batch of observations, with a random ``belief (B, d, d)`` (a policy that
    does not read it ignores it)."""
    history = rng.normal(size=(batch, n_rows, d, 2)).astype(np.float32)
    history[..., 1] = rng.random((batch, n_rows, d)) < 0.1
    mask = np.ones((batch, n_rows), dtype=np.float32)
    belief = (rng.random((batch, d, d)) * (1 - np.eye(d))).astype(np.float32)
    return {"history": history, "mask": mask, "belief": belief}


def policy_for(d: int, n_rows: int, policy_kwargs: dict) -> CAASLPolicy:
    reads_belief = policy_kwargs.get("target_head") == "cut" or bool(
        policy_kwargs.get("actor_encoder_kwargs", {}).get("belief_layers", 0)
    )
    obs_space = observation_space(n_rows, d, belief=reads_belief)
    action_space = spaces.Box(-1.0, 1.0, (2 * d,), np.float32)
    return CAASLPolicy(obs_space, action_space, lambda _: 1e-3, **policy_kwargs)


def time_predict(policy: CAASLPolicy, obs: dict[str, np.ndarray]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one deterministic ``predict``."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    policy.predict(obs, deterministic=True)
    return time.perf_counter() - start_wall, time.process_time() - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument(
        "--preset", nargs="+", default=["paper"], help="actor of these presets (caasl train)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # one policy per preset for every d: nothing depends on d
    policies = [policy_for(10, args.rows, load_config(p)["policy_kwargs"]) for p in args.preset]
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), N={args.rows} rows, "
        f"median of {args.repeats} (calls of the presets alternating)"
    )
    print(
        f"{'preset':>24} {'d':>4} {'batch':>6} {'wall ms':>10} {'CPU ms':>10} {'CPU ms/design':>14}"
    )
    for d in args.dims:
        for batch in args.batches:
            obs = observation(batch, args.rows, d, rng)
            for policy in policies:
                policy.predict(obs, deterministic=True)  # warm-up
            times = [[] for _ in policies]
            for _ in range(args.repeats if batch == 1 else max(args.repeats // 4, 3)):
                for policy, own in zip(policies, times):
                    own.append(time_predict(policy, obs))
            for preset, own in zip(args.preset, times):
                ms_wall, ms_cpu = 1e3 * np.median(np.asarray(own), axis=0)
                print(
                    f"{preset:>24} {d:>4} {batch:>6} {ms_wall:>10.2f} {ms_cpu:>10.2f} "
                    f"{ms_cpu / batch:>14.3f}"
                )


if __name__ == "__main__":
    main()
