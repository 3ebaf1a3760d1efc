"""``caasl/GeneNetwork-v0``: semi-real linear SCMs, sub-networks of fitted Gaussian networks.

**Networks** (``network``): four linear-Gaussian Bayesian networks whose graphs and parameters
were fitted to real data, shipped as checksummed copies of pgmpy 1.1.2's JSON files (origins
and licences: :mod:`caasl_envs.real.data`): ``ecoli70`` (46 genes, 70 edges), ``magic-niab``
(44 nodes, 66 edges), ``magic-irri`` (64 nodes, 102 edges) and ``arth150`` (107 genes, 150
edges). Each node ``j`` has an intercept ``c_j``, coefficients ``W_ij`` on its parents and a
residual variance ``sigma_j^2``: ``x_j = c_j + sum_i W_ij x_i + sigma_j eps_j``.

**Sub-networks.** Exact scoring needs ``d <= 14``, so each episode draws a connected set ``S``
of ``d`` nodes (default 12): a seed node uniform among the nodes whose weakly connected
component has at least ``d`` nodes, then ``d - 1`` times a node uniform among the current
set's neighbours (either edge direction). The hidden system is the induced sub-network with
the fitted weights and noise, in a random node order.

**The rest of the network is clamped** at its observational means (an intervention
``do(X_rest = E[X_rest])``): then ``x_S`` follows exactly the induced linear SCM, the parents
outside ``S`` only adding their mean to the intercepts. (Marginalising them instead would leave
latent confounders between the nodes they feed, a system no DAG over ``S`` describes, which
would make the exact posterior misspecified by construction.)

**Scale.** With ``standardize=True`` (default) every node is rescaled to mean 0 and variance 1
under the sub-network's observational distribution (``W_ij <- W_ij sd_i / sd_j``,
``sigma_j <- sigma_j / sd_j``, intercepts 0), so intervention values (``[-1, 1]`` times
``value_scale``) are in units of each variable's own spread, as in the linear environments.
Interventions are exact ``do`` (or ``shift``) interventions of :class:`~caasl_envs.scm.LinearSCM`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

from caasl_envs.checks import check_bool
from caasl_envs.real.data import read_data_file
from caasl_envs.rng import BatchedRNG
from caasl_envs.scm.linear import LINEAR_INTERVENTIONS, LinearSCM

NETWORKS = ("ecoli70", "magic-niab", "magic-irri", "arth150")


@dataclass(frozen=True)
class FittedNetwork:
    """A fitted linear-Gaussian network over ``D`` nodes (float64 arrays).

    :param nodes: node names.
    :param weights: ``(D, D)``, ``weights[i, j]`` the coefficient of parent ``i`` in ``j``.
    :param intercept: ``(D,)``; ``noise_std``: ``(D,)`` residual standard deviations.
    """

    nodes: tuple[str, ...]
    weights: np.ndarray
    intercept: np.ndarray
    noise_std: np.ndarray

    def means(self) -> np.ndarray:
        """``(D,)`` observational means, ``mu = c (I - W)^-1``."""
        eye = np.eye(len(self.nodes))
        return np.linalg.solve((eye - self.weights).T, self.intercept)


@cache
def load_network(name: str) -> FittedNetwork:
    """One of :data:`NETWORKS`, parsed from its shipped JSON (checksum checked)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; expected one of {NETWORKS}")
    spec = json.loads(read_data_file(f"{name}.json.gz"))
    nodes = tuple(spec["nodes"])
    index = {n: i for i, n in enumerate(nodes)}
    weights = np.zeros((len(nodes), len(nodes)))
    intercept, variance = np.zeros(len(nodes)), np.zeros(len(nodes))
    for node, cpd in spec["cpds"].items():
        j = index[node]
        for parent, (value,) in cpd["coefficients"].items():
            if parent == "(Intercept)":
                intercept[j] = value
            else:
                weights[index[parent], j] = value
        variance[j] = cpd["variance"][0]
    arcs = {(index[a], index[b]) for a, b in spec["arcs"]}
    if arcs != set(zip(*np.nonzero(weights), strict=True)) or not (variance > 0).all():
        raise ValueError(f"{name}.json.gz: coefficients do not match the arcs, or a variance <= 0")
    return FittedNetwork(nodes, weights, intercept, np.sqrt(variance))


def standardize_scm(
    weights: torch.Tensor, bias: torch.Tensor, noise_std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale linear SCMs ``x = x W + b + sigma eps`` (``weights (B, d, d)``, ``bias`` and
    ``noise_std (B, d)``) to observational mean 0, variance 1: returns ``weights (B, d, d)``
    and ``noise_std (B, d)`` (the intercepts become 0)."""
    eye = torch.eye(weights.shape[-1], dtype=weights.dtype, device=weights.device)
    inverse = torch.linalg.inv(eye - weights)  # x = e (I - W)^-1
    cov = inverse.transpose(1, 2) @ (noise_std.square().unsqueeze(-1) * inverse)
    sd = cov.diagonal(dim1=1, dim2=2).sqrt()  # (B, d)
    return weights * sd.unsqueeze(2) / sd.unsqueeze(1), noise_std / sd


@dataclass
class GeneNetworkPrior:
    """Connected ``d``-node sub-networks of a fitted network (``simulator="gene_network"``).

    :param d: nodes per episode (the exact posterior scores ``d <= 14``).
    :param network: one of :data:`NETWORKS`.
    :param intervention: ``"do"`` (default) or ``"shift"``.
    :param standardize: rescale every sub-network to observational mean 0, variance 1.
    """

    d: int = 12
    network: str = "ecoli70"
    intervention: str = "do"
    standardize: bool = True
    fitted: FittedNetwork = field(init=False, repr=False)

    action_kind = "target_value"
    default_reward_model = "exact-linear-gaussian"

    def __post_init__(self) -> None:
        self.fitted = load_network(self.network)
        if self.intervention not in LINEAR_INTERVENTIONS:
            raise ValueError(
                f"unknown intervention {self.intervention!r}; expected one of {LINEAR_INTERVENTIONS}"
            )
        self.standardize = check_bool("standardize", self.standardize)
        from scipy.sparse.csgraph import connected_components  # here: ~0.5 s to import

        w = self.fitted.weights
        _, component = connected_components(w != 0, directed=True, connection="weak")
        size = np.bincount(component)[component]
        if not 2 <= self.d <= size.max():
            raise ValueError(
                f"d must be between 2 and {size.max()} (the largest connected part of "
                f"{self.network!r}), got {self.d}"
            )
        self.seeds = torch.as_tensor(size >= self.d)  # (D,) nodes that can start a sub-network
        self.neighbours = torch.as_tensor((w != 0) | (w.T != 0), dtype=torch.float64)
        self.weights = torch.as_tensor(w)
        self.means = torch.as_tensor(self.fitted.means())
        self.intercept = torch.as_tensor(self.fitted.intercept)
        self.noise_std = torch.as_tensor(self.fitted.noise_std)

    def draw_nodes(self, rng: BatchedRNG) -> torch.Tensor:
        """``(B, d)`` node indices of one connected sub-network per environment, random order."""
        total = len(self.fitted.nodes)
        member = torch.zeros(len(rng), total, dtype=torch.bool)
        allowed = self.seeds.expand(len(rng), -1)
        for _ in range(self.d):  # grow every environment's set by one node per round
            key = torch.where(allowed, rng.uniform(total).cpu().double(), -1.0)
            member[torch.arange(len(rng)), key.argmax(1)] = True
            allowed = ((member.double() @ self.neighbours) > 0) & ~member
        key = torch.where(member, rng.uniform(total).cpu().double(), 2.0)
        return key.argsort(1)[:, : self.d]

    def sample(self, rng: BatchedRNG) -> LinearSCM:
        idx = self.draw_nodes(rng)  # (B, d)
        weights = self.weights[idx.unsqueeze(2), idx.unsqueeze(1)]  # (B, d, d)
        mu = self.means[idx]
        # Outside parents clamped at their means: b_S = mu_S - mu_S W_SS.
        bias = mu - (mu.unsqueeze(1) @ weights)[:, 0]
        noise_std = self.noise_std[idx]
        if self.standardize:
            weights, noise_std = standardize_scm(weights, bias, noise_std)
            bias = torch.zeros_like(noise_std)
        graph = (weights != 0).float()
        device = rng.device
        return LinearSCM(
            graph.to(device),
            weights.float().to(device),
            noise_std.float().to(device),
            bias.float().to(device),
            "gauss",
            self.intervention,
        )
