"""Where ``caasl train`` logs: TensorBoard when it is installed, else a CSV file.

TensorBoard is optional (``pip install 'caasl[tensorboard]'``). Without it, Stable-Baselines3
would stop the first ``learn`` call with an ``ImportError``; :func:`log_to_csv_without_tensorboard`
gives the model a logger that writes ``progress.csv`` (and stdout when verbose) instead, and says
so in one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import configure

from caasl_envs.optional import available

#: the CSV file the training logs go to without TensorBoard
CSV_LOG = "progress.csv"


def log_to_csv_without_tensorboard(model: BaseAlgorithm, output: Path, verbose: int = 1) -> bool:
    """Leave ``model`` logging to TensorBoard if it is installed; else log to
    ``output/progress.csv`` and print one line on how to get TensorBoard logs.

    :return: whether the logs go to TensorBoard.
    """
    if available("torch.utils.tensorboard"):
        return True
    formats = ["stdout", "csv"] if verbose else ["csv"]
    model.set_logger(configure(str(output), formats))
    print(
        f"TensorBoard is not installed: training logs go to {Path(output) / CSV_LOG} "
        "(pip install 'caasl[tensorboard]' for TensorBoard logs)",
        file=sys.stderr,
    )
    return False


__all__ = ["CSV_LOG", "log_to_csv_without_tensorboard"]
