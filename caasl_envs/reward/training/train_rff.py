"""Train an :class:`AVICIModel` on the RFF environments' prior (the ``avici-rff-v0`` reward model).

Uses the generic trainer of :mod:`caasl_envs.reward.training.trainer` (optimiser, schedule,
checkpoints, evaluation) with an RFF data source in place of the linear one. Every minibatch is a
fresh batch of systems from :class:`~caasl_envs.scm.rff.RFFSCMPrior`, seen as the environments
see them:

* ``n_obs`` observational rows, then ``n_int`` interventional rows (none for a fraction
  ``p_obs_only`` of the datasets), each with its own targets (the design mix of
  :class:`~caasl_envs.reward.training.data.DatasetSampler`) and values ``U[-1, 1] *
  value_scale``, relative to each variable's observational scale as in the environments;
* one number of variables, rows, graph prior and degree per minibatch (no padding); noise
  family, mechanism (additive or heteroscedastic) and intervention kind mixed per minibatch
  with the weights of ``noise_mix``, ``mechanism_mix`` and ``intervention_mix``.

Command line: ``python -m caasl_envs.reward.training.train_rff --help``; ranges are
``LOW:HIGH`` and ``--resume`` continues ``OUT/checkpoint.pt``, as in ``caasl-train-reward``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np
import torch

from caasl_envs.checks import check_float
from caasl_envs.reward.training.data import CAASL_HELDOUT, DatasetSampler
from caasl_envs.reward.training.options import add_options, option, read_options
from caasl_envs.reward.training.train import (
    LINEAR_DATA_OPTIONS,
    add_run_arguments,
    run_and_export,
    run_options,
    start_trainer,
)
from caasl_envs.reward.training.trainer import ModelConfig, TrainConfig, Trainer
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm.rff import RFF_INTERVENTIONS, RFF_MECHANISMS, RFF_NOISES, RFFSCMPrior


def _pick(master: np.random.Generator, mix: dict[str, float]) -> str:
    names = sorted(mix)
    weights = np.array([mix[k] for k in names], dtype=float)
    return names[int(master.choice(len(names), p=weights / weights.sum()))]


def _check_mix(name: str, mix: dict[str, float], allowed: tuple[str, ...]) -> dict[str, float]:
    unknown = sorted(set(mix) - set(allowed))
    if unknown or not mix:
        raise ValueError(f"{name}: unknown or no entries {unknown}; expected some of {allowed}")
    for key, weight in mix.items():
        check_float(f"{name}[{key!r}]", weight, 0.0, open_low=True)
    return dict(mix)


def name_weights(text: str) -> dict[str, float]:
    """``NAME:WEIGHT,...`` (a bare ``NAME`` has weight 1)."""
    out = {}
    for part in text.split(","):
        name, _, weight = part.partition(":")
        out[name.strip()] = float(weight or 1.0)
    return out


@dataclass
class RFFDatasetSampler(DatasetSampler):
    """Batches of ``(x (B, n, d, 2), graph (B, d, d))`` from RFF SCMs. Fields of
    :class:`~caasl_envs.reward.training.data.DatasetSampler`, and:

    :param value_scale: intervention values are ``U[-1, 1] * value_scale`` (the environments'
        action scale; see :mod:`caasl_envs.scm.rff` for what a value means).
    :param noise_mix: weights of the noise families, drawn per minibatch.
    :param mechanism_mix: weights of ``"additive"`` and ``"heteroscedastic"``.
    :param intervention_mix: weights of ``"do"`` and ``"shift"``.
    """

    d_range: tuple[int, int] = (5, 15)
    value_scale: float = 1.0
    noise_mix: dict[str, float] = field(
        default_factory=lambda: {"gauss": 1.0},
        metadata=option(
            parse=name_weights, help=f"noise families, NAME:WEIGHT,... of {RFF_NOISES}"
        ),
    )
    mechanism_mix: dict[str, float] = field(
        default_factory=lambda: {"additive": 1.0},
        metadata=option(
            parse=name_weights, help=f"mechanisms, NAME:WEIGHT,... of {RFF_MECHANISMS}"
        ),
    )
    intervention_mix: dict[str, float] = field(
        default_factory=lambda: {"do": 1.0},
        metadata=option(
            parse=name_weights, help=f"interventions, NAME:WEIGHT,... of {RFF_INTERVENTIONS}"
        ),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.value_scale = check_float("value_scale", self.value_scale, 0.0, open_low=True)
        self.noise_mix = _check_mix("noise_mix", self.noise_mix, RFF_NOISES)
        self.mechanism_mix = _check_mix("mechanism_mix", self.mechanism_mix, RFF_MECHANISMS)
        self.intervention_mix = _check_mix(
            "intervention_mix", self.intervention_mix, RFF_INTERVENTIONS
        )

    def sample(
        self, seed: int | tuple[int, ...], batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch; everything is a function of ``seed``.

        :return: ``x (B, n_obs + n_int, d, 2)`` float32 values and flags, ``graph (B, d, d)``.
        """
        master = np.random.default_rng(seed)
        d, n_obs, n_int = self._sizes(master)
        prior = RFFSCMPrior(
            d=d,
            graph=self.graphs[int(master.integers(len(self.graphs)))],
            graph_degree=self.degrees[int(master.integers(len(self.degrees)))],
            noise=_pick(master, self.noise_mix),
            mechanism=_pick(master, self.mechanism_mix),
            intervention=_pick(master, self.intervention_mix),
        )
        rng = BatchedRNG(
            [np.random.default_rng(s) for s in master.bit_generator.seed_seq.spawn(batch_size)]
        )
        scm = prior.sample(rng)
        obs = scm.sample(rng, n_obs)
        x = torch.stack([obs, torch.zeros_like(obs)], dim=-1)
        if n_int == 0:
            return x, scm.graph
        # one copy of each system per interventional row: every row has its own targets
        targets = self._targets(master, rng, n_int, d).reshape(-1, d)
        values = (rng.uniform(n_int, d, low=-1.0, high=1.0) * self.value_scale).reshape(-1, d)
        z = scm.standard_noise(rng, n_int).reshape(-1, 1, d)
        rows = scm.repeat(n_int).sample_from_noise(z, targets, values)
        interventional = torch.stack(
            [rows.reshape(batch_size, n_int, d), targets.float().reshape(batch_size, n_int, d)],
            dim=-1,
        )
        return torch.cat([x, interventional], dim=1), scm.graph


def make_trainer(config: TrainConfig) -> Trainer:
    """The generic :class:`Trainer` with RFF data for training and held-out evaluation."""
    return Trainer(config, sampler_class=RFFDatasetSampler)


#: :class:`TrainConfig` options of the RFF command line beyond the run's.
RFF_TRAIN_OPTIONS = ("batch_size", "lr", "warmup_steps", "snapshots")
#: :class:`ModelConfig` options of the RFF command line (no dropout).
RFF_MODEL_OPTIONS = ("dim", "layers", "num_heads", "key_size")
#: :class:`RFFDatasetSampler` options of the RFF command line.
RFF_DATA_OPTIONS = (*LINEAR_DATA_OPTIONS, "noise_mix", "mechanism_mix", "intervention_mix")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, out="runs/avici-rff", steps=4000, eval_every=250, eval_datasets=128)
    add_options(parser, TrainConfig, RFF_TRAIN_OPTIONS, {"warmup_steps": 200})
    add_options(parser, ModelConfig, RFF_MODEL_OPTIONS, {"dim": 32, "key_size": 8})
    add_options(parser, RFFDatasetSampler, RFF_DATA_OPTIONS)
    args = parser.parse_args(argv)
    config = TrainConfig(
        **run_options(args),
        **read_options(args, TrainConfig, RFF_TRAIN_OPTIONS),
        model=read_options(args, ModelConfig, RFF_MODEL_OPTIONS),
        data=read_options(args, RFFDatasetSampler, RFF_DATA_OPTIONS),
        # Held out: the ids' setting (d = 10, ER degree 3, 50 + 10 rows) with random designs.
        eval_data=dict(CAASL_HELDOUT),
    )
    run_and_export(start_trainer(config, args, make_trainer), args)


if __name__ == "__main__":
    main()
