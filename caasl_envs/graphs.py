"""Random DAG priors, batched: ``(B, d, d)`` adjacency with ``G[b, i, j] = 1`` iff i -> j.

Each graph is drawn from its environment's own generator (:class:`~caasl_envs.rng.BatchedRNG`),
so graphs depend only on the environment's seed.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from caasl_envs.rng import BatchedRNG

GRAPH_PRIORS = ("erdos_renyi", "scale_free", "scale_free_transpose")


def check_graph_prior(kind: str, degree: float) -> None:
    """``ValueError`` unless ``kind`` is one of :data:`GRAPH_PRIORS` and ``degree`` is finite and > 0."""
    if kind not in GRAPH_PRIORS:
        raise ValueError(f"unknown graph prior {kind!r}; expected one of {GRAPH_PRIORS}")
    if isinstance(degree, bool) or not isinstance(degree, int | float | np.number):
        raise ValueError(f"graph_degree must be a number, got {degree!r}")
    if not (math.isfinite(degree) and degree > 0):
        raise ValueError(f"graph_degree must be finite and > 0, got {degree!r}")


def erdos_renyi(rng: BatchedRNG, d: int, degree: float = 3.0) -> torch.Tensor:
    """Erdős–Rényi DAGs in CAASL's "degree" parameterisation.

    Each pair of the strict lower triangle is an edge with ``p = min(degree * d / (d(d-1)/2), 0.99)``
    (about ``degree * d`` edges), then the nodes are randomly relabelled.

    :return: ``(B, d, d)`` float tensor of 0/1 entries.
    """
    p = min(degree * d / (d * (d - 1) / 2), 0.99)

    def one(g: np.random.Generator) -> np.ndarray:
        lower = np.tril(g.random((d, d)) < p, k=-1)
        perm = g.permutation(d)
        # lower[i, j] with i > j is an edge i -> j under the order d-1, ..., 0; relabel both axes.
        return lower[np.ix_(perm, perm)]

    return rng.draw(one)


def _barabasi_albert(g: np.random.Generator, d: int, m: int) -> np.ndarray:
    # igraph's generator takes its randomness from Python's `random`; seed a private instance
    # from the environment's generator so graphs depend only on the environment seed.
    import igraph  # here: importing igraph loads its drawing stack (matplotlib), ~0.6 s

    state = random.getstate()
    random.seed(int(g.integers(2**63)))
    try:
        ba = igraph.Graph.Barabasi(n=d, m=m, directed=True)
    finally:
        random.setstate(state)
    adj = np.asarray(ba.get_adjacency().data, dtype=bool)
    # igraph points new nodes at old ones (i -> older j): that is a DAG in the node index order.
    # CAASL's scale-free graphs have edges from old (hub) nodes to new ones: transpose.
    adj = adj.T
    perm = g.permutation(d)
    return adj[np.ix_(perm, perm)]


def scale_free(
    rng: BatchedRNG, d: int, degree: float = 3.0, transpose: bool = False
) -> torch.Tensor:
    """Directed Barabási–Albert DAGs, ``m = int(degree) + 1`` edges per new node (CAASL's choice).

    Hubs are causes (out-degree power law); ``transpose=True`` makes hubs effects.

    :return: ``(B, d, d)`` float tensor of 0/1 entries.
    """
    m = max(1, min(int(degree) + 1, d - 1))

    def one(g: np.random.Generator) -> np.ndarray:
        adj = _barabasi_albert(g, d, m)
        return adj.T if transpose else adj

    return rng.draw(one)


def sample_graphs(rng: BatchedRNG, kind: str, d: int, degree: float = 3.0) -> torch.Tensor:
    """Dispatch on the prior name (one of :data:`GRAPH_PRIORS`)."""
    if kind == "erdos_renyi":
        return erdos_renyi(rng, d, degree)
    if kind == "scale_free":
        return scale_free(rng, d, degree)
    if kind == "scale_free_transpose":
        return scale_free(rng, d, degree, transpose=True)
    raise ValueError(f"unknown graph prior {kind!r}; expected one of {GRAPH_PRIORS}")


def is_dag(graphs: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: whether each ``(d, d)`` adjacency is acyclic (nilpotent adjacency)."""
    a = (graphs > 0).to(torch.float64)
    d = a.shape[-1]
    power = a.clone()
    for _ in range(d):
        power = (power @ a).clamp(max=1.0)
    return power.flatten(-2).sum(-1) == 0
