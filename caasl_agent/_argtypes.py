"""Argument types shared by the ``caasl`` subcommands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1 (a usage error otherwise, not a run that does nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value
