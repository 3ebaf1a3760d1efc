"""Linear additive-noise SCMs, batched over environments.

``x_j = sum_i W_ij x_i + b_j + sigma_j * eps_j`` with ``eps_j`` zero-mean, unit-variance noise of
one family (Gaussian, Laplace, Gumbel). Priors follow CAASL (docs/design.md §3): ``W_ij ~ N(±mu,
1/indeg(j))`` with a random sign on edges, ``sigma_j^2 ~ InverseGamma(10, 1)``, zero bias unless
asked for.

Interventions on any subset of nodes, per environment:

* ``do``: the target is clamped to the value (it no longer listens to its parents or its noise);
* ``shift``: the value is added to the target's noise mean, so it propagates to descendants
  through the path coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from caasl_envs.checks import check_bool, check_float
from caasl_envs.graphs import check_graph_prior, sample_graphs
from caasl_envs.rng import BatchedRNG

NOISE_FAMILIES = ("gauss", "laplace", "gumbel")
LINEAR_INTERVENTIONS = ("do", "shift")
_EULER_GAMMA = 0.5772156649015329


def standard_noise(rng: BatchedRNG, family: str, n: int, d: int) -> torch.Tensor:
    """Zero-mean, unit-variance noise ``(B, n, d)`` of the given family."""
    if family == "gauss":
        return rng.normal(n, d)
    if family == "laplace":
        return rng.laplace(n, d) / math.sqrt(2.0)
    if family == "gumbel":
        return (rng.gumbel(n, d) - _EULER_GAMMA) * (math.sqrt(6.0) / math.pi)
    raise ValueError(f"unknown noise family {family!r}; expected one of {NOISE_FAMILIES}")


@dataclass
class LinearSCM:
    """A batch of ``B`` linear SCMs over ``d`` variables.

    :param graph: ``(B, d, d)`` 0/1 adjacency, ``graph[b, i, j] = 1`` iff i -> j.
    :param weights: ``(B, d, d)`` coefficients, zero off the graph.
    :param noise_std: ``(B, d)`` noise standard deviations.
    :param bias: ``(B, d)`` intercepts.
    :param noise: noise family name.
    :param intervention: ``"do"`` or ``"shift"``.
    """

    graph: torch.Tensor
    weights: torch.Tensor
    noise_std: torch.Tensor
    bias: torch.Tensor
    noise: str = "gauss"
    intervention: str = "do"

    @property
    def d(self) -> int:
        return self.graph.shape[-1]

    def sample(
        self,
        rng: BatchedRNG,
        n: int,
        targets: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` samples per environment under an intervention.

        :param targets: ``(B, d)`` bool, the intervened nodes (``None``: observational).
        :param values: ``(B, d)`` intervention values (ignored where not a target).
        :return: ``(B, n, d)`` samples.
        """
        eps = standard_noise(rng, self.noise, n, self.d)
        return self.sample_from_noise(eps, targets, values)

    def sample_from_noise(
        self,
        eps: torch.Tensor,
        targets: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Deterministic map from standard noise ``(B, n, d)`` to samples ``(B, n, d)``."""
        e = self.bias.unsqueeze(1) + self.noise_std.unsqueeze(1) * eps
        w = self.weights
        if targets is not None and bool(targets.any()):
            t = targets.to(torch.bool).unsqueeze(1)  # (B, 1, d)
            v = values.to(e.dtype).unsqueeze(1)
            if self.intervention == "do":
                e = torch.where(t, v, e)
                w = w * (~targets.to(torch.bool)).unsqueeze(1).to(w.dtype)  # cut incoming edges
            elif self.intervention == "shift":
                e = e + torch.where(t, v, torch.zeros_like(v))
            else:
                raise ValueError(f"unknown intervention {self.intervention!r} for a linear SCM")
        # x = x W + e has a unique solution on a DAG, reached after d - 1 substitutions.
        x = e
        for _ in range(self.d - 1):
            x = torch.bmm(x, w) + e
        return x


@dataclass
class LinearSCMPrior:
    """The prior over linear SCMs that an environment samples its hidden system from."""

    d: int
    graph: str = "erdos_renyi"
    graph_degree: float = 3.0
    noise: str = "gauss"
    coeff_mean: float = 0.0
    bias: bool = False
    intervention: str = "do"

    def __post_init__(self) -> None:
        check_graph_prior(self.graph, self.graph_degree)
        self.coeff_mean = check_float("coeff_mean", self.coeff_mean)
        self.bias = check_bool("bias", self.bias)
        if self.noise not in NOISE_FAMILIES:
            raise ValueError(f"unknown noise {self.noise!r}; expected one of {NOISE_FAMILIES}")
        if self.intervention not in LINEAR_INTERVENTIONS:
            raise ValueError(
                f"unknown intervention {self.intervention!r} for linear SCMs; "
                f"expected one of {LINEAR_INTERVENTIONS}"
            )

    action_kind = "target_value"
    default_reward_model = "avici-linear-v1"

    def sample(self, rng: BatchedRNG) -> LinearSCM:
        d = self.d
        graph = sample_graphs(rng, self.graph, d, self.graph_degree)
        indeg = graph.sum(1, keepdim=True).clamp(min=1.0)  # (B, 1, d): in-degree of column j
        sign = torch.where(rng.uniform(d, d) < 0.5, -1.0, 1.0)
        weights = graph * (sign * self.coeff_mean + rng.normal(d, d) / indeg.sqrt())
        # sigma^2 ~ InverseGamma(10, 1)  <=>  1 / sigma^2 ~ Gamma(10, rate 1)
        noise_std = rng.gamma(10.0, d).rsqrt()
        bias = rng.normal(d) if self.bias else torch.zeros_like(noise_std)
        return LinearSCM(graph, weights, noise_std, bias, self.noise, self.intervention)
