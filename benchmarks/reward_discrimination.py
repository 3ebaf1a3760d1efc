"""Design discrimination of reward models: the same designs scored by each model.

Rolls out the designers of :mod:`caasl_agent.bench.discrimination` once on ``--episodes`` fixed
environments and prints, per reward model, each designer's mean return with its paired 95 %
interval against random designs, and whether the model orders designs as the exact posterior
does (uncertainty > random > observational, intervals above 0).

    python benchmarks/reward_discrimination.py --reward-models exact-linear-scm avici-linear-v0 \\
        --episodes 200 --seed 0

Choose checkpoints with ``--seed 1`` (validation environments) and report with ``--seed 0``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from caasl_agent.bench.discrimination import (
    DESIGNERS,
    discrimination_setting,
    discrimination_table,
    ranks_like_exact,
    roll_out_designs,
    score_designs,
    to_markdown,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reward-models",
        nargs="+",
        default=["exact-linear-scm", "avici-linear-v0"],
        help="registered names or AVICIModel .pt files",
    )
    parser.add_argument("--env", default="caasl/LinearGaussian-v0", help="environment id")
    parser.add_argument("--overrides", default="{}", help="JSON env kwargs, e.g. '{\"d\": 6}'")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="suite seed (1: validation)")
    parser.add_argument("--designers", nargs="+", default=list(DESIGNERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        overrides = json.loads(args.overrides)
    except json.JSONDecodeError as err:
        parser.error(f"--overrides is not JSON: {err}")
    if args.json and Path(args.json).exists():
        parser.error(f"--json {args.json} exists; choose another file")

    start = time.perf_counter()
    setting = discrimination_setting(args.env, overrides)
    designs = roll_out_designs(setting, args.episodes, args.seed, args.designers)
    returns = {}
    for name in tqdm(args.reward_models, desc="scorers"):
        returns[name] = score_designs(designs, name)
    rows = discrimination_table(returns)
    print(f"{args.env} {overrides} episodes={args.episodes} seed={args.seed}")
    print(to_markdown(rows))
    for name, by_designer in returns.items():
        if {"uncertainty", "random", "observational"} <= set(by_designer):
            print(f"{name}: ranks like the exact posterior: {ranks_like_exact(by_designer)}")
    print(f"wall {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
