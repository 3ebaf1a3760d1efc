"""Train an :class:`AVICIModel` on SERGIO count data (the ``avici-sergio-v0`` reward model).

Uses the generic trainer of :mod:`caasl_envs.reward.training.trainer` (optimiser, schedule,
checkpoints, evaluation) with a SERGIO data source in place of the linear one. Every minibatch
is a fresh batch of networks from :class:`~caasl_envs.scm.SergioPrior`, measured as the
environments measure them:

* ``n_obs`` wild-type cells, then ``n_int`` knockout experiments measured on
  ``cells_per_experiment`` cells each (none for a fraction ``p_obs_only`` of the datasets),
  every gene a target with a per-dataset probability, as a random agent produces them
  (``caasl/SERGIO-v0``: one cell per experiment; ``caasl/SERGIOPerturbSeq-v0``: ten);
* one number of genes, rows, graph prior and degree per minibatch (so no padding); the rest is
  drawn per network.

Command line: ``python -m caasl_envs.reward.training.train_sergio --help``; ranges are
``LOW:HIGH`` (or one value) and ``--resume`` continues ``OUT/checkpoint.pt``, as in
``caasl-train-reward``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from caasl_envs.checks import check_int
from caasl_envs.reward.training.data import CAASL_HELDOUT, DatasetSampler
from caasl_envs.reward.training.options import add_options, option, read_options
from caasl_envs.reward.training.train import (
    add_run_arguments,
    run_and_export,
    run_options,
    start_trainer,
)
from caasl_envs.reward.training.trainer import TrainConfig, Trainer
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import Measurement, SergioGRN, SergioPrior


@dataclass
class SergioDatasetSampler(DatasetSampler):
    """Batches of ``(x (B, n, d, 2), graph (B, d, d))`` of SERGIO counts, as the environments see
    them: knockout cells as interventional rows, one graph prior and degree per batch. Fields of
    :class:`~caasl_envs.reward.training.data.DatasetSampler` (defaults: the environments' d = 10 and 50
    wild-type cells), and:

    :param prior: further :class:`SergioPrior` kwargs (technical noise, intervention, ...).
    :param cells_per_experiment: cells measured per knockout experiment (the environments'
        ``samples_per_step``); ``n_int_range`` counts experiments, so a dataset has
        ``n_obs + n_int * cells_per_experiment`` rows.
    """

    d_range: tuple[int, int] = (10, 10)
    n_obs_range: tuple[int, int] = (50, 50)
    n_int_range: tuple[int, int] = (0, 10)
    p_obs_only: float = 0.2
    prior: dict | None = None
    cells_per_experiment: int = field(
        default=1,
        metadata=option(help="cells per knockout experiment (--n-int then counts experiments)"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("cells_per_experiment", self.cells_per_experiment, 1)

    def sample(
        self, seed: int | tuple[int, ...], batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch; everything is a function of ``seed``.

        :return: ``x (B, n, d, 2)`` float32 counts and flags (``n = n_obs + n_int *
            cells_per_experiment``), ``graph (B, d, d)`` float32.
        """
        master = np.random.default_rng(seed)
        d, n_obs, n_int = self._sizes(master)
        graph_kind = self.graphs[int(master.integers(len(self.graphs)))]
        degree = self.degrees[int(master.integers(len(self.degrees)))]
        rng = BatchedRNG(
            [np.random.default_rng(s) for s in master.bit_generator.seed_seq.spawn(batch_size)]
        )
        prior = SergioPrior(d=d, graph=graph_kind, graph_degree=degree, **(self.prior or {}))
        grn = prior.sample(rng)
        obs = grn.sample(rng, n_obs)
        x = torch.stack([obs, torch.zeros_like(obs)], dim=-1)
        if n_int == 0:
            return x, grn.graph
        targets = self._targets(master, rng, n_int, d)  # (B, n_int, d): one row per experiment
        # One copy of each network per experiment, so that every experiment has its own
        # targets; a copy draws from its network's generator.
        k = self.cells_per_experiment
        cells = repeat_networks(grn, n_int).sample(
            BatchedRNG([g for g in rng.generators for _ in range(n_int)]),
            k,
            targets.reshape(-1, d),
        )
        flags = targets.float().repeat_interleave(k, dim=1)  # (B, n_int * k, d)
        interventional = torch.stack([cells.reshape(batch_size, n_int * k, d), flags], dim=-1)
        return torch.cat([x, interventional], dim=1), grn.graph


def repeat_networks(grn: SergioGRN, times: int) -> SergioGRN:
    """Each network of the batch ``times`` times in a row (``repeat_interleave``)."""
    m = grn.measurement
    measurement = None
    if m is not None:
        measurement = Measurement(
            **{f.name: getattr(m, f.name).repeat_interleave(times, 0) for f in fields(m)}
        )
    return replace(
        grn,
        graph=grn.graph.repeat_interleave(times, 0),
        k=grn.k.repeat_interleave(times, 0),
        basal=grn.basal.repeat_interleave(times, 0),
        measurement=measurement,
    )


#: The environments' setting (``caasl/SERGIO-v0`` with a random agent): d=10, ER degree 3,
#: 50 wild-type cells and 10 knockout cells with each gene a target with probability ~1/2.
SERGIO_HELDOUT = dict(CAASL_HELDOUT, target_prob_range=(0.5, 0.5))


def make_trainer(config: TrainConfig) -> Trainer:
    """The generic :class:`Trainer` with SERGIO data for training (``config.data``) and held-out
    evaluation (``config.eval_data``)."""
    return Trainer(config, sampler_class=SergioDatasetSampler)


#: The shipped model's size (AVICI's architecture, small enough to train on a CPU).
MODEL = dict(dim=64, layers=2, num_heads=4, key_size=16, dropout=0.0, expects_counts=True)


#: :class:`SergioDatasetSampler` options of the SERGIO command line (``--graphs`` and
#: ``--degrees`` take space-separated values here).
SERGIO_DATA_OPTIONS = (
    "n_obs_range",
    "n_int_range",
    "target_prob_range",
    "cells_per_experiment",
    "p_obs_only",
    "design_mix",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(
        parser, out="runs/avici-sergio", steps=4000, eval_every=250, eval_datasets=128
    )
    add_options(parser, TrainConfig, ["batch_size"], {"batch_size": 16})
    add_options(parser, SergioDatasetSampler, SERGIO_DATA_OPTIONS)
    parser.add_argument("--technical-noise", default="10x-chromium-mini")
    parser.add_argument(
        "--contrast-hidden",
        type=int,
        default=0,
        help="width of the knockout-contrast head (KnockoutAVICIModel); 0: plain AVICI",
    )
    parser.add_argument(
        "--degrees", type=float, nargs="+", default=None, help="graph degrees (default 1 2 3)"
    )
    parser.add_argument(
        "--graphs", nargs="+", default=None, help="graph priors (default erdos_renyi scale_free)"
    )
    args = parser.parse_args(argv)
    prior = {"technical_noise": args.technical_noise}
    k = args.cells_per_experiment
    data = read_options(args, SergioDatasetSampler, SERGIO_DATA_OPTIONS)
    graph_mix = {
        name: tuple(value)
        for name, value in (("graphs", args.graphs), ("degrees", args.degrees))
        if value is not None
    }
    config = TrainConfig(
        **run_options(args),
        batch_size=args.batch_size,
        warmup_steps=200,
        model=dict(
            MODEL, **({"contrast_hidden": args.contrast_hidden} if args.contrast_hidden else {})
        ),
        data=dict(prior=prior, **data, **graph_mix),
        # Held out: the environment's setting with a random agent (10 experiments of k cells).
        eval_data=dict(SERGIO_HELDOUT, prior=prior, cells_per_experiment=k, **graph_mix),
    )
    run_and_export(start_trainer(config, args, make_trainer), args)


if __name__ == "__main__":
    main()
