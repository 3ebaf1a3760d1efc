"""The caasl command line: caasl demo | bench | train (caasl COMMAND --help for each).

Each subcommand lives in its own ``add_<name>_parser(subparsers)`` function that registers
its arguments and sets ``func``; :func:`main` only dispatches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from caasl_agent._argtypes import DefaultsHelpFormatter
from caasl_agent.bench.backends import BenchmarkError
from caasl_agent.bench.cli import add_bench_parser, add_demo_parser
from caasl_agent.imitation.cli import add_imitate_parser
from caasl_agent.system_info import VersionAction
from caasl_agent.train import add_train_parser
from caasl_envs.optional import MissingDependencyError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caasl", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error"
    )
    parser.add_argument("--version", action=VersionAction)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_demo_parser(subparsers)
    add_bench_parser(subparsers)
    add_train_parser(subparsers)
    add_imitate_parser(subparsers)
    for subparser in subparsers.choices.values():
        subparser.formatter_class = DefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, MissingDependencyError) as err:
        # Bad input (unknown suite, agent spec, reward model, file, ...) is a usage error:
        # one line naming the problem, exit status 2, as argparse does for its own checks.
        # So is a feature whose optional dependency is missing (the line names the extra).
        if args.traceback:
            raise
        parser.exit(2, f"caasl {args.command}: error: {err}\n")
    except BenchmarkError as err:
        # Runs that raised are named (the finished ones are kept), or the backend did not
        # start: exit status 1.
        if args.traceback:
            sys.stderr.write("".join(failure.traceback for _, failure in err.failures))
            raise
        parser.exit(1, f"caasl {args.command}: error: {err}\n")
    except KeyboardInterrupt:
        # Ctrl-C: what was finished is kept (train: a checkpoint and the resume command, bench:
        # the finished runs); exit status 130 as a shell reports SIGINT, no traceback.
        if args.traceback:
            raise
        parser.exit(130, f"caasl {args.command}: interrupted\n")


if __name__ == "__main__":
    main()
