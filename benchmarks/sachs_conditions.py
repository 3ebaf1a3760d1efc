"""What each Sachs condition does to the exact posterior: every experiment of an episode from one
condition, against every experiment observational, on the same episodes (paired).

    nice -n 19 python benchmarks/sachs_conditions.py --episodes 50 [--reference cdt]
    nice -n 19 python benchmarks/sachs_conditions.py --episodes 50 --agents random,eig
    python benchmarks/sachs_conditions.py --whole

Prints, per condition, the final expected number of correct entries (out of 110), E-SHD and
AUROC against the reference graph, and the paired difference in expected correct entries to the
observational design (mean and 95% normal interval over episodes). With ``--agents``, instead:
which conditions each agent ran on the ``real`` suite's ``sachs`` episodes (share of its
experiments), each experiment's condition read off the table rows of its cells. With ``--whole``: the exact
posterior of whole pools (all observational cells; all cells, every condition an intervention)
scored against both references.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm import tqdm

import caasl_envs
from caasl_envs import CausalDesignVectorEnv
from caasl_envs.real.sachs import CONDITIONS, VARIABLES, condition_labels


def condition_action(name: str | None, b: int) -> np.ndarray:
    """``(b, 22)`` actions that run condition ``name`` (``None``: observational)."""
    action = np.full((b, 22), -1.0, dtype=np.float32)
    action[:, 11:] = 0.0
    if name is not None:
        condition = next(c for c in CONDITIONS if c.name == name)
        j = VARIABLES.index(condition.target)
        action[:, j] = 1.0
        action[:, 11 + j] = -1.0 if condition.kind == "inhibitor" else 1.0
    return action


def run(name: str | None, episodes: int, seed: int, reference: str) -> dict[str, np.ndarray]:
    kwargs = {**caasl_envs.ENV_IDS["caasl/Sachs-v0"], "reference": reference}
    vec = CausalDesignVectorEnv(episodes, **kwargs)
    vec.reset(seed=seed)
    action = condition_action(name, episodes)
    for _ in range(vec.core.budget):
        *_, info = vec.step(action)
    return info["final_metrics"]


def condition_shares(agent: str, episodes: int, seed: int) -> np.ndarray:
    """``(8,)`` share of ``agent``'s experiments on the suite's ``sachs`` episodes that ran the
    observational pool and each of the seven interventional conditions."""
    from caasl_agent.bench import get_suite, load_agent
    from caasl_agent.bench.runner import run_setting

    suite = get_suite("real")
    seeds = suite.episode_seeds("sachs", episodes, seed)
    spec = agent if ":" not in agent else load_agent(agent)  # baseline names stay names
    out = run_setting(spec, suite.setting("sachs"), seeds, deterministic=False)
    prior = caasl_envs.scm.SIMULATORS["sachs"]()
    row_of = {row.tobytes(): i for i, row in enumerate(prior.data.numpy())}
    n0, k = vec_sizes()
    first = out["history"][:, n0::k, :, 0]  # (E, budget, 11): each experiment's first cell
    labels = condition_labels()[
        [row_of[c.astype(np.float32).tobytes()] for c in first.reshape(-1, 11)]
    ]
    group = np.maximum(labels - 1, 0)  # the two general conditions -> 0 (observational)
    return np.bincount(group, minlength=8) / len(group)


def whole_pools() -> None:
    """Print the exact posterior's scores on all observational cells and on all 7,466 cells."""
    from caasl_envs import metrics
    from caasl_envs.real.sachs import reference_graph
    from caasl_envs.reward import ExactLinearGaussianPosterior

    prior, labels = caasl_envs.scm.SIMULATORS["sachs"](), condition_labels()
    for name, keep in (("observational", labels < 2), ("all nine conditions", labels >= 0)):
        history = torch.zeros(1, int(keep.sum()), 11, 2)
        history[0, :, :, 0] = prior.data[keep]
        for i, c in enumerate(CONDITIONS):
            if c.target is not None:
                history[0, labels[keep] == i, VARIABLES.index(c.target), 1] = 1.0
        probs = ExactLinearGaussianPosterior().edge_probs(history)
        for reference in ("sachs2005", "cdt"):
            graph = torch.as_tensor(reference_graph(reference), dtype=torch.float32)[None]
            m = metrics.all_metrics(probs, graph)
            print(
                f"{name} ({int(keep.sum())} cells) vs {reference}: exp. correct "
                f"{float(m['expected_correct_entries'][0]):.1f}, SHD {float(m['shd'][0]):.0f}, "
                f"AUROC {float(m['auroc'][0]):.3f}"
            )


def vec_sizes() -> tuple[int, int]:
    kwargs = caasl_envs.ENV_IDS["caasl/Sachs-v0"]
    return kwargs["n0"], kwargs["samples_per_step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", default="sachs2005", choices=("sachs2005", "cdt"))
    parser.add_argument("--agents", help="comma-separated agent specs: report their conditions")
    parser.add_argument("--whole", action="store_true", help="score whole pools of cells")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.whole:
        whole_pools()
        return
    if args.agents:
        names = ["observational", *(c.name for c in CONDITIONS if c.kind != "general")]
        print(f"sachs setting of suite real, {args.episodes} episodes, seed {args.seed}")
        print("| agent | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for agent in tqdm(args.agents.split(",")):
            shares = condition_shares(agent, args.episodes, args.seed)
            print(f"| {agent} | " + " | ".join(f"{s:.0%}" for s in shares) + " |", flush=True)
        return
    names = [None, *(c.name for c in CONDITIONS if c.kind != "general")]
    out = {n: run(n, args.episodes, args.seed, args.reference) for n in tqdm(names)}
    base = out[None]["expected_correct_entries"]
    print(f"reference {args.reference}, {args.episodes} episodes, seed {args.seed}")
    print("| condition (all 10 experiments) | exp. correct | E-SHD | AUROC | vs observational |")
    print("|---|---|---|---|---|")
    for name, m in out.items():
        diff = m["expected_correct_entries"] - base
        half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff)) if name else 0.0
        print(
            f"| {name or 'observational'} | {m['expected_correct_entries'].mean():.2f} | "
            f"{m['eshd'].mean():.2f} | {m['auroc'].mean():.3f} | "
            f"{diff.mean():+.2f} [{diff.mean() - half:+.2f}, {diff.mean() + half:+.2f}] |"
        )


if __name__ == "__main__":
    main()
