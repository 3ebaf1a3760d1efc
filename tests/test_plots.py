"""The benchmark plots read at a glance: nothing clipped, the legend off the panels, one style
per agent in every figure, y-axes that name the scorer (rendered with Agg, no display)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from caasl_agent.bench.plots import BASELINE_STYLES, agent_styles, metric_figure, save_plots
from caasl_agent.bench.reports import TABLE_METRICS, BenchmarkResults, RunRecord

AGENTS = [
    "caasl:caasl-linear-exact-v0",
    "caasl:caasl-linear-cpu-quick-v0",
    "sb3:runs/a-rather-long-folder-name/best_model.zip",
    "my_pkg.agents:MyAgent",
    "random",
    "random-single",
    "random-zero",
    "random-repeated",
    "observational",
    "round-robin",
    "uncertainty",
    "eig",
]
SETTINGS = [
    ("in-distribution", "avici-linear-v1", "exact-linear-scm"),
    ("scale-free-mu0.1-gumbel", "avici-linear-v1", "exact-linear-scm"),
    ("a-setting-with-a-very-long-name-that-must-wrap", "avici-linear-v1", "exact-linear-scm"),
    ("d30", "avici-linear-v1", "avici-linear-v1"),
    ("knockouts", "avici-sergio-perturbseq-v0", "avici-sergio-perturbseq-v0"),
]


def make_results(agents=AGENTS, settings=SETTINGS, modes=("stochastic",)) -> BenchmarkResults:
    rng = np.random.default_rng(0)
    meta = {
        "suite": "linear",
        "suite_version": 1,
        "seed": 0,
        "episodes": 6,
        "modes": list(modes),
        "reference": "random",
        "settings": [{"name": n, "reward_model": m, "scorer": s} for n, m, s in settings],
    }
    runs = []
    for mode in modes:
        for name, _, _ in settings:
            for k, agent in enumerate(agents):
                base = np.cumsum(rng.random((6, 11)) * (1 + 0.1 * k), axis=1)
                metrics = {m: base + 50 for m in TABLE_METRICS}
                runs.append(
                    RunRecord(
                        setting=name,
                        agent=agent,
                        mode=mode,
                        seeds=tuple(range(6)),
                        metrics=metrics,
                        probs=np.zeros((6, 3, 3)),
                        graphs=np.zeros((6, 3, 3)),
                    )
                )
    return BenchmarkResults(meta, runs)


def _inside(inner: Bbox, outer: Bbox, tol: float = 1.0) -> bool:
    return (
        inner.x0 >= outer.x0 - tol
        and inner.y0 >= outer.y0 - tol
        and inner.x1 <= outer.x1 + tol
        and inner.y1 <= outer.y1 + tol
    )


@pytest.mark.parametrize(
    "n_settings, metric", [(1, "return"), (2, "eshd"), (5, "expected_correct_entries")]
)
def test_nothing_clipped_and_legend_outside(n_settings, metric):
    fig = metric_figure(make_results(settings=SETTINGS[:n_settings]), metric, "stochastic")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert len(texts) > 10
    clipped = [t.get_text() for t in texts if not _inside(t.get_window_extent(renderer), fig.bbox)]
    assert not clipped, f"text outside the figure: {clipped}"
    (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    box = legend.get_window_extent(renderer)
    assert _inside(box, fig.bbox)
    assert [t.get_text() for t in legend.get_texts()][0].startswith("caasl:")
    for ax in fig.axes:
        if ax.axison:
            assert not box.overlaps(ax.get_tightbbox(renderer)), "legend over a panel"
    assert not box.overlaps(fig._suptitle.get_window_extent(renderer)), "legend over the title"
    # the panel titles do not run into each other
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.axison]
    for i, a in enumerate(titles):
        assert not any(a.overlaps(b) for b in titles[i + 1 :])


def test_y_axes_name_their_scorer_or_reward_model():
    results = make_results()
    fig = metric_figure(results, "auprc", "stochastic")
    labels = [ax.get_ylabel() for ax in fig.axes if ax.axison]
    assert labels[0].endswith("scored by exact-linear-scm")
    assert labels[3].endswith("scored by avici-linear-v1")
    assert labels[4].endswith("scored by avici-sergio-perturbseq-v0")
    fig = metric_figure(results, "return", "stochastic")
    assert fig.axes[0].get_ylabel().endswith("reward of avici-linear-v1")


def test_one_style_per_agent_across_figures():
    every = agent_styles(AGENTS)
    few = agent_styles(["random", "caasl:caasl-linear-exact-v0", "observational"])
    for agent, style in few.items():
        assert style == every[agent]
    looks = {(s["color"], s["linestyle"]) for s in every.values()}
    assert len(looks) == len(AGENTS), "two agents drawn alike"
    policy = every["caasl:caasl-linear-exact-v0"]
    assert policy["linewidth"] > every["my_pkg.agents:MyAgent"]["linewidth"]
    assert all(policy["linewidth"] > every[b]["linewidth"] for b in AGENTS if b in BASELINE_STYLES)
    assert policy["zorder"] > every["random"]["zorder"]
    # the drawn lines use them
    fig = metric_figure(make_results(), "auroc", "stochastic")
    for line in fig.axes[0].get_lines():
        assert line.get_color() == every[line.get_label()]["color"]


def test_save_plots_one_png_per_metric_and_mode(tmp_path):
    results = make_results(
        agents=AGENTS[:2] + ["random"], settings=SETTINGS[:1], modes=("stochastic", "deterministic")
    )
    paths = save_plots(results, tmp_path, ("return", "auroc"))
    assert sorted(p.name for p in paths) == [
        "auroc-deterministic.png",
        "auroc-stochastic.png",
        "return-deterministic.png",
        "return-stochastic.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
