"""Plots of benchmark results that read at a glance.

:func:`metric_figure` draws one figure per metric and evaluation mode: a panel per setting,
the metric after each experiment, one curve per agent with a ± standard-error band.
:func:`save_plots` writes them as ``<metric>.png`` (``<metric>-<mode>.png`` when several
modes ran); :meth:`BenchmarkResults.plot <caasl_agent.bench.reports.BenchmarkResults.plot>`
calls it.

What makes them readable:

* **One look per agent family, in every figure** (:func:`agent_styles`). CAASL policies
  (``caasl:NAME``, ``sb3:PATH``) are drawn in strong colours and thick solid lines on top;
  agents of your own (``module:attr`` and other names) in medium colours; the baselines muted
  and thin — random designs grey (``random`` solid, ``random-single`` dashed, ...),
  observational brown and dotted, round-robin olive, the posterior-based designers
  (``uncertainty``, ``eig``, ``eig-batch``) lilac. A shipped policy always has the same
  colour; other policies get a colour from their name (stable across runs and figures).
* **The legend sits outside the panels**, in a column of its own on the right (constrained
  layout), so it never hides a curve; the emphasised agents come first.
* **Each y-axis names what computed it**: the final metrics come from the setting's *scorer*
  (e.g. the exact posterior ``exact-linear-scm``, which may differ from the reward model), the
  return from the environment's *reward model*.
* **Titles fit**: the figure title is wrapped to the figure's width, panel titles to the
  panel's; ``tests/test_plots.py`` renders figures and checks that every text lies inside the
  figure and that the legend overlaps no panel.
"""

from __future__ import annotations

import math
import textwrap
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from caasl_agent.bench.reports import BenchmarkResults

__all__ = ["METRIC_LABELS", "agent_styles", "metric_figure", "save_plots"]

#: Axis label of each metric.
METRIC_LABELS = {
    "return": "return",
    "expected_correct_entries": "expected correct entries",
    "eshd": "E-SHD (lower is better)",
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "f1": "F1",
}

#: Strong colours of CAASL policies; the shipped policies keep the ones named here.
POLICY_COLORS = ("#0050b3", "#e8590c", "#c2255c", "#2b8a3e", "#1098ad", "#7048e8")
SHIPPED_POLICY_COLOR = {
    "caasl-linear-exact-v0": 0,
    "caasl-linear-cpu-quick-v0": 1,
    "caasl-linear-cpu-quick-v1": 2,
    "caasl-sergio-cpu-v0": 3,
    "caasl-sergio-perturbseq-cpu-v0": 0,
    "caasl-linear-imitation-v0": 4,
    "caasl-linear-cut-v0": 5,
    "caasl-linear-cut-v1": 3,
    "caasl-linear-cut-v2": 2,
}
#: Medium colours of agents of your own (``module:attr`` and names that are no baseline).
OTHER_COLORS = ("#0b7285", "#5c940d", "#862e9c", "#a61e4d", "#364fc7")
#: Baselines: (muted colour, line style), one colour per family.
BASELINE_STYLES = {
    "random": ("#868e96", "-"),
    "random-single": ("#868e96", "--"),
    "random-zero": ("#868e96", "-."),
    "random-repeated": ("#868e96", ":"),
    "round-robin": ("#a9a150", "--"),
    "observational": ("#a47b5f", ":"),
    "uncertainty": ("#9c88c6", "-"),
    "eig": ("#9c88c6", "--"),
    "eig-batch": ("#9c88c6", "-."),
}
_FAMILY_ORDER = {"policy": 0, "other": 1, "baseline": 2}
_WIDTH = {"policy": 2.4, "other": 1.9, "baseline": 1.3}
_BAND_ALPHA = {"policy": 0.16, "other": 0.13, "baseline": 0.08}
_PANEL_W, _PANEL_H, _LEGEND_W = 3.3, 2.8, 2.8


def _family(agent: str) -> str:
    if agent.startswith(("caasl:", "sb3:")):
        return "policy"
    return "baseline" if agent in BASELINE_STYLES else "other"


def _pick(palette: tuple[str, ...], name: str, taken: set[str]) -> str:
    """A colour of ``palette`` fixed by ``name`` (CRC-32), the next free one on a collision."""
    start = zlib.crc32(name.encode())
    for k in range(len(palette)):
        color = palette[(start + k) % len(palette)]
        if color not in taken:
            return color
    return palette[start % len(palette)]


def agent_styles(agents: list[str]) -> dict[str, dict[str, Any]]:
    """Line style of each agent: ``{agent: {color, linestyle, linewidth, zorder, family}}``.

    The same agent gets the same style in every figure; two agents of one figure never share
    a colour and line style (unless a palette runs out).
    """
    styles: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for agent in agents:
        family = _family(agent)
        if family == "baseline":
            color, line = BASELINE_STYLES[agent]
        elif family == "policy":
            name = agent.split(":", 1)[1]
            fixed = SHIPPED_POLICY_COLOR.get(name)
            color = POLICY_COLORS[fixed] if fixed is not None else None
            if color is None or color in taken:
                color = _pick(POLICY_COLORS, name, taken)
            line = "-"
        else:
            color, line = _pick(OTHER_COLORS, agent, taken), "-"
        taken.add(color)
        styles[agent] = {
            "color": color,
            "linestyle": line,
            "linewidth": _WIDTH[family],
            "zorder": 3 - _FAMILY_ORDER[family],
            "family": family,
        }
    return styles


def _wrap(text: str, inches: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``inches`` at ``fontsize`` points."""
    chars = max(12, int(inches * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def _axis_source(setting: dict[str, Any], metric: str) -> str:
    if metric == "return":
        return f"reward of {setting['reward_model']}"
    return f"scored by {setting.get('scorer', setting['reward_model'])}"


def _curve(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error (0 where undefined) over episodes of ``values (E, T + 1)``."""
    finite = np.isfinite(values)
    n = finite.sum(axis=0)
    v = np.where(finite, values, 0.0)
    mean = v.sum(axis=0) / np.maximum(n, 1)
    var = (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0) / np.maximum(n - 1, 1)
    sem = np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), 0.0)
    return np.where(n > 0, mean, np.nan), sem


def metric_figure(results: BenchmarkResults, metric: str, mode: str) -> Figure:
    """One figure: ``metric`` after each experiment, a panel per setting, a curve per agent."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    settings = results.meta["settings"]
    runs = [r for r in results.runs if r.mode == mode]
    agents = list(dict.fromkeys(r.agent for r in runs))
    styles = agent_styles(agents)
    cols = min(len(settings), 4)
    rows = math.ceil(len(settings) / cols)
    legend_w = max(_LEGEND_W, 0.9 + max(map(len, agents), default=0) * 0.6 * 8 / 72)
    width = _PANEL_W * cols + legend_w
    fig = Figure(figsize=(width, _PANEL_H * rows + 0.8), layout="constrained")
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[_PANEL_W] * cols + [legend_w])
    axes = [fig.add_subplot(grid[i // cols, i % cols]) for i in range(len(settings))]
    legend_ax = fig.add_subplot(grid[:, cols])
    legend_ax.set_axis_off()
    for ax, setting in zip(axes, settings):
        for run in runs:
            if run.setting != setting["name"]:
                continue
            mean, sem = _curve(run.metrics[metric])
            x = np.arange(mean.size)
            style = styles[run.agent]
            kwargs = {k: style[k] for k in ("color", "linestyle", "linewidth", "zorder")}
            ax.plot(x, mean, label=run.agent, **kwargs)
            ax.fill_between(
                x,
                mean - sem,
                mean + sem,
                color=style["color"],
                alpha=_BAND_ALPHA[style["family"]],
                linewidth=0,
                zorder=style["zorder"] - 0.5,
            )
        ax.set_title(_wrap(setting["name"], _PANEL_W, 9), fontsize=9)
        ax.set_xlabel("experiments", fontsize=8)
        ax.set_ylabel(
            f"{METRIC_LABELS.get(metric, metric)}\n{_axis_source(setting, metric)}", fontsize=8
        )
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.25, linewidth=0.5)
    order = sorted(agents, key=lambda a: _FAMILY_ORDER[styles[a]["family"]])
    handles = {h.get_label(): h for ax in axes for h in ax.get_lines()}
    legend_ax.legend(
        [handles[a] for a in order if a in handles],
        [a for a in order if a in handles],
        loc="upper left",
        fontsize=8,
        frameon=False,
        title="agent (± s.e. band)",
        title_fontsize=8,
        alignment="left",
    )
    m = results.meta
    title = (
        f"{METRIC_LABELS.get(metric, metric)} after each experiment, {mode} policies — suite "
        f"{m['suite']} v{m['suite_version']}, seed {m['seed']}, {m['episodes']} episodes per setting"
    )
    fig.suptitle(_wrap(title, width - 0.4, 10), fontsize=10)
    return fig


def save_plots(
    results: BenchmarkResults, folder: str | Path, metrics: tuple[str, ...]
) -> list[Path]:
    """Write one PNG per metric and evaluation mode into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    modes = results.meta["modes"]
    written = []
    for mode in modes:
        for metric in metrics:
            fig = metric_figure(results, metric, mode)
            name = metric if len(modes) == 1 else f"{metric}-{mode}"
            path = folder / f"{name}.png"
            fig.savefig(path, dpi=120, metadata={"Software": None})
            written.append(path)
    return written
