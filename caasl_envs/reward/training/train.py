"""Train an :class:`AVICIModel` reward model on datasets simulated on the fly.

The ``caasl-train-reward`` command line: linear SCMs from the environments' prior
(:class:`~caasl_envs.reward.training.data.LinearDatasetSampler`), trained by
:class:`~caasl_envs.reward.training.trainer.Trainer`. Its options are the fields of the
configuration dataclasses that declare one (:mod:`caasl_envs.reward.training.options`): the run
(:data:`RUN_OPTIONS`, shared by every reward-training command line), the optimisation
(:data:`OPTIMISATION_OPTIONS`), the architecture
(:class:`~caasl_envs.reward.training.trainer.ModelConfig`) and the data
(:data:`LINEAR_DATA_OPTIONS`), plus ``--resume``, ``--export`` and ``--no-progress``.

Command line: ``caasl-train-reward --help``; on several processes or GPUs (data-parallel, one
model replica per process, rank-disjoint datasets): ``torchrun --nproc_per_node N -m
caasl_envs.reward.training.train ...`` (:mod:`caasl_envs.reward.training.distributed`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

from caasl_envs.reward.training.data import LinearDatasetSampler
from caasl_envs.reward.training.options import add_options, read_options
from caasl_envs.reward.training.trainer import ModelConfig, TrainConfig, Trainer

__all__ = [
    "LINEAR_DATA_OPTIONS",
    "OPTIMISATION_OPTIONS",
    "RUN_OPTIONS",
    "add_run_arguments",
    "main",
    "run_and_export",
    "run_options",
    "start_trainer",
]

#: :class:`TrainConfig` options of every reward-training command line (``--steps`` apart).
RUN_OPTIONS = (
    "out_dir",
    "seed",
    "init",
    "eval_every",
    "eval_datasets",
    "checkpoint_every_s",
    "time_limit_s",
    "device",
    "threads",
)
#: :class:`TrainConfig` options of ``caasl-train-reward`` beyond the run's.
OPTIMISATION_OPTIONS = (
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "grad_clip",
    "acyclicity_weight",
    "targets",
    "teacher_weight",
    "teacher_max_d",
    "snapshots",
)
#: :class:`LinearDatasetSampler` options of ``caasl-train-reward``.
LINEAR_DATA_OPTIONS = (
    "d_range",
    "n_obs_range",
    "n_int_range",
    "p_obs_only",
    "graphs",
    "degrees",
    "design_mix",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="caasl-train-reward", description=__doc__.split("\n\n")[0]
    )
    add_run_arguments(parser, out="runs/avici", steps=20_000, eval_every=500, eval_datasets=256)
    add_options(parser, TrainConfig, OPTIMISATION_OPTIONS)
    add_options(parser, ModelConfig)
    add_options(parser, LinearDatasetSampler, LINEAR_DATA_OPTIONS)
    args = parser.parse_args(argv)
    config = TrainConfig(
        **run_options(args),
        **read_options(args, TrainConfig, OPTIMISATION_OPTIONS),
        model=read_options(args, ModelConfig),
        data=read_options(args, LinearDatasetSampler, LINEAR_DATA_OPTIONS),
    )
    run_and_export(start_trainer(config, args, Trainer), args)


def add_run_arguments(
    parser: argparse.ArgumentParser, out: str, steps: int, eval_every: int, eval_datasets: int
) -> None:
    """The options every reward-training CLI shares: run folder, resume, export, seed, steps
    (default ``steps``), init, evaluation, checkpointing, time limit, device and threads."""
    defaults = {"out_dir": out, "eval_every": eval_every, "eval_datasets": eval_datasets}
    add_options(parser, TrainConfig, RUN_OPTIONS, defaults)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--export", default=None, help="also write shippable weights to this .pt")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"total steps (default {steps}; with --resume: extend the schedule)",
    )
    parser.set_defaults(default_steps=steps)
    parser.add_argument("--no-progress", action="store_true")


def run_options(args: argparse.Namespace) -> dict:
    """The :class:`TrainConfig` fields :func:`add_run_arguments` sets."""
    steps = args.default_steps if args.steps is None else args.steps
    return {**read_options(args, TrainConfig, RUN_OPTIONS), "steps": steps}


def start_trainer(
    config: TrainConfig, args: argparse.Namespace, make: Callable[[TrainConfig], Trainer]
) -> Trainer:
    """``make(config)``, or with ``--resume`` and an existing ``OUT/checkpoint.pt`` the saved
    run, with this invocation's steps (when given), time limit, device and threads."""
    checkpoint = Path(args.out_dir) / "checkpoint.pt"
    if not (args.resume and checkpoint.is_file()):
        return make(config)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]
    trainer = make(
        TrainConfig(
            **{
                **saved,
                "steps": saved["steps"] if args.steps is None else args.steps,
                "time_limit_s": args.time_limit_s,
                "device": args.device,
                "threads": args.threads,
            }
        )
    )
    trainer.load(checkpoint)
    return trainer


def run_and_export(trainer: Trainer, args: argparse.Namespace) -> None:
    """The CLIs' common tail: train, print the result as JSON, export weights if asked."""
    existing = trainer.out / "checkpoint.pt"
    if trainer.step == 0 and existing.is_file():
        # A fresh run would overwrite that checkpoint at its first save.
        raise SystemExit(
            f"{existing} exists: continue that run with --resume (where the CLI has it) or "
            "choose another --out"
        )
    result = trainer.run(progress=not args.no_progress)
    if trainer.dist.is_main:
        print(
            json.dumps({"step": trainer.step, "elapsed_s": round(trainer.elapsed_s, 1), **result})
        )
        if args.export:
            print(f"weights written to {trainer.model.save(args.export)}")
    trainer.dist.close()


if __name__ == "__main__":
    main()
