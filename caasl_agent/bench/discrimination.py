"""Design discrimination: does a reward model rank experimental designs as the exact posterior does?

A reward model is a measuring instrument for designs, so the number that matters is not how
well it recovers graphs (AUROC) but whether it *orders designs* correctly. This module rolls out
a fixed set of designers once on ``E`` fixed environments of one setting, keeps their histories,
and scores the same histories with any number of reward models ("scorers"):

* ``uncertainty`` — the posterior-uncertainty heuristic driven by the **exact** posterior of the
  environments' prior (``exact-linear-scm``), whatever the scorer, so that every scorer judges
  the same designs (one target per step, the most uncertain node);
* ``random`` — random multi-target designs; ``random-single`` — one random target per step;
  ``random-repeated`` — one random target per episode, every step; ``observational`` — none.

The return of an episode under a scorer is what the environment's dense reward would sum to:
``score(final history) - score(initial data)`` (:func:`caasl_envs.core.design_score`, the
environment's reward kind). The table reports each designer's mean return and its paired 95 %
t-interval against ``random`` (same environments, :func:`~caasl_agent.bench.reports.paired_interval`).
Under the exact posterior the order is uncertainty > random > observational, with intervals above
0: :func:`ranks_like_exact` checks a scorer for that order.

Command line: ``python benchmarks/reward_discrimination.py --help``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from caasl_agent.bench.baselines import PosteriorUncertaintyAgent, make_baseline
from caasl_agent.bench.reports import paired_interval
from caasl_agent.bench.runner import resolve_model, run_setting, setting_env
from caasl_agent.bench.suites import Setting, Suite
from caasl_envs.core import design_score

__all__ = [
    "DESIGNERS",
    "Designs",
    "discrimination_table",
    "ranks_like_exact",
    "roll_out_designs",
    "score_designs",
    "to_markdown",
]

DESIGNERS = ("uncertainty", "random", "random-single", "random-repeated", "observational")
"""The designers judged (see the module docstring); ``random`` is the reference."""

DESIGN_FAMILY = {
    "uncertainty": "single target, chosen",
    "random": "many targets",
    "random-single": "single target",
    "random-repeated": "repeated target",
    "observational": "no intervention",
}

UNCERTAINTY_POSTERIOR = "exact-linear-scm"
"""The posterior that drives the ``uncertainty`` designer (the environments' own, exact)."""


@dataclass
class Designs:
    """The designers' final histories on ``E`` fixed environments of one setting.

    :param setting: the setting the environments come from.
    :param seeds: ``(E,)`` environment seeds.
    :param history: designer -> ``(E, N, d, 2)`` final observations (``n0`` initial rows, then
        ``budget × samples_per_step`` experiment rows).
    :param graphs: ``(E, d, d)`` true graphs (the same for every designer).
    :param n0: initial observational rows; ``rows``: rows of the full history.
    """

    setting: Setting
    seeds: tuple[int, ...]
    history: dict[str, np.ndarray]
    graphs: np.ndarray
    n0: int
    rows: int
    reward_kind: str


def discrimination_setting(env_id: str, overrides: dict | None = None) -> Setting:
    """The one-setting suite of a discrimination run (its seeds are the suite's episode seeds)."""
    return Setting("discrimination", env_id, dict(overrides or {}), "design discrimination")


def episode_seeds(setting: Setting, episodes: int, seed: int) -> list[int]:
    """``episodes`` environment seeds, a function of ``(setting, seed)`` only."""
    suite = Suite("discrimination", 1, (setting,), episodes)
    return suite.episode_seeds(setting.name, episodes, seed)


def _designer(name: str, setting: Setting, agent_seed: int):
    """A designer for ``setting``: the uncertainty heuristic gets the exact posterior."""
    if name != "uncertainty":
        return name
    core = setting_env(setting, 1, UNCERTAINTY_POSTERIOR, "cpu").core
    return PosteriorUncertaintyAgent(core.reward_model, core.target_only, agent_seed)


def roll_out_designs(
    setting: Setting,
    episodes: int,
    seed: int,
    designers: Sequence[str] = DESIGNERS,
    agent_seed: int = 0,
) -> Designs:
    """Run every designer on the same ``episodes`` environments and keep the histories.

    The environments' own reward model is irrelevant here (it does not change the data), so they
    run with the cheap ``constant-prior``; the scorers come later (:func:`score_designs`).
    """
    for name in designers:
        if name != "uncertainty":
            make_baseline(name)  # a clear error for an unknown designer, before any roll-out
    seeds = episode_seeds(setting, episodes, seed)
    history, graphs = {}, None
    for name in designers:
        agent = _designer(name, setting, agent_seed)
        out = run_setting(agent, setting, seeds, True, "constant-prior", agent_seed)
        history[name], graphs = out["history"], out["graphs"]
    core = setting_env(setting, 1, "constant-prior", "cpu").core
    return Designs(setting, tuple(seeds), history, graphs, core.n0, core.max_rows, core.reward_kind)


@torch.no_grad()
def _scores(model, x: np.ndarray, graphs: torch.Tensor, kind: str, chunk: int) -> torch.Tensor:
    """``(E,)`` score of the histories ``x (E, n, d, 2)`` under ``model``, in chunks of ``chunk``."""
    x = torch.as_tensor(x)
    if x.shape[1] == 0:
        d = x.shape[2]
        probs = torch.full((x.shape[0], d, d), 0.5).masked_fill(torch.eye(d, dtype=torch.bool), 0)
    else:
        probs = torch.cat([model.edge_probs(part).float() for part in x.split(chunk)])
    return design_score(probs, graphs, kind).double()


def score_designs(designs: Designs, scorer: str, chunk: int = 64) -> dict[str, np.ndarray]:
    """Per-episode returns ``(E,)`` of every designer under ``scorer`` (a reward-model name or
    ``.pt`` path, resolved for the setting's prior as the environment resolves its reward)."""
    model = resolve_model(designs.setting, scorer)
    graphs = torch.as_tensor(designs.graphs)
    first = next(iter(designs.history.values()))
    start = _scores(model, first[:, : designs.n0], graphs, designs.reward_kind, chunk)
    return {
        name: (
            _scores(model, x[:, : designs.rows], graphs, designs.reward_kind, chunk) - start
        ).numpy()
        for name, x in designs.history.items()
    }


def discrimination_table(
    returns: dict[str, dict[str, np.ndarray]], reference: str = "random"
) -> list[dict]:
    """Rows ``{scorer, designer, family, mean, diff, low, high, n}``: each designer's mean return
    and its paired 95 % interval against ``reference`` under each scorer."""
    rows = []
    for scorer, by_designer in returns.items():
        base = by_designer[reference]
        for designer, values in by_designer.items():
            diff, low, high, n = paired_interval(values - base)
            rows.append(
                dict(
                    scorer=scorer,
                    designer=designer,
                    family=DESIGN_FAMILY.get(designer, ""),
                    mean=float(np.mean(values)),
                    diff=diff,
                    low=low,
                    high=high,
                    n=n,
                )
            )
    return rows


def ranks_like_exact(returns: dict[str, np.ndarray]) -> bool:
    """Whether one scorer's returns order designs as the exact posterior does: uncertainty above
    random and random above observational, both paired 95 % intervals above 0."""
    _, low_u, _, _ = paired_interval(returns["uncertainty"] - returns["random"])
    _, low_o, _, _ = paired_interval(returns["random"] - returns["observational"])
    return bool(low_u > 0 and low_o > 0)


def to_markdown(rows: list[dict], reference: str = "random") -> str:
    """One table: a row per designer, a column per scorer, ``mean (diff [low, high])``."""
    scorers = list(dict.fromkeys(r["scorer"] for r in rows))
    designers = list(dict.fromkeys(r["designer"] for r in rows))
    cell = {(r["scorer"], r["designer"]): r for r in rows}
    lines = [
        "| designer | family | " + " | ".join(scorers) + " |",
        "|---|---|" + "---|" * len(scorers),
    ]
    for designer in designers:
        cells = []
        for scorer in scorers:
            r = cell[(scorer, designer)]
            if designer == reference:
                cells.append(f"{r['mean']:.2f}")
            else:
                cells.append(
                    f"{r['mean']:.2f} ({r['diff']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}])"
                )
        lines.append(
            f"| {designer} | {DESIGN_FAMILY.get(designer, '')} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)
