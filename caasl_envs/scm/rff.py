"""Nonlinear additive-noise SCMs with random-Fourier-feature mechanisms, batched over environments.

A reproduction of the ``rff`` family of AVICI (Lorch et al., "Amortized Inference for Causal
Structure Learning", NeurIPS 2022; code: github.com/larslorch/avici, ``avici/synthetic/rff.py``,
``avici/synthetic/noise_scale.py`` and the example config ``avici/config/examples/rff-gauss.yaml``).
Each node ``j`` with parents ``Pa`` gets

``x_j = f_j(x_Pa) + bias_j + s_j · z_j``,
``f_j(x) = sqrt(2) · c_j · sum_k w_jk cos(omega_jk · x_Pa + b_jk) / sqrt(K)``

with ``K = 100`` features, ``omega_jk ~ N(0, I / l_j^2)``, ``b_jk ~ U(0, 2 pi)``,
``w_jk ~ N(0, 1)``, length scale ``l_j ~ U(7, 10)`` and output scale ``c_j ~ U(10, 20)`` drawn
once per node, ``bias_j ~ U(-3, 3)`` and noise scale ``s_j ~ U(0.2, 2)`` (the values of AVICI's
``rff-gauss.yaml``). As ``K -> inf``, ``f_j`` is a draw from a Gaussian process with kernel
``c^2 exp(-|x - y|^2 / (2 l^2))`` (Rahimi & Recht 2007), which is what the GP scorer
(:mod:`caasl_envs.reward.gp`) integrates over. A root node's feature map is ``cos(b_jk)``, so
``f_j`` is a random constant (as in AVICI, which feeds an empty parent vector).

Noise ``z_j``: a standard Gaussian, or a standard Laplace ``Laplace(0, 1)`` (variance 2) as
AVICI's ``Laplace`` distribution. Heteroscedastic variant (AVICI's ``HeteroscedasticRFFNoise``):
the scale is a function of the parents, ``s_j(x)^2 = log(1 + exp(h_j(x_Pa)))`` with ``h_j`` a
second RFF function of length scale 10 and output scale 2 (AVICI's heteroscedastic configs).

Interventions are relative to each variable's observational scale (AVICI draws absolute values
from ``SignedUniform(1, 5)``; here variables of one system differ in scale by two orders of
magnitude, so one absolute range would be a hard clamp for some and a no-op for others). At
sampling time each system records the observational mean ``m_j`` and standard deviation
``sd_j`` of every variable, estimated on 256 reference samples; an action value ``v``
(``values`` in ``[-value_scale, value_scale]``) then means

* ``do``: ``x_j = m_j + intervention_scale · v · sd_j`` (the target ignores its parents and noise);
* ``shift``: ``x_j`` gets ``intervention_scale · v · sd_j`` added (it propagates to descendants).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from caasl_envs.checks import check_float, check_int
from caasl_envs.graphs import check_graph_prior, sample_graphs
from caasl_envs.rng import BatchedRNG

RFF_NOISES = ("gauss", "laplace")
RFF_MECHANISMS = ("additive", "heteroscedastic")
RFF_INTERVENTIONS = ("do", "shift")
#: observational samples per system behind the scale of interventions
REFERENCE_SAMPLES = 256


@dataclass
class RFFFunctions:
    """``d`` random-Fourier-feature functions per environment, one per node of its graph.

    :param omega: ``(B, d, d * K)`` frequencies, ``omega[b, i, j * K + k]`` the weight of parent
        ``i`` in feature ``k`` of node ``j`` (zero where ``i -> j`` is not an edge).
    :param phase: ``(B, d, K)`` phases ``b_jk``.
    :param weight: ``(B, d, K)`` feature weights ``w_jk`` times ``sqrt(2 / K) · c_j``.
    """

    omega: torch.Tensor
    phase: torch.Tensor
    weight: torch.Tensor

    @classmethod
    def sample(
        cls,
        rng: BatchedRNG,
        graph: torch.Tensor,
        n_features: int,
        length_scale: tuple[float, float],
        output_scale: tuple[float, float],
    ) -> RFFFunctions:
        """Draw the functions of ``graph`` ``(B, d, d)``: scales per node, then features."""
        d = graph.shape[-1]
        ell = rng.uniform(d, low=length_scale[0], high=length_scale[1])  # (B, d) per node j
        c = rng.uniform(d, low=output_scale[0], high=output_scale[1])
        omega = rng.normal(d, d, n_features) / ell[:, None, :, None] * graph.unsqueeze(-1)
        phase = rng.uniform(d, n_features, low=0.0, high=2.0 * math.pi)
        weight = rng.normal(d, n_features) * (c * math.sqrt(2.0 / n_features)).unsqueeze(-1)
        return cls(omega.flatten(2), phase, weight)

    def node(self, x: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """``(B, n, d)`` values, ``(B,)`` node per environment -> ``(B, n)`` ``f_j(x_Pa)``."""
        b, _, d = x.shape
        batch = torch.arange(b, device=x.device)
        omega = self.omega.view(b, d, d, -1)[batch, :, j]  # (B, d, K)
        proj = torch.bmm(x, omega) + self.phase[batch, j].unsqueeze(1)  # (B, n, K)
        return (torch.cos(proj) * self.weight[batch, j].unsqueeze(1)).sum(-1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n, d)`` values -> ``(B, n, d)`` function values ``f_j(x_Pa)``."""
        b, n, d = x.shape
        proj = torch.bmm(x, self.omega).view(b, n, d, -1)  # (B, n, d, K)
        return (torch.cos(proj + self.phase.unsqueeze(1)) * self.weight.unsqueeze(1)).sum(-1)


@dataclass
class RFFSCM:
    """A batch of ``B`` RFF SCMs over ``d`` variables (see the module docstring).

    :param graph: ``(B, d, d)`` 0/1 adjacency, ``graph[b, i, j] = 1`` iff i -> j.
    :param mechanism: the functions ``f_j``.
    :param bias: ``(B, d)`` offsets.
    :param noise_scale: ``(B, d)`` noise scales (additive mechanism).
    :param noise_function: the functions ``h_j`` of the heteroscedastic noise scale, or ``None``.
    :param noise: ``"gauss"`` or ``"laplace"``.
    :param intervention: ``"do"`` or ``"shift"``.
    :param intervention_scale: observational standard deviations per unit of intervention value.
    :param obs_mean: ``(B, d)`` observational means (set by :meth:`calibrate`).
    :param obs_std: ``(B, d)`` observational standard deviations (set by :meth:`calibrate`).
    """

    graph: torch.Tensor
    mechanism: RFFFunctions
    bias: torch.Tensor
    noise_scale: torch.Tensor
    noise_function: RFFFunctions | None = None
    noise: str = "gauss"
    intervention: str = "do"
    intervention_scale: float = 2.0
    obs_mean: torch.Tensor | None = None
    obs_std: torch.Tensor | None = None

    @property
    def d(self) -> int:
        return self.graph.shape[-1]

    def repeat(self, times: int) -> RFFSCM:
        """Each system of the batch ``times`` times in a row (``repeat_interleave``), e.g. one
        copy per interventional row of a training dataset."""

        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat_interleave(times, 0)

        def rep_functions(f: RFFFunctions | None) -> RFFFunctions | None:
            return None if f is None else RFFFunctions(rep(f.omega), rep(f.phase), rep(f.weight))

        return dataclasses.replace(
            self,
            graph=rep(self.graph),
            mechanism=rep_functions(self.mechanism),
            bias=rep(self.bias),
            noise_scale=rep(self.noise_scale),
            noise_function=rep_functions(self.noise_function),
            obs_mean=rep(self.obs_mean),
            obs_std=rep(self.obs_std),
        )

    def calibrate(self, rng: BatchedRNG, n: int = REFERENCE_SAMPLES) -> None:
        """Record each variable's observational mean and standard deviation (``n`` samples)."""
        x = self.sample(rng, n)
        self.obs_mean = x.mean(1)
        self.obs_std = x.std(1).clamp(min=1e-6)

    def standard_noise(self, rng: BatchedRNG, n: int) -> torch.Tensor:
        """``(B, n, d)`` draws of ``z`` (standard Gaussian or standard Laplace)."""
        if self.noise == "gauss":
            return rng.normal(n, self.d)
        return rng.laplace(n, self.d)

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
        return self.sample_from_noise(self.standard_noise(rng, n), targets, values)

    def sample_from_noise(
        self,
        z: torch.Tensor,
        targets: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Deterministic map from standard noise ``(B, n, d)`` to samples ``(B, n, d)``."""
        b, n, d = z.shape
        offset = torch.zeros(b, d, dtype=z.dtype, device=z.device)  # added to x (shift)
        clamped = torch.zeros(b, d, dtype=torch.bool, device=z.device)
        level = offset
        if targets is not None and bool(targets.any()):
            if self.obs_mean is None:
                raise RuntimeError("call calibrate() before sampling under interventions")
            clamped = targets.to(torch.bool)
            step = torch.where(clamped, self.intervention_scale * values.to(z.dtype), 0.0)
            step = step * self.obs_std
            if self.intervention == "do":
                level = self.obs_mean + step
            else:
                offset, clamped = step, torch.zeros_like(clamped)
        # One node per environment at a time, in a topological order of its graph: every
        # node is computed once, from parents that are final.
        x = torch.zeros_like(z)
        batch = torch.arange(b, device=z.device)
        for j in self.topological_order().T:  # (B,) the p-th node of every environment
            scale = self.noise_scale[batch, j].unsqueeze(1)
            if self.noise_function is not None:
                scale = torch.nn.functional.softplus(self.noise_function.node(x, j)).sqrt()
            value = self.mechanism.node(x, j) + self.bias[batch, j].unsqueeze(1)
            value = value + scale * z[batch, :, j] + offset[batch, j].unsqueeze(1)
            x[batch, :, j] = torch.where(
                clamped[batch, j].unsqueeze(1), level[batch, j].unsqueeze(1), value
            )
        return x

    def topological_order(self) -> torch.Tensor:
        """``(B, d)`` long: each environment's nodes sorted by depth (longest path from a root),
        ties by index, so parents come before children."""
        graph = self.graph
        depth = torch.zeros(graph.shape[:2], dtype=graph.dtype, device=graph.device)
        for _ in range(self.d - 1):
            depth = ((depth.unsqueeze(-1) + 1.0) * graph).amax(1)  # max over parents i
        return torch.sort(depth, dim=1, stable=True).indices


def _check_range(name: str, value: object, positive: bool) -> tuple[float, float]:
    """``value`` as ``(low, high)`` with ``low <= high`` (both ``> 0`` when ``positive``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}")
    low, high = (
        check_float(name, v, 0.0 if positive else -math.inf, open_low=positive) for v in value
    )
    if low > high:
        raise ValueError(f"{name} must have low <= high, got {value!r}")
    return low, high


@dataclass
class RFFSCMPrior:
    """The prior over RFF SCMs that an environment samples its hidden system from.

    Ranges are ``(low, high)`` of a uniform distribution (a number fixes the value); defaults
    are AVICI's ``rff`` values (module docstring).
    """

    d: int
    graph: str = "erdos_renyi"
    graph_degree: float = 3.0
    noise: str = "gauss"
    mechanism: str = "additive"
    intervention: str = "do"
    length_scale: tuple[float, float] = (7.0, 10.0)
    output_scale: tuple[float, float] = (10.0, 20.0)
    bias_range: tuple[float, float] = (-3.0, 3.0)
    noise_scale: tuple[float, float] = (0.2, 2.0)
    noise_length_scale: float = 10.0
    noise_output_scale: float = 2.0
    n_features: int = 100
    intervention_scale: float = 2.0

    action_kind = "target_value"
    default_reward_model = "avici-rff-v0"

    def __post_init__(self) -> None:
        check_graph_prior(self.graph, self.graph_degree)
        for name, allowed in (
            ("noise", RFF_NOISES),
            ("mechanism", RFF_MECHANISMS),
            ("intervention", RFF_INTERVENTIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r} for RFF SCMs; expected one of {allowed}"
                )
        for name in ("length_scale", "output_scale", "noise_scale"):
            setattr(self, name, _check_range(name, getattr(self, name), positive=True))
        self.bias_range = _check_range("bias_range", self.bias_range, positive=False)
        for name in ("noise_length_scale", "noise_output_scale", "intervention_scale"):
            setattr(self, name, check_float(name, getattr(self, name), 0.0, open_low=True))
        self.n_features = check_int("n_features", self.n_features, 1)

    def sample(self, rng: BatchedRNG) -> RFFSCM:
        d = self.d
        graph = sample_graphs(rng, self.graph, d, self.graph_degree)
        mechanism = RFFFunctions.sample(
            rng, graph, self.n_features, self.length_scale, self.output_scale
        )
        bias = rng.uniform(d, low=self.bias_range[0], high=self.bias_range[1])
        noise_scale = rng.uniform(d, low=self.noise_scale[0], high=self.noise_scale[1])
        noise_function = None
        if self.mechanism == "heteroscedastic":
            fixed_ell = (self.noise_length_scale,) * 2
            fixed_c = (self.noise_output_scale,) * 2
            noise_function = RFFFunctions.sample(rng, graph, self.n_features, fixed_ell, fixed_c)
        scm = RFFSCM(
            graph,
            mechanism,
            bias,
            noise_scale,
            noise_function,
            self.noise,
            self.intervention,
            self.intervention_scale,
        )
        scm.calibrate(rng)
        return scm
