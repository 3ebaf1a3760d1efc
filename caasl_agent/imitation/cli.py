"""``caasl imitate``: collect a teacher's labels, fit the actor to them, fine-tune with RL.

Three stages share one run folder ``OUT`` and one preset (``imitation-linear``):

* ``collect`` writes label chunks to ``OUT/labels`` (resumable, shardable: ``--shard K/N``);
* ``fit`` fits a new CAASL actor to every chunk there, selects it on the preset's validation
  environments (``evaluation.seed``, deterministic designs) and writes ``OUT/fit``
  (``imitated.zip``, ``curve.csv``);
* ``rl`` fine-tunes ``OUT/fit/imitated.zip`` with SAC/REDQ on the preset's environment
  (``caasl train`` with ``--resume``) into ``OUT/rl``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caasl_agent.caasl import CAASL
from caasl_agent.imitation.labels import LabelSetting, collect, load_chunks, run_fingerprint
from caasl_agent.imitation.trainer import LabelDataset, fit_actor
from caasl_agent.train import env_kwargs_of, evaluate_agent, load_config, make_model, train

#: environment keyword arguments that change what the policy sees, not the labels
_OBSERVATION_KWARGS = ("observe_belief",)


def label_settings(config: dict[str, Any]) -> list[LabelSetting]:
    """The collection mix of ``config["imitation"]["settings"]``, each with the config's
    ``env_kwargs`` under its own overrides."""
    section = config.get("imitation")
    if not section or not section.get("settings"):
        raise ValueError("the config has no imitation.settings: use an imitation preset")
    base = {k: v for k, v in env_kwargs_of(config).items() if k not in _OBSERVATION_KWARGS}
    out = []
    for entry in section["settings"]:
        unknown = set(entry) - {"name", "env_id", "overrides", "weight"}
        if unknown:
            raise ValueError(f"imitation.settings: unknown key(s) {sorted(unknown)} in {entry}")
        overrides = {**base, **entry.get("overrides", {})}
        out.append(
            LabelSetting(entry["name"], entry["env_id"], overrides, float(entry.get("weight", 1)))
        )
    return out


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like K/N, got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def _labels_of(config: dict[str, Any], teacher: str | None) -> tuple[list[LabelSetting], str, int]:
    section = config["imitation"] if "imitation" in config else {}
    return (
        label_settings(config),
        teacher or section.get("teacher", "eig-batch"),
        int(section.get("seed", 0)),
    )


def _collect_command(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    settings, teacher, seed = _labels_of(config, args.teacher)
    section = config["imitation"]
    folder = Path(args.out) / "labels"
    if args.overwrite and folder.exists():
        shutil.rmtree(folder)
    dagger = args.round > 0
    collect(
        folder,
        settings,
        chunks=args.chunks or int(section["dagger_chunks" if dagger else "chunks"]),
        teacher=teacher,
        episodes_per_chunk=int(section.get("episodes_per_chunk", 16)),
        seed=seed,
        beta=float(section.get("dagger_beta" if dagger else "beta", 0.7)),
        round_=args.round,
        explorer=policy_explorer(Path(args.out) / "fit" / "imitated.zip") if dagger else None,
        shard=args.shard,
    )


def policy_explorer(path: Path):
    """``seed -> policy`` for DAgger rounds: the fitted policy, sampling its designs with
    torch's generator seeded by the chunk's explorer seed."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist: a DAgger round needs `caasl imitate fit` first")
    model = CAASL.load(path, device="cpu")

    def explorer(seed: int) -> CAASL:
        torch.manual_seed(seed)
        return model

    return explorer


def validation_score(config: dict[str, Any], env_kwargs: dict[str, Any]):
    """``model -> mean final expected correct entries`` on the preset's validation envs."""
    evaluation = config["evaluation"]

    def score(model) -> float:
        run = evaluate_agent(
            model,
            config["env_id"],
            env_kwargs,
            evaluation["n_envs"],
            evaluation["seed"],
            deterministic=bool(evaluation.get("deterministic", True)),
        )
        return float(np.mean(run["final_expected_correct_entries"]))

    return score


def fit(
    config: dict[str, Any],
    out: Path,
    teacher: str | None = None,
    overwrite: bool = False,
    init: Path | None = None,
):
    """The ``fit`` stage: returns the learning curve (also in ``OUT/fit/curve.csv``). ``init``:
    a CAASL zip of the same sizes whose actor the fit starts from (e.g. to fit longer)."""
    settings, teacher, seed = _labels_of(config, teacher)
    folder = out / "fit"
    if (folder / "imitated.zip").exists() and not overwrite:
        raise ValueError(f"{folder / 'imitated.zip'} exists: pass --overwrite to replace it")
    dataset = LabelDataset(load_chunks(out / "labels", run_fingerprint(settings, teacher, seed)))
    options = dict(config["imitation"].get("fit", {}))
    env_kwargs = env_kwargs_of(config)
    # the RL phase's imitation term (CAASL's imitation_coef) reads the same labels
    config["algorithm"]["imitation_labels"] = str(out / "labels")
    model = make_model(config, env_kwargs, folder, verbose=0)
    if init is not None:
        model.actor.load_state_dict(CAASL.load(init, device=model.device).actor.state_dict())
    torch.manual_seed(int(config["seed"]))
    curve = fit_actor(
        model,
        dataset,
        steps=int(options.get("steps", 6000)),
        batch_size=int(options.get("batch_size", 64)),
        learning_rate=float(options.get("learning_rate", 1e-3)),
        log_std_target=options.get("log_std_target", -1.5),
        seed=int(config["seed"]),
        evaluate=validation_score(config, env_kwargs),
        eval_every=int(options.get("eval_every", 500)),
    )
    model.save(folder / "imitated")
    with (folder / "curve.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(curve[-1]))
        writer.writeheader()
        writer.writerows(curve)
    summary = {
        "labels": len(dataset),
        "teacher": teacher,
        "best": max(r["validation"] for r in curve),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return curve


def _fit_command(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    init = None if args.init is None else Path(args.init)
    curve = fit(load_config(args.config), Path(args.out), args.teacher, args.overwrite, init)
    print(json.dumps(curve[-1], indent=2))


def _rl_command(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    start = out / "fit" / "imitated.zip"
    if not start.is_file():
        raise ValueError(f"{start} does not exist: run `caasl imitate fit` first")
    results = train(
        load_config(args.config),
        out / "rl",
        total_timesteps=args.total_timesteps,
        resume=start,
        progress_bar=True,
        overwrite=args.overwrite,
    )
    print(json.dumps(results, indent=2))


STAGES = {"collect": _collect_command, "fit": _fit_command, "rl": _rl_command}


def _run_stage(args: argparse.Namespace) -> None:
    STAGES[args.stage](args)


def add_imitate_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "imitate", help="imitate a planning designer (DAgger), then fine-tune with RL"
    )
    parser.add_argument("stage", choices=list(STAGES), help="what to run (module docstring)")
    parser.add_argument("--config", default="imitation-linear", help="preset name or YAML file")
    parser.add_argument("--out", required=True, help="run folder (labels go to OUT/labels)")
    parser.add_argument("--teacher", default=None, help="harness agent to imitate")
    parser.add_argument("--chunks", type=int, default=None, help="label chunks of the round")
    parser.add_argument(
        "--round",
        type=int,
        default=0,
        help="collect: 0 = teacher or random designs; R > 0 = DAgger round R, exploring with "
        "the fitted policy OUT/fit/imitated.zip",
    )
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), help="collect chunks K mod N")
    parser.add_argument("--init", default=None, help="fit: start from this zip's actor")
    parser.add_argument("--total-timesteps", type=int, default=None, help="rl: env steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace this stage's earlier outputs"
    )
    parser.set_defaults(func=_run_stage)
