"""The ``caasl`` command line: ``caasl demo | train | bench ...``.

Each subcommand lives in its own ``add_<name>_parser(subparsers)`` function that registers
its arguments and sets ``func``; :func:`main` only dispatches.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> None:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from caasl_envs import ENV_IDS, CausalDesignVectorEnv

    kwargs = {**ENV_IDS[args.env], "reward_model": args.reward_model}
    table = Table(
        title=f"{args.env}: {args.episodes} episodes, reward model {args.reward_model or 'default'}"
    )
    for column in ("agent", "return", "final E[correct entries]", "final E-SHD", "final AUPRC"):
        table.add_column(column)
    rng = np.random.default_rng(args.seed)
    for agent in ("observational", "random"):
        vec = CausalDesignVectorEnv(args.episodes, **kwargs)
        vec.reset(seed=args.seed)
        total = np.zeros(args.episodes)
        for _ in range(vec.core.budget):
            if agent == "random":
                actions = rng.uniform(-1, 1, vec.action_space.shape).astype(np.float32)
            else:
                actions = -np.ones(vec.action_space.shape, dtype=np.float32)
            _, reward, _, _, info = vec.step(actions)
            total += reward
        final = info["final_metrics"]
        sem = lambda v: f"{np.mean(v):.2f} ± {np.std(v, ddof=1) / np.sqrt(len(v)):.2f}"  # noqa: E731
        table.add_row(
            agent,
            sem(total),
            sem(final["expected_correct_entries"]),
            sem(final["eshd"]),
            sem(final["auprc"]),
        )
    Console().print(table)


def add_demo_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="a short random-vs-observational table on the default env"
    )
    p.add_argument("--env", default="caasl/LinearGaussian-v0")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--reward-model", default=None, help="registered reward-model name (default: the env's)"
    )
    p.set_defaults(func=_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caasl", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_demo_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
