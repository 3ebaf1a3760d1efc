"""``caasl --version``: the versions a bug report needs, as Stable-Baselines3's
``get_system_info`` lists them.

::

    caasl 0.1.0
    - Python: 3.11.7
    - PyTorch: 2.13.0+cpu
    - Stable-Baselines3: 2.9.2
    - Gymnasium: 1.4.0
    - NumPy: 2.4.6
    - OS: Linux-6.8.0-x86_64-with-glibc2.36
    - torch device: cpu (CUDA not available)
"""

from __future__ import annotations

import argparse
import platform
from typing import Any

from caasl_envs._version import __version__


def system_info() -> dict[str, str]:
    """``{name: version}`` of caasl, Python, PyTorch, Stable-Baselines3, Gymnasium and NumPy,
    the OS and the device ``device="auto"`` picks."""
    import gymnasium
    import numpy
    import stable_baselines3
    import torch

    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})"
    else:
        device = "cpu (CUDA not available)"
    return {
        "caasl": __version__,
        "Python": platform.python_version(),
        "PyTorch": torch.__version__,
        "Stable-Baselines3": stable_baselines3.__version__,
        "Gymnasium": gymnasium.__version__,
        "NumPy": numpy.__version__,
        "OS": platform.platform(),
        "torch device": device,
    }


def format_system_info(info: dict[str, str] | None = None) -> str:
    """``caasl VERSION`` and one ``- name: version`` line for the rest of :func:`system_info`."""
    info = dict(info or system_info())
    head = f"caasl {info.pop('caasl')}"
    return "\n".join([head, *(f"- {name}: {value}" for name, value in info.items())])


class VersionAction(argparse.Action):
    """``--version``: print :func:`format_system_info` and exit (argparse's own version action
    would re-flow the lines into one)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        kwargs.setdefault("help", "show the versions of caasl, Python, PyTorch, ... and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(format_system_info())
        parser.exit()


__all__ = ["VersionAction", "format_system_info", "system_info"]
