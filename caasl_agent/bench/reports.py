"""Benchmark results: tables (mean ± standard error, paired comparisons), files and plots.

:meth:`BenchmarkResults.save` writes, into one folder:

* ``steps.csv`` — every episode's metrics after every experiment (long format);
* ``episodes.csv`` — every episode's final metrics;
* ``summary.csv`` and ``table.md`` — mean ± standard error per setting, agent and metric,
  best per column in bold, and a paired comparison against the reference agent (mean
  difference and a 95% t-interval over the shared environments);
* ``results.json`` — the run's description (suite, version, seed, reward models, agents,
  evaluation modes, environment kwargs) and every episode's per-step metrics;
* ``edge_probs.npz`` — final edge probabilities and true graphs of every run, so that every
  metric can be recomputed (``BenchmarkResults.load``);
* ``plots/<metric>.png`` — metric vs number of experiments, one curve per agent with a
  ± standard-error band, one panel per setting (:mod:`caasl_agent.bench.plots`);
* ``timings.json`` — wall-clock seconds per run (kept apart: everything else is a function of
  the seed and is byte-identical across runs).
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from caasl_agent.outputs import check_output_dir, remove_outputs

__all__ = ["HIGHER_IS_BETTER", "REPORT_FILES", "TABLE_METRICS", "BenchmarkResults", "RunRecord"]

#: what :meth:`BenchmarkResults.save` writes
REPORT_FILES = (
    "steps.csv",
    "episodes.csv",
    "summary.csv",
    "comparison.csv",
    "results.json",
    "table.md",
    "edge_probs.npz",
    "timings.json",
    "plots",
)

#: Metrics shown in tables and plots, and whether larger is better.
HIGHER_IS_BETTER = {
    "return": True,
    "expected_correct_entries": True,
    "eshd": False,
    "auroc": True,
    "auprc": True,
    "f1": True,
}
TABLE_METRICS = tuple(HIGHER_IS_BETTER)
_SHORT = {
    "return": "return",
    "expected_correct_entries": "exp. correct",
    "eshd": "E-SHD",
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "f1": "F1",
}
_UNIT_INTERVAL = {"auroc", "auprc", "f1"}


@dataclass
class RunRecord:
    """One agent on all episodes of one setting in one evaluation mode.

    :param metrics: ``{name: (E, T + 1) float64}``; column ``t`` is after ``t`` experiments,
        ``return`` is the cumulative reward.
    :param probs: ``(E, d, d)`` final edge probabilities.
    :param graphs: ``(E, d, d)`` true graphs.
    """

    setting: str
    agent: str
    mode: str
    seeds: tuple[int, ...]
    metrics: dict[str, np.ndarray]
    probs: np.ndarray
    graphs: np.ndarray


def mean_sem(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, standard error (ddof 1) and count of the finite entries."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return math.nan, math.nan, 0
    sem = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return float(v.mean()), sem, n


def paired_interval(diff: np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of paired differences and its two-sided t-interval over the finite pairs."""
    from scipy import stats

    mean, sem, n = mean_sem(diff)
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sem
    return mean, mean - half, mean + half, n


def _by_setting(what: str, by_name: dict[str, list[str]]) -> str:
    """``"what X"`` when every setting has the same ``X``, else ``"whats X (settings); Y (...)"``."""
    if len(by_name) == 1:
        return f"{what} {next(iter(by_name))}"
    return f"{what}s " + "; ".join(
        f"{name} ({', '.join(names)})" for name, names in by_name.items()
    )


def _fmt(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "nan"
    return f"{value:.3f}" if metric in _UNIT_INTERVAL else f"{value:.2f}"


def _json_ready(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


class BenchmarkResults:
    """What :func:`caasl_agent.bench.runner.benchmark` returns.

    :param meta: the run's description (JSON-ready).
    :param runs: one :class:`RunRecord` per (setting, agent, mode) that ran.
    :param timings: wall-clock seconds per run.
    """

    def __init__(
        self, meta: dict[str, Any], runs: list[RunRecord], timings: list[dict] | None = None
    ):
        self.meta = meta
        self.runs = runs
        self.timings = timings or []

    # ------------------------------------------------------------------ frames
    def steps(self) -> pd.DataFrame:
        """Every episode after every experiment: one row per (setting, agent, mode, episode, step)."""
        frames = []
        for run in self.runs:
            e, steps = run.metrics["return"].shape
            frame = pd.DataFrame(
                {
                    "setting": run.setting,
                    "agent": run.agent,
                    "mode": run.mode,
                    "episode": np.repeat(np.arange(e), steps),
                    "env_seed": np.repeat(np.asarray(run.seeds, dtype=np.int64), steps),
                    "experiments": np.tile(np.arange(steps), e),
                }
            )
            for name, values in run.metrics.items():
                frame[name] = values.reshape(-1)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def episodes(self) -> pd.DataFrame:
        """Every episode's final metrics."""
        steps = self.steps()
        last = steps.groupby(["setting", "agent", "mode"], sort=False)["experiments"].transform(
            "max"
        )
        return steps[steps["experiments"] == last].reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """Mean ± standard error of the final value of each table metric."""
        rows = []
        for run in self.runs:
            for metric in TABLE_METRICS:
                mean, sem, n = mean_sem(run.metrics[metric][:, -1])
                rows.append(
                    {
                        "setting": run.setting,
                        "agent": run.agent,
                        "mode": run.mode,
                        "metric": metric,
                        "mean": mean,
                        "sem": sem,
                        "n": n,
                    }
                )
        return pd.DataFrame(rows)

    def comparison(self, reference: str | None = None) -> pd.DataFrame:
        """Paired differences ``agent - reference`` of final metrics over shared environments."""
        reference = reference or self.meta["reference"]
        by_key = {(r.setting, r.agent, r.mode): r for r in self.runs}
        rows = []
        for run in self.runs:
            ref = by_key.get((run.setting, reference, run.mode))
            if run.agent == reference or ref is None:
                continue
            if tuple(ref.seeds) != tuple(run.seeds):
                raise ValueError(f"{run.agent} and {reference} ran different environments")
            for metric in TABLE_METRICS:
                diff = run.metrics[metric][:, -1] - ref.metrics[metric][:, -1]
                mean, low, high, n = paired_interval(diff)
                rows.append(
                    {
                        "setting": run.setting,
                        "agent": run.agent,
                        "reference": reference,
                        "mode": run.mode,
                        "metric": metric,
                        "mean_diff": mean,
                        "ci95_low": low,
                        "ci95_high": high,
                        "n": n,
                    }
                )
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ tables
    def _title(self, models: bool = True) -> str:
        m = self.meta
        by_model: dict[str, list[str]] = {}
        for s in m["settings"]:
            by_model.setdefault(s["reward_model"], []).append(s["name"])
        head = f"suite {m['suite']} v{m['suite_version']}, seed {m['seed']}, {m['episodes']} episodes per setting"
        if not models:
            return head
        return f"{head}, {_by_setting('reward model', by_model)}{self._scorers()}"

    def _scorers(self) -> str:
        """``"; metrics scored by ..."`` where some setting's metrics do not come from its reward
        model (results saved before scorers existed have none)."""
        by_scorer: dict[str, list[str]] = {}
        for s in self.meta["settings"]:
            by_scorer.setdefault(s.get("scorer", s["reward_model"]), []).append(s["name"])
        if all(
            s.get("scorer", s["reward_model"]) == s["reward_model"] for s in self.meta["settings"]
        ):
            return ""
        return f"; metrics (all but return) by {_by_setting('scorer', by_scorer)}"

    def _cells(self, mode: str) -> list[tuple[str, str, list[tuple[str, bool]]]]:
        """Rows ``(setting, agent, [(cell text, is best)])`` of the main table for one mode."""
        summary = self.summary()
        summary = summary[summary["mode"] == mode]
        rows = []
        for setting in [s["name"] for s in self.meta["settings"]]:
            part = summary[summary["setting"] == setting]
            best = {}
            for metric in TABLE_METRICS:
                means = part.loc[part["metric"] == metric, "mean"].dropna()
                if len(means):
                    best[metric] = means.max() if HIGHER_IS_BETTER[metric] else means.min()
            for agent in dict.fromkeys(part["agent"]):
                cells = []
                for metric in TABLE_METRICS:
                    row = part[(part["agent"] == agent) & (part["metric"] == metric)].iloc[0]
                    text = f"{_fmt(metric, row['mean'])} ± {_fmt(metric, row['sem'])}"
                    cells.append((text, metric in best and row["mean"] == best[metric]))
                rows.append((setting, agent, cells))
        return rows

    def _comparison_cells(self, mode: str) -> list[tuple[str, str, list[str]]]:
        comp = self.comparison()
        if comp.empty:
            return []
        comp = comp[comp["mode"] == mode]
        rows = []
        for (setting, agent), part in comp.groupby(["setting", "agent"], sort=False):
            cells = []
            for metric in TABLE_METRICS:
                r = part[part["metric"] == metric].iloc[0]
                cells.append(
                    f"{_fmt(metric, r['mean_diff'])} [{_fmt(metric, r['ci95_low'])}, "
                    f"{_fmt(metric, r['ci95_high'])}]"
                )
            rows.append((setting, agent, cells))
        return rows

    def to_markdown(self) -> str:
        """The results tables as Markdown (best mean per setting and column in bold)."""
        header = "| setting | agent | " + " | ".join(_SHORT[m] for m in TABLE_METRICS) + " |"
        rule = "|---|---|" + "---:|" * len(TABLE_METRICS)
        lines = []
        for mode in self.meta["modes"]:
            lines += [
                f"**{mode.capitalize()} policies** — {self._title()}; final values after "
                "the last experiment, mean ± standard error over episodes.",
                "",
                header,
                rule,
            ]
            for setting, agent, cells in self._cells(mode):
                shown = [f"**{t}**" if best else t for t, best in cells]
                lines.append(f"| {setting} | {agent} | " + " | ".join(shown) + " |")
            comparison = self._comparison_cells(mode)
            if comparison:
                lines += [
                    "",
                    f"Paired difference vs `{self.meta['reference']}` ({mode}): mean [95% "
                    "t-interval] over the shared environments.",
                    "",
                    header,
                    rule,
                ]
                for setting, agent, cells in comparison:
                    lines.append(f"| {setting} | {agent} | " + " | ".join(cells) + " |")
            lines.append("")
        if self.meta["skipped"]:
            lines.append(
                "Skipped: "
                + "; ".join(
                    f"{s['agent']} on {s['setting']} ({s['reason']})" for s in self.meta["skipped"]
                )
            )
        return "\n".join(lines)

    def print(self, console=None) -> None:
        """Print the tables with rich."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console(width=max(Console().width, 150))
        for mode in self.meta["modes"]:
            table = Table(title=f"{mode} policies — {self._title()}")
            table.add_column("setting")
            table.add_column("agent")
            for metric in TABLE_METRICS:
                table.add_column(_SHORT[metric], justify="right")
            previous = None
            for setting, agent, cells in self._cells(mode):
                if previous is not None and setting != previous:
                    table.add_section()
                previous = setting
                table.add_row(
                    setting, agent, *[f"[bold green]{t}[/]" if best else t for t, best in cells]
                )
            console.print(table)
        if self.meta["skipped"]:
            console.print(f"skipped: {self.meta['skipped']}")

    # ------------------------------------------------------------------ files
    def to_json(self) -> str:
        runs = [
            {
                "setting": r.setting,
                "agent": r.agent,
                "mode": r.mode,
                "env_seeds": [int(s) for s in r.seeds],
                "metrics": {k: _json_ready(v.tolist()) for k, v in r.metrics.items()},
            }
            for r in self.runs
        ]
        return json.dumps({**self.meta, "runs": runs}, indent=1) + "\n"

    def save(self, out: str | Path, plots: bool = True) -> Path:
        """Write every report (:data:`REPORT_FILES`) into ``out`` (created); returns the folder.

        The reports are written into a temporary folder inside ``out`` and then moved in, each
        replacing its earlier version, and an earlier ``plots/`` is removed: no stale plot
        stays, and a save that fails half-way leaves the earlier reports whole.
        """
        out = check_output_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out, prefix=".reports-") as tmp:
            self._write_reports(Path(tmp), plots)
            remove_outputs(out, ["plots"])
            for name in REPORT_FILES:
                if (Path(tmp) / name).exists():
                    os.replace(Path(tmp) / name, out / name)
        return out

    def _write_reports(self, out: Path, plots: bool) -> None:
        self.steps().to_csv(out / "steps.csv", index=False)
        self.episodes().to_csv(out / "episodes.csv", index=False)
        self.summary().to_csv(out / "summary.csv", index=False)
        self.comparison().to_csv(out / "comparison.csv", index=False)
        (out / "results.json").write_text(self.to_json())
        (out / "table.md").write_text(self.to_markdown() + "\n")
        self._save_probs(out / "edge_probs.npz")
        (out / "timings.json").write_text(json.dumps(self.timings, indent=1) + "\n")
        if plots:
            self.plot(out / "plots")

    def _save_probs(self, path: Path) -> None:
        """An ``.npz`` with fixed zip timestamps, so that equal results give equal bytes."""
        arrays = {"index": np.array(json.dumps([[r.setting, r.agent, r.mode] for r in self.runs]))}
        for i, r in enumerate(self.runs):
            arrays[f"probs_{i}"] = r.probs
            arrays[f"graphs_{i}"] = r.graphs.astype(np.uint8)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, buffer.getvalue())

    @classmethod
    def load(cls, out: str | Path) -> BenchmarkResults:
        """Read back a folder written by :meth:`save` (metrics from JSON, probabilities from npz,
        wall-clock seconds from ``timings.json`` when the folder has one)."""
        out = Path(out)
        data = json.loads((out / "results.json").read_text())
        runs_json = data.pop("runs")
        with np.load(out / "edge_probs.npz", allow_pickle=False) as npz:
            index = json.loads(str(npz["index"]))
            arrays = {
                tuple(key): (npz[f"probs_{i}"], npz[f"graphs_{i}"]) for i, key in enumerate(index)
            }
        runs = []
        for r in runs_json:
            probs, graphs = arrays[(r["setting"], r["agent"], r["mode"])]
            runs.append(
                RunRecord(
                    setting=r["setting"],
                    agent=r["agent"],
                    mode=r["mode"],
                    seeds=tuple(r["env_seeds"]),
                    metrics={k: np.array(v, dtype=np.float64) for k, v in r["metrics"].items()},
                    probs=probs,
                    graphs=graphs.astype(np.float32),
                )
            )
        timings_path = out / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.is_file() else []
        return cls(data, runs, timings)

    def plot(self, folder: str | Path, metrics: tuple[str, ...] = TABLE_METRICS) -> list[Path]:
        """One PNG per metric (and mode): metric vs number of experiments, one panel per
        setting, one curve per agent with a ± standard-error band (:mod:`caasl_agent.bench.plots`)."""
        from caasl_agent.bench.plots import save_plots

        return save_plots(self, folder, metrics)
