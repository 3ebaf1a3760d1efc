"""How much a SERGIO knockout experiment says about the graph, model-free and to a reward model.

Three measurements, all at d=10 on networks from :class:`~caasl_envs.scm.SergioPrior` (seeds
disjoint from training), one torch thread:

1. **Information** (``--part info``): for every gene i, one knockout of i measured on ``k``
   cells, next to ``n_wt`` wild-type cells of the same network. The statistic of a pair i -> j
   is ``|z|`` of gene j's mean ``log1p`` count in the knockout-of-i cells against the wild-type
   cells, minus the median of that difference over the other genes of the experiment (the
   technical noise scales every cell to its library size, so a knockout shifts every gene's
   log-count alike), ``z = (m_ko - m_wt - median) / (s_wt sqrt(1/k + 1/n_wt))``. The table
   gives its AUROC for true edges i -> j against non-edges (in brackets: descendants against
   non-descendants, since a knockout moves every descendant). One setting is varied at a time
   from the base (10x-chromium-mini noise, ER degree 3, Hill 1, 5 cell types); the ``k`` cells
   of a smaller ``k`` are the first cells of the largest (cells are independent draws).
2. **Designs under the model-free scorer** (``--part designs``): episodes of a design
   environment (``--env``, kwargs ``--set KEY=VALUE``), a design baseline choosing the
   knockouts; the final history is scored by the same ``|z|`` (cells where i is a target and j
   is not, against the wild-type cells; pairs never tested score 0), AUROC and AUPRC against the
   true graph, and by a reward model (``--model``, ``none`` to skip): expected correct entries,
   paired differences to the observational design on the same environments, and the knockout
   worth (the same history with every experiment's cells replaced by wild-type cells).
3. **Reward-model worth** (``--part model``): a reward model on ``n_wt`` wild-type cells + one
   single-gene knockout of every gene measured on ``k`` cells, against ``n_wt + d k`` wild-type
   cells of the same networks (the knockout cells replaced by wild-type ones): expected correct
   entries (of 90) and AUROC.

    python benchmarks/sergio_information.py --part info            # ~1 CPU min
    python benchmarks/sergio_information.py --part designs --env caasl/SERGIOPerturbSeq-v0
    python benchmarks/sergio_information.py --part model --model avici-sergio-v0 --ks 1,10,25
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import caasl_envs  # noqa: F401  (registers the environment ids)
from caasl_envs import load_reward_model
from caasl_envs.core import CausalDesignCore, make_generators
from caasl_envs.metrics import auprc, auroc, expected_correct_entries
from caasl_envs.reward.base import ConstantRewardModel
from caasl_envs.reward.training.train_sergio import repeat_networks
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm import SergioPrior

#: Base setting of the information table and the variations (one at a time).
BASE = {"technical_noise": "10x-chromium-mini", "graph_degree": 3.0, "hill": 1.0, "cell_types": 5}
VARIATIONS = (
    ("base: 10x-chromium-mini, ER degree 3, Hill 1, 5 cell types", {}),
    ("no technical noise", {"technical_noise": "clean"}),
    ("ER degree 1 (10 of 45 pairs)", {"graph_degree": 1.0}),
    ("ER degree 1, no technical noise", {"graph_degree": 1.0, "technical_noise": "clean"}),
    ("ER degree 2", {"graph_degree": 2.0}),
    ("Hill 2", {"hill": 2.0}),
    ("1 cell type", {"cell_types": 1}),
)
SEED = 1 << 40  # far from the training seeds (small integers and their spawned children)


def log_expression(counts: torch.Tensor) -> torch.Tensor:
    """``log1p`` of the counts: ``(B, n, d) -> (B, n, d)`` float64 (no per-cell normalisation:
    the technical noise already scales every cell to its library size)."""
    return torch.log1p(counts.double())


def knockout_zscores(
    x: torch.Tensor, mask: torch.Tensor | None = None, centre: bool = True
) -> torch.Tensor:
    """Model-free knockout scores ``|z|`` of a history: ``(B, n, d, 2) -> (B, d, d)``.

    ``z[b, i, j]`` compares gene j's mean log-expression in the cells where i is a target and j
    is not against the wild-type cells (no target), minus the median of that difference over
    the genes j of row i (the compositional shift), scaled by the wild-type standard deviation
    of gene j times ``sqrt(1/n_ko + 1/n_wt)``; 0 where no such cells exist and on the diagonal.

    :param mask: ``(B, n)`` valid rows (``None``: all).
    :param centre: subtract each experiment's median shift (``False``: the raw difference).
    """
    b, n, d, _ = x.shape
    valid = torch.ones(b, n, dtype=torch.float64) if mask is None else mask.double()
    level = log_expression(x[..., 0])
    flags = (x[..., 1] > 0).double() * valid[..., None]  # (B, n, d)
    wild = valid * (flags.sum(-1) == 0)  # (B, n)
    n_wt = wild.sum(1).clamp(min=1.0)[:, None]  # (B, 1)
    mean_wt = (wild[..., None] * level).sum(1) / n_wt  # (B, d)
    var_wt = (wild[..., None] * (level - mean_wt[:, None]).square()).sum(1) / (n_wt - 1).clamp(
        min=1.0
    )
    untargeted = valid[..., None] - flags  # (B, n, d): gene j measured unperturbed
    n_ko = torch.einsum("bci,bcj->bij", flags, untargeted)
    sum_ko = torch.einsum("bci,bcj->bij", flags, untargeted * level)
    tested = (n_ko > 0) & ~torch.eye(d, dtype=torch.bool)
    diff = sum_ko / n_ko.clamp(min=1.0) - mean_wt[:, None, :]
    # Library-size scaling makes cells compositional: a knockout shifts every other gene's
    # log-count alike. The median shift of each experiment's untargeted genes removes it.
    shift = diff.masked_fill(~tested, float("nan")).nanmedian(-1, keepdim=True).values
    if centre:
        diff = diff - shift.nan_to_num(0.0)
    scale = (
        var_wt.clamp(min=1e-12).sqrt()[:, None, :]
        * (1 / n_ko.clamp(min=1.0) + 1 / n_wt[..., None]).sqrt()
    )
    return torch.where(tested & (wild.sum(1) > 1)[:, None, None], diff / scale, 0.0).abs()


def descendants(graph: torch.Tensor) -> torch.Tensor:
    """``(B, d, d)`` 0/1: ``[b, i, j] = 1`` iff j is a descendant of i (transitive closure)."""
    reach = graph.double()
    for _ in range(graph.shape[-1]):
        reach = ((reach + reach @ graph.double()) > 0).double()
    return reach


def knockout_screen(
    prior: SergioPrior, networks: int, n_wt: int, k: int, seed: int, wild_type_too: bool = False
) -> dict[str, torch.Tensor]:
    """``networks`` networks; ``n_wt`` wild-type cells and a single-gene knockout of every gene
    on ``k`` cells each.

    :return: ``graph (B, d, d)``, ``x (B, n_wt + d k, d, 2)`` (wild-type rows first, then gene
        0's knockout cells, ...) and with ``wild_type_too`` ``x_wild`` of the same shape, the
        knockout cells replaced by ``d k`` further wild-type cells.
    """
    rng = BatchedRNG.from_seeds([seed + i for i in range(networks)])
    grn = prior.sample(rng)
    d = prior.d
    wild = grn.sample(rng, n_wt)
    copies = BatchedRNG([g for g in rng.generators for _ in range(d)])
    targets = torch.eye(d, dtype=torch.bool).repeat(networks, 1)
    cells = repeat_networks(grn, d).sample(copies, k, targets).reshape(networks, d * k, d)
    flags = targets.reshape(networks, d, 1, d).expand(networks, d, k, d).reshape(networks, -1, d)
    x = torch.cat(
        [torch.stack([wild, torch.zeros_like(wild)], -1), torch.stack([cells, flags.float()], -1)],
        1,
    )
    out = {"graph": grn.graph, "x": x}
    if wild_type_too:
        more = grn.sample(rng, d * k)
        out["x_wild"] = torch.cat([x[:, :n_wt], torch.stack([more, torch.zeros_like(more)], -1)], 1)
    return out


def _keep_cells(x: torch.Tensor, n_wt: int, d: int, k_max: int, k: int) -> torch.Tensor:
    """The wild-type rows and the first ``k`` of each knockout's ``k_max`` cells."""
    ko = x[:, n_wt:].reshape(x.shape[0], d, k_max, d, 2)[:, :, :k]
    return torch.cat([x[:, :n_wt], ko.reshape(x.shape[0], d * k, d, 2)], 1)


def _score(z: torch.Tensor) -> torch.Tensor:
    """|z| mapped monotonically into [0, 1) (the metrics take probabilities; ranks are kept)."""
    return z / (1.0 + z)


def part_info(args: argparse.Namespace) -> None:
    ks = [int(v) for v in args.ks.split(",")]
    k_max = max(ks)
    print(
        f"# knockout information, d={args.d}, {args.networks} networks per row, {args.n_wt} "
        f"wild-type cells, one knockout of each gene on k cells; AUROC of the z-score, edges vs "
        f"non-edges (in brackets: descendants vs non-descendants)"
    )
    print(
        f"| setting | true edges (of {args.d * (args.d - 1)}) | "
        + " | ".join(f"k = {k}" for k in ks)
        + " |"
    )
    print("|---|---:|" + "---:|" * len(ks))
    start = time.process_time()
    for name, change in VARIATIONS:
        prior = SergioPrior(d=args.d, **{**BASE, **change})
        screen = knockout_screen(prior, args.networks, args.n_wt, k_max, SEED)
        graph = screen["graph"]
        reach = descendants(graph)
        cells = []
        for k in ks:
            x = _keep_cells(screen["x"], args.n_wt, args.d, k_max, k)
            z = knockout_zscores(x, centre=not args.uncentred)
            edge = float(auroc(_score(z), graph).nanmean())
            ancestral = float(auroc(_score(z), reach).nanmean())
            cells.append(f"{edge:.3f} ({ancestral:.3f})")
        edges = float(graph.sum() / args.networks)
        print(f"| {name} | {edges:.1f} | " + " | ".join(cells) + " |")
    print(f"# {time.process_time() - start:.0f} CPU s")


def part_model(args: argparse.Namespace) -> None:
    model = load_reward_model(args.model)
    ks = [int(v) for v in args.ks.split(",")]
    prior = SergioPrior(
        d=args.d, **{**BASE, **dict(VARIATIONS)[args.setting]} if args.setting else BASE
    )
    print(
        f"# reward model {args.model}, d={args.d}, {args.networks} networks, {args.n_wt} wild-type "
        f"cells + one knockout of each gene on k cells vs as many wild-type cells; "
        f"expected correct entries of {args.d * (args.d - 1)} (AUROC)"
    )
    print("| k | wild-type + knockouts | wild-type only | knockout - wild-type | same, AUROC |")
    print("|---:|---:|---:|---:|---:|")
    for k in ks:
        screen = knockout_screen(prior, args.networks, args.n_wt, k, SEED, wild_type_too=True)
        graph = screen["graph"]
        with torch.inference_mode():
            p_ko = model.edge_probs(screen["x"])
            p_wt = model.edge_probs(screen["x_wild"])
        ko, wt = expected_correct_entries(p_ko, graph), expected_correct_entries(p_wt, graph)
        a_ko, a_wt = float(auroc(p_ko, graph).nanmean()), float(auroc(p_wt, graph).nanmean())
        print(
            f"| {k} | {float(ko.mean()):.2f} | {float(wt.mean()):.2f} | "
            f"{_mean_ci(ko - wt)} | {a_ko:.3f} vs {a_wt:.3f} |"
        )


def _overrides(env_id: str, items: list[str] | None) -> dict:
    """``KEY=VALUE`` strings -> env kwargs, each value cast to the type of the id's default."""
    defaults, out = gym.spec(env_id).kwargs, {}
    for item in items or ():
        key, _, value = item.partition("=")
        out[key] = type(defaults[key])(value) if key in defaults else value
    return out


def run_design(
    env_id: str, agent_name: str, episodes: int, seed: int, overrides: dict, model
) -> dict[str, torch.Tensor]:
    """``episodes`` episodes of ``env_id`` (one batch) under a design baseline. The environment
    computes no reward (the constant prior); the uncertainty baseline uses ``model``.

    :return: final ``history (E, N, d, 2)``, ``mask (E, N)``, ``graph (E, d, d)`` and
        ``wild (E, N, d, 2)``: the same history with every experiment's cells replaced by as
        many wild-type cells of the same networks.
    """
    from caasl_agent.bench.baselines import make_baseline

    kwargs = {**gym.spec(env_id).kwargs, **overrides, "reward_model": ConstantRewardModel(0.5)}
    core = CausalDesignCore(episodes, **kwargs)
    core.reset(BatchedRNG(make_generators(seed, episodes)))
    agent = make_baseline(agent_name, core.target_only, seed, model if model else None)
    state, start = None, np.ones(episodes, dtype=bool)
    for _ in range(core.budget):
        obs = core.observation()
        action, state = agent.predict(obs, state, start)
        start = np.zeros(episodes, dtype=bool)
        core.step(torch.as_tensor(action))
    wild = core.history.clone()
    more = core.system.sample(
        BatchedRNG(make_generators(seed + episodes, episodes)), core.max_rows - core.n0
    )
    wild[:, core.n0 :, :, 0], wild[:, core.n0 :, :, 1] = more, 0.0
    return {
        "history": core.history.clone(),
        "mask": core.mask.clone(),
        "graph": core.graph.clone(),
        "wild": wild,
    }


def _mean_ci(diff: torch.Tensor, digits: int = 2) -> str:
    """``mean [95 % interval]`` (normal approximation) of paired differences ``(E,)``."""
    diff = diff.double()
    half = 1.96 * float(diff.std()) / np.sqrt(len(diff))
    mean = float(diff.mean())
    return f"{mean:+.{digits}f} [{mean - half:+.{digits}f}, {mean + half:+.{digits}f}]"


def part_designs(args: argparse.Namespace) -> None:
    overrides = _overrides(args.env, args.set)
    model = None if args.model == "none" else load_reward_model(args.model)
    rows = {}
    for name in args.agents.split(","):
        start = time.process_time()
        run = run_design(args.env, name, args.networks, SEED, overrides, model)
        graph, row = run["graph"], {}
        z = _score(knockout_zscores(run["history"], run["mask"]))
        row["z_auroc"], row["z_auprc"] = auroc(z, graph), auprc(z, graph)
        if model is not None:
            with torch.inference_mode():
                p = model.edge_probs(run["history"])
                p_wild = model.edge_probs(run["wild"])
            row["correct"] = expected_correct_entries(p, graph)
            row["worth"] = row["correct"] - expected_correct_entries(p_wild, graph)
            row["auroc"] = auroc(p, graph)
        row["cpu"] = time.process_time() - start
        rows[name] = row
    print(
        f"# {args.env} {overrides or ''}: {args.networks} episodes (seeds {SEED}+), "
        f"model-free knockout |z| scorer" + (f" and reward model {args.model}" if model else "")
    )
    head = "| design | z-score AUROC | z-score AUPRC | z-score AUROC − observational |"
    if model is not None:
        head += (
            " E[correct] | − observational | knockout worth (vs as many wild-type cells) | AUROC |"
        )
    head += " CPU s |"
    print(head + "\n" + "|---" * (len(head.split("|")) - 2) + "|")
    base = rows.get("observational")
    for name, row in rows.items():
        paired = base is not None and name != "observational"
        z_diff = (
            row["z_auroc"].nan_to_num(0.5) - base["z_auroc"].nan_to_num(0.5) if paired else None
        )
        cells = [
            name,
            f"{float(row['z_auroc'].nanmean()):.3f}",
            f"{float(row['z_auprc'].nanmean()):.3f}",
            _mean_ci(z_diff, 3) if paired else "",
        ]
        if model is not None:
            cells += [
                f"{float(row['correct'].mean()):.2f}",
                _mean_ci(row["correct"] - base["correct"]) if paired else "",
                _mean_ci(row["worth"]),
                f"{float(row['auroc'].nanmean()):.3f}",
            ]
        print("| " + " | ".join(cells) + f" | {row['cpu']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("info", "model", "designs"), default="info")
    parser.add_argument("--networks", type=int, default=128)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--n-wt", type=int, default=50, help="wild-type cells")
    parser.add_argument("--ks", default="1,5,10,25,50", help="cells per knockout experiment")
    parser.add_argument(
        "--model", default="avici-sergio-v0", help="reward model (--part designs: or none)"
    )
    parser.add_argument("--setting", default=None, help="a VARIATIONS name for --part model")
    parser.add_argument("--env", default="caasl/SERGIOPerturbSeq-v0")
    parser.add_argument("--set", nargs="*", help="env kwarg overrides KEY=VALUE (--part designs)")
    parser.add_argument(
        "--agents",
        default="observational,random,random-single,round-robin,uncertainty",
        help="design baselines (--part designs)",
    )
    parser.add_argument(
        "--uncentred", action="store_true", help="--part info: no median-shift correction"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"info": part_info, "model": part_model, "designs": part_designs}[args.part](args)


if __name__ == "__main__":
    main()
