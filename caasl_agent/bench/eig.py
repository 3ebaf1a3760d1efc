"""Expected-information-gain designers under the exact linear-Gaussian posterior.

``eig`` picks, at every step, the single-node intervention ``do(X_j = v)`` (``j`` any variable,
``v`` on a small grid of action values, default ``{-1, 0, 1}``, times the environment's
``value_scale``) with the largest expected information gain about the graph,

``EIG(xi) = I(G; y | D, xi) = E_{G ~ p(G | D)} E_{y ~ p(y | G, D, xi)}
[log p(y | G, D, xi) - log p(y | D, xi)]``,

for the next row ``y`` under the posterior ``p(G | D)`` of
:class:`~caasl_envs.reward.ExactLinearGaussianPosterior` (BGe local scores, order-modular
prior, in-degree bound ``k``). ``eig-batch`` builds a multi-target experiment greedily: from
the observational design, add the target (and value) that most increases the joint EIG; stop
when no addition increases it.

**Estimator** (nested Monte Carlo with closed-form likelihoods, the "prior contrastive"
form of BALD):

1. ``S`` pairs (order, graph) drawn *exactly* from the posterior by running the order DP's
   forward tables backwards (:func:`sample_graphs`, default ``S = 32``);
2. for each graph sample ``G_s`` and design ``xi``, one outcome row ``y_s`` drawn ancestrally
   from BGe's posterior predictive: given its parents, a non-target variable is Student-t,
   ``y_i ~ m_i + beta^T (y_Pa - m_Pa) + sqrt(s (1 + c q) / (c nu)) t_nu`` with
   ``nu = N_i + alpha_w - d + |Pa| + 1``, ``c = (N_i + alpha_mu) / (N_i + alpha_mu + 1)``,
   ``m`` the posterior mean, ``beta`` and ``s`` the regression and Schur complement of the
   posterior scatter ``R`` of ``i``'s rows, ``q = (y_Pa - m_Pa)^T R_PaPa^-1 (y_Pa - m_Pa)``
   (:class:`Predictive`; it is the BGe score's increment for one added row, tested against
   :func:`~caasl_envs.reward.bge.bge_local_scores`);
3. ``EIG ~ 1/S sum_s [l(y_s | G_s) - log 1/S sum_s' exp l(y_s | G_s')]`` with
   ``l(y | G) = sum_{i not a target} log p(y_i | y_Pa_i(G), D)`` (the targets' rows leave their
   own local scores, as in the posterior).

The same graph samples and the same Student-t draws serve every candidate design (common
random numbers), so differences between candidates are far less noisy than the estimates.
**Bias**: the estimate is a lower bound in expectation (the outer sample is part of the inner
mixture), tight as ``S`` grows and never above ``log S`` (3.47 nats at ``S = 32``; one row
carries far less). **Approximations**: the new row is standardised with the current data's
means and deviations (the posterior restandardises after it arrives); one row per experiment
(``samples_per_step = 1``, the environments' default). **Cost** per step and environment:
``O(d 2^d)`` for the DP, ``O(S d P)`` to sample graphs (``P`` parent sets per variable) and
``O(S^2 C d k^2)`` to score ``C = d x len(values)`` candidates (``eig-batch``: up to ``d``
greedy rounds of that); all of it batched over environments (blocks of environments bound
the memory). Latency: BENCHMARKS.md.

**Other intervention kinds.** ``intervention="shift"``: the target keeps its mechanism and
``v`` is added to its value; the history does not record ``v``, so (like the posterior) the
designer learns nothing about the target's own mechanism from the row: the target is drawn
from its predictive plus the shift and only the other variables' factors count. SERGIO
(targets-only actions, count data) has no likelihood here: the designers refuse with
:class:`~caasl_agent.bench.agents.IncompatibleAgentError` (the harness records the setting as
skipped), as they do for ``d`` beyond the order-MCMC range. Above ``d = 14`` the graph samples
of step 1 come from order MCMC on the same posterior
(:func:`~caasl_envs.reward.mcmc.mcmc_graph_samples`: approximate, docs/mcmc.md) instead of the DP.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from caasl_agent.bench.agents import Baseline, IncompatibleAgentError
from caasl_envs.reward import ExactLinearGaussianPosterior, RewardModel, load_reward_model
from caasl_envs.reward.bge import ParentSets, bge_posterior_scatter, pad_identity
from caasl_envs.reward.exact import MAX_EXACT_D, order_dp_forward
from caasl_envs.reward.mcmc import MAX_MCMC_D, mcmc_graph_samples

__all__ = [
    "EIGAgent",
    "Draws",
    "EIGBatchAgent",
    "Predictive",
    "designer_posterior",
    "eig_terms",
    "predictive_tables",
    "sample_graphs",
]

INTERVENTIONS = ("do", "shift")
#: Elements of the largest scoring tensor per block of environments.
BLOCK_ELEMENTS = 1 << 23
#: The (outcome, graph, variable) log densities are float32 (their sums and the log-mean-exp
#: are float64); twice as fast, and a relative error of ~1e-7 on terms of order 10.
SCORE_DTYPE = torch.float32


@dataclass(frozen=True)
class Predictive:
    """BGe's posterior predictive of each variable given each candidate parent set (the
    tables, fields ``(B, d, P, ...)``), or of chosen pairs (:meth:`gather`, ``(B, S, ...)``).

    For environment ``b``, variable ``i`` and parent set ``p`` (members ``members[i, p]``,
    padded with the index ``d`` of an always-zero column), one new value ``y_i`` given the
    parents' values ``y_Pa`` is Student-t with ``dof`` degrees of freedom, location
    ``intercept + beta . y_Pa`` and squared scale ``schur (1 + shrink q) / (shrink dof)``,
    ``q = |whiten (y_Pa - mean_pa)|^2`` (``whiten^T whiten`` is the inverse of the parents'
    block of the posterior scatter).

    :param intercept: ``(B, d, P)``, ``m_i - beta . m_Pa``.
    :param beta: ``(B, d, P, k)`` regression coefficients (0 on padding).
    :param mean_pa: ``(B, d, P, k)`` posterior means of the parents (0 on padding).
    :param whiten: ``(B, d, P, k, k)`` upper-triangular (0 across padding).
    :param schur: ``(B, d, P)`` Schur complement of ``i`` given the parents.
    :param dof: ``(B, d, P)`` degrees of freedom.
    :param shrink: ``(B, d)``, ``(N_i + alpha_mu) / (N_i + alpha_mu + 1)``.
    :param members: ``(d, P, k)`` long, members of each parent set (padding: ``d``).
    """

    intercept: torch.Tensor
    beta: torch.Tensor
    mean_pa: torch.Tensor
    whiten: torch.Tensor
    schur: torch.Tensor
    dof: torch.Tensor
    shrink: torch.Tensor
    members: torch.Tensor

    def gather(self, variable: torch.Tensor, parent_set: torch.Tensor) -> Predictive:
        """The predictive of variable ``variable (B, S)`` with parent set ``parent_set (B, S)``,
        every field shaped ``(B, S, ...)`` (``shrink (B, S)``, ``members (B, S, k)``)."""
        b = torch.arange(variable.shape[0], device=variable.device).unsqueeze(1)
        return Predictive(
            self.intercept[b, variable, parent_set],
            self.beta[b, variable, parent_set],
            self.mean_pa[b, variable, parent_set],
            self.whiten[b, variable, parent_set],
            self.schur[b, variable, parent_set],
            self.dof[b, variable, parent_set],
            self.shrink[b, variable],
            self.members[variable, parent_set],
        )

    def scale2(self, q: torch.Tensor) -> torch.Tensor:
        """Squared scale of the Student-t given the parents' quadratic form ``q``."""
        return self.schur * (1.0 + self.shrink * q) / (self.shrink * self.dof)

    def log_normalizer(self) -> torch.Tensor:
        """``log Gamma((dof + 1) / 2) - log Gamma(dof / 2) - 1/2 log(pi schur / shrink)``: with
        ``w = 1 + shrink q`` and ``t = w + shrink e^2 / schur`` (``e`` the residual), the log
        density is ``log_normalizer + (dof / 2) log w - ((dof + 1) / 2) log t``."""
        return (
            torch.lgamma((self.dof + 1.0) / 2.0)
            - torch.lgamma(self.dof / 2.0)
            - 0.5 * torch.log(math.pi * self.schur / self.shrink)
        )

    def map(self, fn, members: bool = True) -> Predictive:
        """This predictive with ``fn`` applied to every field (``members`` too unless told)."""
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        return Predictive(
            **{f: fn(v) if members or f != "members" else v for f, v in fields.items()}
        )


def predictive_tables(
    values: torch.Tensor,
    rows: torch.Tensor,
    sets: ParentSets,
    alpha_mu: float = 1.0,
    alpha_w: float | None = None,
) -> Predictive:
    """The :class:`Predictive` of every variable and parent set from ``values (B, n, d)`` and
    ``rows (B, n, d)`` (the inputs of :func:`~caasl_envs.reward.bge.bge_local_scores`)."""
    b, _, d = values.shape
    k = sets.k
    if alpha_w is None:
        alpha_w = d + alpha_mu + 1.0
    dev, dt = values.device, values.dtype
    count, mean, r, _ = bge_posterior_scatter(values, rows, alpha_mu, alpha_w)
    posterior_mean = mean * (count / (count + alpha_mu)).unsqueeze(-1)  # (B, d, d): nu = 0
    r_aug = pad_identity(r, k)
    m_aug = torch.cat([posterior_mean, posterior_mean.new_zeros(b, d, k)], dim=2)
    index = sets.index.to(dev)  # (d, P, k)
    var = torch.arange(d, device=dev)
    col = var.view(d, 1, 1)
    block = r_aug[:, col.unsqueeze(-1), index.unsqueeze(-1), index.unsqueeze(-2)]  # (B,d,P,k,k)
    cross = r_aug[:, col, index, col]  # (B, d, P, k)
    inverse = torch.linalg.inv(block) if k > 0 else block
    beta = (inverse * cross.unsqueeze(-2)).sum(-1)
    schur = r[:, var, var, var].unsqueeze(-1) - (beta * cross).sum(-1)  # R_ii over i's rows
    mean_pa = m_aug[:, col, index]  # (B, d, P, k)
    own_mean = torch.diagonal(posterior_mean, dim1=-2, dim2=-1).unsqueeze(-1)
    size = sets.size.to(dev, dt)
    return Predictive(
        intercept=own_mean - (beta * mean_pa).sum(-1),
        beta=beta,
        mean_pa=mean_pa,
        whiten=torch.linalg.cholesky(inverse).transpose(-1, -2) if k > 0 else inverse,
        schur=schur,
        dof=count.unsqueeze(-1) + alpha_w - d + size + 1.0,
        shrink=(count + alpha_mu) / (count + alpha_mu + 1.0),
        members=index.clamp(max=d),
    )


def _gumbel(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, dtype=like.dtype).to(like.device)
    return -torch.log(-torch.log(u.clamp(min=1e-300)))


def sample_graphs(
    log_beta: torch.Tensor, sets: ParentSets, samples: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact posterior samples of (order, graph) pairs from the order DP's forward tables.

    The last variable of the remaining set ``U`` is ``j`` with probability proportional to
    ``alpha_j(U - j) forward(U - j)``; its parent set is drawn among the subsets of ``U - j``
    with probability proportional to ``beta_j(Pa)`` (Gumbel-max, batched over environments
    and samples; ``d`` sequential positions).

    :param log_beta: ``(B, d, P)`` weighted local scores (the order DP's input).
    :return: ``order (B, S, d)`` long, ``order[..., t]`` the variable at position ``t``, and
        ``parents (B, S, d)`` long, the index (into ``sets``) of each variable's parent set.
    """
    b, d, p = log_beta.shape
    dev = log_beta.device
    alpha, forward = order_dp_forward(log_beta, sets)
    flat_alpha = alpha.reshape(b, -1)
    var = torch.arange(d, device=dev)
    onehot, low = 1 << var, (1 << var) - 1
    bits = sets.bits.to(dev)
    remaining = torch.full((b, samples), (1 << d) - 1, dtype=torch.long, device=dev)
    order = torch.empty(b, samples, d, dtype=torch.long, device=dev)
    parents = torch.empty(b, samples, d, dtype=torch.long, device=dev)
    for position in reversed(range(d)):
        rest = remaining.unsqueeze(-1) ^ onehot  # (B, S, d): U - j (for j in U)
        compressed = (rest & low) | ((rest >> (var + 1)) << var)
        logit = forward.gather(1, rest.view(b, -1)).view(b, samples, d) + flat_alpha.gather(
            1, (compressed + (var << (d - 1))).view(b, -1)
        ).view(b, samples, d)
        inside = (remaining.unsqueeze(-1) & onehot) != 0
        logit = torch.where(inside, logit, -math.inf) + _gumbel(logit.shape, generator, logit)
        last = logit.argmax(-1)  # (B, S)
        remaining = remaining ^ (1 << last)
        pa_logit = log_beta.gather(1, last.unsqueeze(-1).expand(-1, -1, p))  # (B, S, P)
        allowed = (bits[last] & ~remaining.unsqueeze(-1)) == 0
        pa_logit = torch.where(allowed, pa_logit, -math.inf)
        pa_logit = pa_logit + _gumbel(pa_logit.shape, generator, pa_logit)
        order[..., position] = last
        parents.scatter_(2, last.unsqueeze(-1), pa_logit.argmax(-1, keepdim=True))
    return order, parents


@dataclass(frozen=True)
class Draws:
    """The Monte Carlo draws of one step, shared by every candidate design.

    :param order: ``(B, S, d)`` and ``parents (B, S, d)``: from :func:`sample_graphs`.
    :param noise: ``(B, S, d)`` standard Student-t draws with the degrees of freedom of each
        variable's sampled parent set.
    """

    order: torch.Tensor
    parents: torch.Tensor
    noise: torch.Tensor

    def __getitem__(self, part: slice | torch.Tensor) -> Draws:
        """The draws of the environments ``part`` (a slice or an index tensor)."""
        return Draws(self.order[part], self.parents[part], self.noise[part])


def simulate(
    tables: Predictive,
    draws: Draws,
    targets: torch.Tensor,
    values: torch.Tensor,
    intervention: str = "do",
) -> torch.Tensor:
    """One outcome row per graph sample and candidate design, drawn ancestrally.

    :param targets: ``(B, C, d)`` bool and ``values (B, C, d)`` (standardised scale): ``do``
        sets a target to its value, ``shift`` adds the value to its predictive draw.
    :return: ``y (B, S, C, d + 1)``, the last column an always-zero pad for parent padding.
    """
    order, parents, noise = draws.order, draws.parents, draws.noise
    b, s, d = order.shape
    c = targets.shape[1]
    y = noise.new_zeros(b, s, c, d + 1)
    for position in range(d):
        node = order[..., position]  # (B, S)
        family = tables.gather(node, parents.gather(2, node.unsqueeze(-1)).squeeze(-1))
        y_pa = y.gather(3, family.members.unsqueeze(2).expand(-1, -1, c, -1))  # (B, S, C, k)
        family = family.map(lambda t: t.unsqueeze(2))  # broadcast over candidates
        u = ((y_pa - family.mean_pa).unsqueeze(-2) * family.whiten).sum(-1)
        loc = family.intercept + (family.beta * y_pa).sum(-1)
        draw = loc + family.scale2((u**2).sum(-1)).sqrt() * noise.gather(2, node.unsqueeze(-1))
        where = node.view(b, s, 1, 1).expand(-1, -1, c, 1)
        hit = targets.unsqueeze(1).expand(-1, s, -1, -1).gather(3, where).squeeze(-1)
        value = values.unsqueeze(1).expand(-1, s, -1, -1).gather(3, where).squeeze(-1)
        if intervention == "do":
            draw = torch.where(hit, value, draw)
        else:
            draw = draw + torch.where(hit, value, torch.zeros_like(value))
        y.scatter_(3, where, draw.unsqueeze(-1))
    return y


def design_matrix(family: Predictive, d: int) -> torch.Tensor:
    """``(B, k + 1, d, S, d + 1)`` linear maps of an augmented row ``(y_0 .. y_{d-1}, 1)`` to
    each variable's scaled residual ``sqrt(shrink / schur) e`` (row 0) and scaled whitened
    parents ``sqrt(shrink) whiten (y_Pa - mean_pa)`` (rows 1..k) under graph sample ``s``;
    ``family`` fields shaped ``(B, S, d, ...)``."""
    b, s, _, k = family.beta.shape
    out = family.beta.new_zeros(b, s, d, k + 1, d + 1)
    real = (family.members < d).to(out.dtype)  # padding slots point at the ones column
    out[..., 0, :].scatter_add_(-1, family.members, -family.beta * real)
    out[..., 0, :].scatter_(
        -1, torch.arange(d, device=out.device).view(1, 1, d, 1).expand(b, s, -1, 1), 1.0
    )
    out[..., 0, d] = -family.intercept
    members = family.members.unsqueeze(-2).expand(-1, -1, -1, k, -1)
    out[..., 1:, :].scatter_add_(-1, members, family.whiten * real.unsqueeze(-2))
    out[..., 1:, d] = -(family.whiten * family.mean_pa.unsqueeze(-2)).sum(-1)
    out[..., 0, :] *= (family.shrink / family.schur).sqrt().unsqueeze(-1)
    out[..., 1:, :] *= family.shrink.sqrt()[..., None, None]
    return out.permute(0, 3, 2, 1, 4)


def log_likelihoods(
    tables: Predictive, parents: torch.Tensor, y: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """``l (B, S, C, G)``: ``l[b, s, c, g] = log p(y[b, s, c] | G_g, D)`` summed over the
    variables that are not targets of candidate ``c``, for outcomes ``y (B, S, C, d + 1)``
    (last column ignored), graph samples ``parents (B, G, d)`` and ``targets (B, C, d)``.

    Every residual and whitened parent vector of every (outcome, graph, variable) is one
    batched matrix product of the augmented outcomes with :func:`design_matrix`; then two logs
    per (outcome, graph, variable) (:meth:`Predictive.log_normalizer`)."""
    b, g, d = parents.shape
    s, c = y.shape[1], y.shape[2]
    variable = torch.arange(d, device=y.device).expand(b, g, d).reshape(b, -1)
    family = tables.gather(variable, parents.reshape(b, -1)).map(
        lambda t: t.view(b, g, d, *t.shape[2:])
    )
    rows = torch.cat([y[..., :d], y.new_ones(b, s, c, 1)], dim=-1).view(b, s * c, d + 1)
    maps = design_matrix(family, d).reshape(b, -1, d + 1).transpose(1, 2)
    z2 = torch.bmm(rows.to(SCORE_DTYPE), maps.to(SCORE_DTYPE)).view(b, s, c, -1, d, g).square_()
    log_w = z2[:, :, :, 0].clone().fill_(1.0)  # (B, S, C, d, G)
    for row in range(1, z2.shape[3]):  # k + 1 rows: adding slices beats a short-axis sum
        log_w += z2[:, :, :, row]
    log_t = torch.add(log_w, z2[:, :, :, 0]).log_()
    log_w.log_()
    half_dof = (family.dof / 2.0).transpose(1, 2).reshape(b, 1, 1, d, g).to(SCORE_DTYPE)
    keep = (~targets).to(y.dtype)  # (B, C, d)
    logp = log_w.mul_(half_dof).sub_(log_t.mul_(half_dof + 0.5))
    constant = torch.einsum("bcd,bgd->bcg", keep, family.log_normalizer())
    return torch.einsum("bscdg,bcd->bscg", logp, keep.to(SCORE_DTYPE)) + constant.unsqueeze(1)


def eig_terms(
    tables: Predictive,
    draws: Draws,
    targets: torch.Tensor,
    values: torch.Tensor,
    intervention: str = "do",
) -> torch.Tensor:
    """Per-sample EIG terms ``(B, S, C)`` (their mean over ``S`` is the estimate, module
    docstring); arguments as in :func:`simulate`."""
    s = draws.order.shape[1]
    y = simulate(tables, draws, targets, values, intervention)
    ll = log_likelihoods(tables, draws.parents, y, targets)  # (B, S, C, S)
    own = ll.diagonal(dim1=1, dim2=3).transpose(1, 2)  # (B, S, C)
    return own - (ll.logsumexp(3) - math.log(s))


def designer_posterior(reward_model: RewardModel | str | None) -> ExactLinearGaussianPosterior:
    """The BGe exact posterior the designers plan with: the environment's reward model when it
    is one (unwrapped from the harness's cache), a BGe twin of an exact ``linear-scm`` model
    (same prior, in-degree bound), else the default :class:`ExactLinearGaussianPosterior`."""
    model = getattr(reward_model, "model", reward_model)
    if isinstance(model, str):
        model = load_reward_model(model)
    if not isinstance(model, ExactLinearGaussianPosterior):
        return ExactLinearGaussianPosterior()
    if model.local_score == "bge" and model.intervened_rows == "exclude":
        return model
    twin = copy.copy(model)
    twin.local_score, twin.standardize, twin.intervened_rows = "bge", True, "exclude"
    return twin


class EIGAgent(Baseline):
    """Greedy Bayesian experimental design: the single target and value with the largest EIG
    about the graph under the exact posterior (module docstring). Ties (to ``1e-12``) are
    broken at random with the agent's seeded generator, which also seeds the Monte Carlo.

    :param reward_model: the environment's reward model (see :func:`designer_posterior`).
    :param samples: posterior graph samples ``S`` per environment and step.
    :param values: candidate action values in ``[-1, 1]`` (times ``value_scale``).
    :param value_scale: the environment's ``value_scale`` (the designer cannot see it).
    :param intervention: the environment's intervention kind, ``"do"`` or ``"shift"``.
    """

    def __init__(
        self,
        reward_model: RewardModel | str | None = None,
        target_only: bool = False,
        seed: int | None = 0,
        samples: int = 32,
        values: Sequence[float] = (-1.0, 0.0, 1.0),
        value_scale: float = 1.0,
        intervention: str = "do",
    ):
        super().__init__(target_only, seed)
        if target_only:
            raise IncompatibleAgentError(
                "the EIG designers need a linear-Gaussian likelihood; a targets-only action "
                "(SERGIO knockouts, count data) has none here"
            )
        if intervention not in INTERVENTIONS:
            raise ValueError(f"intervention must be one of {INTERVENTIONS}, got {intervention!r}")
        if not isinstance(samples, int) or samples < 2:
            raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
        grid = np.asarray(values, dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0 or np.abs(grid).max() > 1:
            raise ValueError(f"values must be a non-empty list in [-1, 1], got {values!r}")
        if not value_scale > 0:
            raise ValueError(f"value_scale must be > 0, got {value_scale}")
        self.posterior = designer_posterior(reward_model)
        self.samples, self.grid = samples, grid
        self.value_scale, self.intervention = float(value_scale), intervention

    def choose(self, history, mask, state, episode_start, deterministic):
        plan = self.plan(history, mask)
        b, d = history.shape[0], history.shape[2]
        targets = np.eye(d, dtype=bool)[None].repeat(len(self.grid), 0).reshape(-1, d)
        actions = np.repeat(self.grid, d)  # candidate c: target c % d, value grid[c // d]
        cand_t = torch.as_tensor(targets).expand(b, -1, -1)
        cand_v = torch.as_tensor(actions).view(1, -1, 1).expand(b, -1, d)
        eig = plan.eig(cand_t, cand_v).numpy()
        best = self.tie_break(eig)
        return targets[best], np.repeat(actions[best][:, None], d, 1), None

    def tie_break(self, score: np.ndarray) -> np.ndarray:
        """``(B,)`` index of a maximum of ``score (B, C)`` (random among ties)."""
        best = score >= score.max(1, keepdims=True) - 1e-12
        return np.where(best, self.rng.random(score.shape), -1.0).argmax(1)

    def plan(self, history: np.ndarray, mask: np.ndarray) -> _Plan:
        """Posterior tables and Monte Carlo draws for one step of every environment."""
        d = history.shape[2]
        if d > MAX_MCMC_D:
            raise IncompatibleAgentError(
                f"the EIG designers plan with the exact posterior's graph samples (order DP for "
                f"d <= {MAX_EXACT_D}, order MCMC for d <= {MAX_MCMC_D}); got d={d}"
            )
        n = int(mask.sum(1).max())
        x = torch.as_tensor(history[:, :n])
        valid = torch.as_tensor(mask[:, :n] > 0)
        generator = torch.Generator().manual_seed(int(self.rng.integers(2**62)))
        with torch.inference_mode():
            log_beta, sets = self.posterior.local_weights(x, valid)
            values, rows = self.posterior.score_inputs(x, valid)
            mean, std = self.posterior.standardization(x, valid)
            tables = predictive_tables(
                values, rows, sets, self.posterior.alpha_mu, self.posterior.alpha_w
            )
            if d > MAX_EXACT_D:  # beyond the order DP: order-MCMC samples of the same posterior
                draw = mcmc_graph_samples(self.posterior, log_beta, sets, self.samples, generator)
            else:
                draw = sample_graphs(log_beta, sets, self.samples, generator)
            order, parents = draw
        b = torch.arange(x.shape[0]).view(-1, 1, 1)
        dof = tables.dof[b, torch.arange(d), parents]  # (B, S, d)
        noise = torch.as_tensor(self.rng.standard_t(dof.numpy()))
        return _Plan(self, tables, Draws(order, parents, noise), mean[:, 0], std[:, 0])


@dataclass(frozen=True)
class _Plan:
    """One step's posterior tables and draws (common to every candidate design)."""

    agent: EIGAgent
    tables: Predictive
    draws: Draws
    mean: torch.Tensor  # (B, d) standardisation of the raw values
    std: torch.Tensor

    def subset(self, envs: torch.Tensor) -> _Plan:
        """The plan of the environments ``envs`` (an index tensor) only."""
        return _Plan(
            self.agent,
            self.tables.map(lambda t: t[envs], members=False),
            self.draws[envs],
            self.mean[envs],
            self.std[envs],
        )

    def eig(self, targets: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """EIG estimates ``(B, C)`` of designs ``targets (B, C, d)`` bool with action values
        ``actions (B, C, d)`` in ``[-1, 1]``, in blocks of environments."""
        b, s, d = self.draws.order.shape
        c = targets.shape[1]
        raw = actions.double() * self.agent.value_scale
        if self.agent.intervention == "do":
            values = (raw - self.mean.unsqueeze(1)) / self.std.unsqueeze(1)
        else:
            values = raw / self.std.unsqueeze(1)
        block = max(1, BLOCK_ELEMENTS // (s * s * c * d * (self.tables.beta.shape[-1] + 1)))
        out = []
        with torch.inference_mode():
            for lo in range(0, b, block):
                part = slice(lo, lo + block)
                terms = eig_terms(
                    self.tables.map(lambda t, part=part: t[part], members=False),
                    self.draws[part],
                    targets[part],
                    values[part],
                    self.agent.intervention,
                )
                out.append(terms.mean(1))
        return torch.cat(out)


class EIGBatchAgent(EIGAgent):
    """Greedy conditional batch design: starting from the observational design, repeatedly
    add the target (and value) that most increases the joint EIG of the experiment, and stop
    when no addition increases it (same estimator and draws as :class:`EIGAgent`; the chosen
    experiment may have no target at all). Each round scores only the environments still
    adding targets (the others' rows stay ``-inf``, so the tie-breaking draws are the same)."""

    def choose(self, history, mask, state, episode_start, deterministic):
        plan = self.plan(history, mask)
        b, d = history.shape[0], history.shape[2]
        v = len(self.grid)
        chosen = np.zeros((b, d), dtype=bool)
        actions = np.zeros((b, d))
        current = plan.eig(torch.zeros(b, 1, d, dtype=torch.bool), torch.zeros(b, 1, d))[:, 0]
        current = current.numpy()
        active = np.ones(b, dtype=bool)
        add = np.eye(d, dtype=bool)[None].repeat(v, 0).reshape(-1, d)  # candidate c: c % d
        add_value = np.repeat(self.grid, d)  # and grid[c // d]
        for _ in range(d):
            targets = chosen[:, None, :] | add[None]
            values = np.where(add[None], add_value[None, :, None], actions[:, None, :])
            envs = np.flatnonzero(active)
            part = plan if active.all() else plan.subset(torch.as_tensor(envs))
            eig = np.full(targets.shape[:2], -np.inf)
            eig[envs] = part.eig(torch.as_tensor(targets[envs]), torch.as_tensor(values[envs]))
            eig = np.where((chosen[:, None, :] & add[None]).any(-1), -np.inf, eig)
            best = self.tie_break(eig)
            gain = eig[np.arange(b), best]
            better = active & (gain > current)
            chosen[better] = targets[better, best[better]]
            actions[better] = values[better, best[better]]
            current = np.where(better, gain, current)
            active = better
            if not active.any():
                break
        return chosen, actions, None
