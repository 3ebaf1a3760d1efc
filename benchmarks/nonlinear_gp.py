"""The GP scorer (``exact-gp``) on the RFF environments: quality, hyper-parameter choice, speed.

``quality``: held-out histories of ``caasl/NonlinearRFF-v0`` (``--episodes`` environments, seeds
disjoint from everything else) with ``--n0`` observations and ``--budget`` random experiments
(the ``random`` baseline's design: every node a target with probability 1/2, value uniform in
``[-1, 1]``), scored by each ``--models`` entry: AUROC, AUPRC, expected correct entries (mean
and 95% interval over environments) and seconds per history.

``timing``: wall and CPU seconds per history of each model at ``--ds`` with ``--rows`` rows
(the CPU time is the one to compare on a shared machine).

    python benchmarks/nonlinear_gp.py quality --d 5 --graph-degree 1 --n0 50 --budget 150
    python benchmarks/nonlinear_gp.py timing --ds 5,8,10 --rows 60
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from tqdm import tqdm

from caasl_envs import ENV_IDS, CausalDesignVectorEnv, metrics
from caasl_envs.reward import load_reward_model

SEED_BASE = 7_000_000  # held-out environment seeds: i + SEED_BASE


def random_histories(
    episodes: int,
    d: int,
    graph_degree: float,
    n0: int,
    budget: int,
    seed: int,
    target_prob: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, CausalDesignVectorEnv]:
    """``(E, n0 + budget, d, 2)`` histories of random experiments (each node a target with
    probability ``target_prob``; 0: observational), ``(E, d, d)`` graphs, the env."""
    kwargs = {**ENV_IDS["caasl/NonlinearRFF-v0"], "d": d, "graph_degree": graph_degree}
    kwargs.update(n0=n0, budget=budget, reward_model="constant-prior", reward_schedule="final")
    vec = CausalDesignVectorEnv(episodes, **kwargs)
    vec.reset(seed=[SEED_BASE + seed * 10_000 + i for i in range(episodes)])
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(budget), desc="experiments", leave=False):
        targets = np.where(rng.random((episodes, d)) < target_prob, 1.0, -1.0)
        values = rng.uniform(-1.0, 1.0, (episodes, d))
        vec.step(np.concatenate([targets, values], axis=1).astype(np.float32))
    return vec.core.history.clone(), vec.core.graph.clone(), vec


def interval(values: torch.Tensor) -> str:
    v = values.double()
    v = v[torch.isfinite(v)]
    half = 1.96 * float(v.std()) / math.sqrt(len(v))
    return f"{float(v.mean()):.3f} [{float(v.mean()) - half:.3f}, {float(v.mean()) + half:.3f}]"


def quality(args: argparse.Namespace) -> None:
    x, graph, vec = random_histories(
        args.episodes, args.d, args.graph_degree, args.n0, args.budget, args.seed
    )
    print(
        f"| model | AUROC | AUPRC | expected correct entries (of {args.d * (args.d - 1)}) | s/history |"
    )
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        model = load_reward_model(name)
        if callable(getattr(model, "for_prior", None)):
            model = model.for_prior(vec.core.prior)
        probs, start = [], time.perf_counter()
        for part in tqdm(torch.split(x, args.chunk), desc=name, leave=False):
            with torch.no_grad():
                probs.append(model.edge_probs(part).double())
        seconds = (time.perf_counter() - start) / len(x)
        p = torch.cat(probs)
        row = [interval(metrics.auroc(p, graph)), interval(metrics.auprc(p, graph))]
        row.append(interval(metrics.expected_correct_entries(p, graph)))
        print(f"| {name} | " + " | ".join(row) + f" | {seconds:.3f} |", flush=True)


def timing(args: argparse.Namespace) -> None:
    """Wall and CPU seconds per history (after one warm-up call on a single history)."""
    for d in (int(v) for v in args.ds.split(",")):
        x, _, vec = random_histories(args.episodes, d, 3.0, args.rows - 10, 10, args.seed)
        for name in args.models.split(","):
            model = load_reward_model(name)
            if callable(getattr(model, "for_prior", None)):
                model = model.for_prior(vec.core.prior)
            with torch.no_grad():
                model.edge_probs(x[:1])
                wall, cpu = time.perf_counter(), time.process_time()
                model.edge_probs(x)
            row = {"d": d, "rows": args.rows, "model": name}
            row["wall_s_per_history"] = (time.perf_counter() - wall) / len(x)
            row["cpu_s_per_history"] = (time.process_time() - cpu) / len(x)
            print(json.dumps(row), flush=True)


def designs(args: argparse.Namespace) -> None:
    """Random minus observational designs on the same environments, under each model: paired
    difference of the final expected correct entries (mean [95% t-interval])."""
    from scipy import stats

    runs = {
        name: random_histories(
            args.episodes, args.d, args.graph_degree, args.n0, args.budget, args.seed, prob
        )
        for name, prob in (("random", 0.5), ("observational", 0.0))
    }
    graph = runs["random"][1]
    assert torch.equal(graph, runs["observational"][1])  # same seeds: same systems
    print("| model | random | observational | random - observational |")
    print("|---|---|---|---|")
    for name in args.models.split(","):
        model = load_reward_model(name)
        if callable(getattr(model, "for_prior", None)):
            model = model.for_prior(runs["random"][2].core.prior)
        score = {}
        for design, (x, _, _) in runs.items():
            with torch.no_grad():
                p = torch.cat([model.edge_probs(part).double() for part in torch.split(x, 10)])
            score[design] = metrics.expected_correct_entries(p, graph).numpy()
        diff = score["random"] - score["observational"]
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))
        print(
            f"| {name} | {score['random'].mean():.2f} | {score['observational'].mean():.2f} | "
            f"{diff.mean():+.2f} [{diff.mean() - half:+.2f}, {diff.mean() + half:+.2f}] |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    g = sub.add_parser("designs")
    for p in (q, g):  # the environments both commands roll out
        p.add_argument("--d", type=int, default=5)
        p.add_argument("--graph-degree", type=float, default=1.0)
        p.add_argument("--n0", type=int, default=50)
        p.add_argument("--budget", type=int, default=150)
        p.add_argument("--episodes", type=int, default=30)
    q.add_argument("--chunk", type=int, default=10)
    q.add_argument("--models", default="exact-gp,exact-gp-grid")
    g.add_argument("--models", default="exact-gp,avici-rff-v0")
    t = sub.add_parser("timing")
    t.add_argument("--ds", default="5,8,10")
    t.add_argument("--rows", type=int, default=60)
    t.add_argument("--episodes", type=int, default=8)
    t.add_argument("--models", default="exact-gp,exact-gp-grid,avici-rff-v0")
    for p in (q, g, t):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"quality": quality, "designs": designs, "timing": timing}[args.command](args)


if __name__ == "__main__":
    main()
