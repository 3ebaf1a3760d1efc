"""Fitting the CAASL actor to a teacher's labels (the imitation phase of ``caasl imitate``).

:class:`LabelDataset` holds the labels of many chunks grouped by shape (``N`` rows, ``d``
variables and the per-step row counts), and samples batches of observations exactly as the
environment showed them when the design was chosen: the first ``rows[t]`` rows of the
episode's final history (the rest zeroed and masked) and, for belief-aware policies, the edge
probabilities of that moment. :func:`fit_actor` minimises :func:`imitation_loss` (plus a pull
of the actor's log-std towards ``log_std_target``, so that the sampled policy stays close to
the imitated means) with Adam, evaluates the policy every ``eval_every`` steps with a caller's
function (validation environments with their own seeds) and keeps the best weights.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from caasl_agent.cut_head import pseudo_likelihood_loss
from caasl_agent.imitation.labels import LabelChunk
from caasl_agent.policies import CutActor, per_variable_actions

if TYPE_CHECKING:  # annotations only: CAASL imports this module for its imitation term
    from caasl_agent.caasl import CAASL

__all__ = [
    "VALUE_CLIP",
    "LabelDataset",
    "fit_actor",
    "imitation_loss",
    "squashed_values",
]

#: Teacher values are clipped to ``[-VALUE_CLIP, VALUE_CLIP]`` before ``atanh`` (the squashed
#: action space has no finite preimage of ``+-1``).
VALUE_CLIP = 0.96


@dataclass
class _Group:
    """Labels of one shape: ``history (E, N, d, 2)``, ``rows (T,)``, ``targets``/``values``
    ``(E, T, d)``, ``belief (E, T, d, d)``."""

    history: np.ndarray
    rows: np.ndarray
    targets: np.ndarray
    values: np.ndarray
    belief: np.ndarray

    @property
    def size(self) -> int:
        return int(self.targets.shape[0] * self.targets.shape[1])


class LabelDataset:
    """The labels of ``chunks`` as batches of observations and teacher designs."""

    def __init__(self, chunks: Sequence[LabelChunk]):
        if not chunks:
            raise ValueError("no label chunks: collect labels first (caasl imitate collect)")
        by_shape: dict[tuple, list[LabelChunk]] = {}
        for chunk in chunks:
            key = (chunk.history.shape[1], chunk.targets.shape[2], tuple(chunk.rows.tolist()))
            by_shape.setdefault(key, []).append(chunk)
        self.groups = [
            _Group(
                np.concatenate([c.history for c in group]),
                group[0].rows,
                np.concatenate([c.targets for c in group]),
                np.concatenate([c.values for c in group]),
                np.concatenate([c.belief for c in group]),
            )
            for group in by_shape.values()
        ]

    def __len__(self) -> int:
        return sum(g.size for g in self.groups)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A batch from one shape group (chosen in proportion to its labels): ``history (B, N,
        d, 2)``, ``mask (B, N)``, ``belief (B, d, d)``, ``targets (B, d)`` bool, ``values (B, d)``."""
        sizes = np.array([g.size for g in self.groups], dtype=np.float64)
        group = self.groups[int(rng.choice(len(self.groups), p=sizes / sizes.sum()))]
        episodes, steps = group.targets.shape[:2]
        e = rng.integers(0, episodes, batch_size)
        t = rng.integers(0, steps, batch_size)
        mask = np.arange(group.history.shape[1])[None, :] < group.rows[t][:, None]
        history = group.history[e] * mask[:, :, None, None]
        return {
            "history": torch.as_tensor(history, dtype=torch.float32),
            "mask": torch.as_tensor(mask, dtype=torch.float32),
            "belief": torch.as_tensor(group.belief[e, t]),
            "targets": torch.as_tensor(group.targets[e, t]),
            "values": torch.as_tensor(group.values[e, t]),
        }


def squashed_values(values: torch.Tensor) -> torch.Tensor:
    """Teacher values in ``[-1, 1]`` -> pre-tanh targets ``atanh(clip(v, -c, c))``."""
    return torch.atanh(values.clamp(-VALUE_CLIP, VALUE_CLIP))


def imitation_loss(
    mean: torch.Tensor, targets: torch.Tensor, values: torch.Tensor | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Imitation loss of pre-tanh means ``mean (B, d, a)`` against the teacher's ``targets
    (B, d)`` bool and ``values (B, d)`` (``a = 1``: targets only, ``values`` ignored): a
    logistic loss on ``target_j > 0`` for every variable plus, on the teacher's targets only,
    the squared error of the value mean's *magnitude* against that of
    :func:`squashed_values`. The sign is left free: the EIG planners pick ``+1`` and ``-1``
    equally often (49.5 % each, 0 in 0.9 % of ``eig-batch``'s targets in the
    ``imitation-linear`` labels) since the linear-Gaussian prior is symmetric, so a loss on
    the signed value would pull every value to 0, the least informative choice.

    Returns the loss and its parts (``target_bce``, ``target_accuracy``, ``value_mse``)."""
    logits = mean[..., 0]
    y = targets.to(logits.dtype)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    parts = {
        "target_bce": bce.item(),
        "target_accuracy": ((logits > 0) == targets).float().mean().item(),
    }
    if mean.shape[-1] == 1 or values is None:
        return bce, parts
    weight = y / y.sum().clamp(min=1.0)
    target = squashed_values(values.to(mean.dtype)).abs()
    mse = (weight * (mean[..., 1].abs() - target) ** 2).sum()
    parts["value_mse"] = mse.item()
    return bce + mse, parts


def actor_imitation_loss(
    model: CAASL, batch: dict[str, torch.Tensor], log_std_target: float | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """The imitation loss of ``model``'s actor on a :meth:`LabelDataset.sample` batch: for the
    MLP actor :func:`imitation_loss` plus ``(log_std - log_std_target)^2`` averaged when a
    target is given; for :class:`~caasl_agent.policies.CutActor` the pseudo-likelihood of the
    teacher's target sets (:func:`~caasl_agent.cut_head.pseudo_likelihood_loss`; its values
    and log-stds are fixed)."""
    device = model.device
    obs = {k: batch[k].to(device) for k in ("history", "mask", "belief")}
    actor = model.actor
    targets, values = batch["targets"].to(device), batch["values"].to(device)
    if isinstance(actor, CutActor):  # only the energy is learned
        return pseudo_likelihood_loss(*actor.cut_energy(obs), targets)
    mean, log_std, _ = actor.get_action_dist_params(obs)
    d = targets.shape[1]
    mean, log_std = per_variable_actions(mean, d), per_variable_actions(log_std, d)
    loss, parts = imitation_loss(mean, targets, values)
    if log_std_target is not None:
        pull = ((log_std - log_std_target) ** 2).mean()
        parts["log_std_pull"] = pull.item()
        loss = loss + pull
    return loss, parts


def fit_actor(
    model: CAASL,
    dataset: LabelDataset,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    log_std_target: float | None = -1.5,
    seed: int = 0,
    evaluate: Callable[[CAASL], float] | None = None,
    eval_every: int = 500,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Fit ``model``'s actor to ``dataset`` for ``steps`` Adam steps; before the first step,
    every ``eval_every`` steps and at the end ``evaluate(model)`` scores the policy (higher is
    better) and the best weights, the starting ones included, are kept in the model at the
    end. Returns the learning curve: one row per evaluation (``step``, ``cpu_seconds``,
    ``validation`` and the running loss parts)."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    actor = model.actor
    optimizer = torch.optim.Adam(actor.parameters(), lr=learning_rate)
    curve: list[dict[str, float]] = []
    best, best_state = -np.inf, None
    start = time.process_time()
    running: dict[str, float] = {}

    def checkpoint(step: int) -> None:
        nonlocal best, best_state
        actor.set_training_mode(False)
        score = float(evaluate(model))
        row = {"step": step, "cpu_seconds": time.process_time() - start, "validation": score}
        curve.append(row | running)
        if score > best:
            best, best_state = score, copy.deepcopy(actor.state_dict())

    if evaluate is not None:
        checkpoint(0)
    for step in tqdm(range(1, steps + 1), desc="imitation", disable=not progress):
        actor.set_training_mode(True)
        loss, parts = actor_imitation_loss(model, dataset.sample(batch_size, rng), log_std_target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running = {k: 0.98 * running.get(k, v) + 0.02 * v for k, v in parts.items()}
        if evaluate is not None and (step % eval_every == 0 or step == steps):
            checkpoint(step)
    if best_state is not None:
        actor.load_state_dict(best_state)
    actor.set_training_mode(False)
    return curve
