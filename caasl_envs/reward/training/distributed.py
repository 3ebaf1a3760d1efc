"""Data-parallel reward-model training with PyTorch's ``torch.distributed``.

Launch any number of processes with ``torchrun`` (one per GPU, or several CPU processes)::

    torchrun --nproc_per_node 4 -m caasl_envs.reward.training.train --out runs/avici ...
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m caasl_envs.reward.training.train ...

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:meth:`Distributed.from_env` reads them (a plain ``python -m`` run is a world of one and uses
no process group). Every process:

* draws its own datasets, seeded by ``(seed, step, rank)`` — disjoint across ranks, and a
  function of the step, so a resumed run continues as the uninterrupted one would; a world of
  one keeps the single-process seeds ``(seed, step)``;
* holds a full model replica wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`,
  which starts every rank from rank 0's parameters and averages the gradients over the ranks
  in ``backward()`` (an all-reduce), so every optimiser step is the same on every rank: the
  step of one process on the union of the ranks' batches, each rank's mean loss weighted
  equally (``--batch-size`` is per process);
* uses the ``nccl`` process-group backend on CUDA (device ``cuda:LOCAL_RANK``) and ``gloo`` on
  the CPU.

Only rank 0 writes checkpoints, snapshots, exported weights and TensorBoard logs; every rank
reads the checkpoint on ``--resume`` (on several nodes the output folder must be shared). Every
rank evaluates the held-out set (identical replicas: the same numbers; the others would wait
for rank 0 at the next all-reduce anyway). Scalars that steer the run (the acyclicity dual, the
time limit) are averaged or agreed over the ranks so that the replicas never diverge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from caasl_envs.core import resolve_device
from caasl_envs.optional import require

__all__ = ["Distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the training world (a world of one: no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        """The world ``torchrun`` describes in ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        if not 0 <= rank < world:
            raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world})")
        return cls(rank, world, local)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0

    def setup(self, device: str | torch.device) -> torch.device:
        """Resolve this rank's device and join the process group (``nccl`` on CUDA, ``gloo``
        otherwise; rendezvous from the environment). With several ranks a CUDA device means
        ``cuda:LOCAL_RANK`` (a ``ValueError`` names it when this node has fewer GPUs)."""
        resolved = resolve_device(device)
        if self.enabled and resolved.type == "cuda":
            resolved = resolve_device(f"cuda:{self.local_rank}")
            torch.cuda.set_device(resolved)
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if resolved.type == "cuda" else "gloo"
            dist.init_process_group(backend, rank=self.rank, world_size=self.world_size)
        return resolved

    def close(self) -> None:
        """Leave the process group (what :meth:`setup` joined)."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def batch_seed(self, seed: int, step: int) -> tuple[int, ...]:
        """The seed of this rank's datasets at ``step``."""
        return (seed, step, self.rank) if self.enabled else (seed, step)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in :class:`DistributedDataParallel` (gradients averaged over the ranks);
        ``model`` itself in a world of one."""
        if not self.enabled:
            return model
        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def mean(self, value: float) -> float:
        """The mean of a scalar over the ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank (every rank gets the same answer)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([float(flag)], device=self._device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor)

    def summary_writer(self, folder: str | Path) -> Any:
        """TensorBoard's ``SummaryWriter`` on rank 0; a writer that discards on the others."""
        if not self.is_main:
            return _Discard()
        tensorboard = require(
            "torch.utils.tensorboard", "reward-model training logs", "tensorboard"
        )
        return tensorboard.SummaryWriter(str(folder))

    def _device(self) -> torch.device:
        # nccl reduces CUDA tensors only; gloo CPU ones
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


class _Discard:
    """What a non-zero rank logs to: nothing."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None
