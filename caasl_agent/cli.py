"""The ``caasl`` command line: ``caasl demo | train | bench ...``.

Each subcommand lives in its own ``add_<name>_parser(subparsers)`` function that registers
its arguments and sets ``func``; :func:`main` only dispatches.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from caasl_agent.bench_cli import add_bench_parser, add_demo_parser
from caasl_agent.train import add_train_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caasl", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_demo_parser(subparsers)
    add_bench_parser(subparsers)
    add_train_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
