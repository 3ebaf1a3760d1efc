"""Ctrl-C during ``caasl train`` (stop within a step, keep a checkpoint, say how to resume)
and a Ray address that does not answer (fail within :data:`CONNECT_TIMEOUT` seconds).

Python turns Ctrl-C (SIGINT) into a ``KeyboardInterrupt`` wherever the main thread happens to
be, which inside SB3's ``learn`` can be in the middle of a gradient step, a replay-buffer write
or an evaluation: nothing is saved and the folder may hold a half-written file.
:class:`StopOnInterrupt` is an SB3 callback that, while training runs, replaces the SIGINT
handler with one that only sets a flag; its ``_on_step`` then ends training at the next
environment step (SB3's ``learn`` returns), and at the end of training it saves a checkpoint
into the run's ``checkpoints/``, prints the command that resumes from it and raises
:class:`TrainingInterrupted` (a ``KeyboardInterrupt``), so that the caller stops as it would on
Ctrl-C. A second Ctrl-C interrupts at once, as Python does by default.

``ray.init(address=...)`` keeps retrying an address where nothing listens, for minutes;
:func:`check_reachable` opens a TCP connection to its ``HOST:PORT`` first, with a timeout.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback

#: seconds a Ray address has to accept a connection (:func:`check_reachable`)
CONNECT_TIMEOUT = 10.0


def check_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """``ConnectionError`` naming ``address`` when nothing accepts a TCP connection at its
    ``HOST:PORT`` (``ray://`` prefix allowed) within ``timeout`` seconds; other addresses
    (``None``, ``"auto"``) are left to Ray."""
    host, sep, port = (address or "").removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConnectionError(
            f"nothing answers at {address!r} within {timeout:.0f} s ({err.strerror or err})"
        ) from None


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C; ``checkpoint`` is the model saved at that step."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(f"interrupted; checkpoint {checkpoint}")
        self.checkpoint = checkpoint


class StopOnInterrupt(BaseCallback):
    """Ends training at the next step after Ctrl-C (module docstring).

    :param output: the run's folder (its ``checkpoints/`` receives the checkpoint, its
        ``config.yaml`` is the config the printed command resumes with).
    """

    def __init__(self, output: Path) -> None:
        super().__init__()
        self.output = Path(output)
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: at once
        print("\ncaasl train: stopping at the next step (Ctrl-C again to quit at once)", flush=True)

    def _on_training_start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _on_step(self) -> bool:
        return not self.requested

    def _on_training_end(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if not self.requested:
            return
        checkpoint = self.output / "checkpoints" / f"caasl_{self.num_timesteps}_steps.zip"
        self.model.save(checkpoint)
        print(
            f"caasl train: interrupted at step {self.num_timesteps}; resume with:\n"
            f"caasl train --config {self.output / 'config.yaml'} --output-dir {self.output} "
            f"--resume {checkpoint}",
            file=sys.stderr,
            flush=True,
        )
        raise TrainingInterrupted(checkpoint)


__all__ = ["CONNECT_TIMEOUT", "StopOnInterrupt", "TrainingInterrupted", "check_reachable"]
