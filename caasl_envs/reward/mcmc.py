"""Edge posteriors beyond the order DP's reach: order MCMC on the exact posterior's local scores.

:class:`OrderMCMCPosterior` targets the *same* distribution as
:class:`~caasl_envs.reward.exact.ExactLinearGaussianPosterior` (same order-modular prior, in-degree
bound ``k``, local scores and handling of intervened rows: it reuses that class's
:meth:`~caasl_envs.reward.exact.ExactLinearGaussianPosterior.local_weights`), but replaces the
exact sum over the ``d!`` orders (the DP's ``O(d² 2^d)``) by a Markov chain over orders
(Friedman & Koller 2003). Only the sum over orders is sampled: given an order ``pi`` the weight
is ``prod_j sum_{Pa ⊆ pred_pi(j), |Pa| <= k} beta_j(Pa)`` and the edge marginals
``p(i -> j | pi, D)`` are exact sums over the compatible parent sets (in log space); the
estimate is their average over the chains' samples (Rao-Blackwellised: far less noisy than
counting edges of sampled graphs). Cost per chain step: ``O(d P)`` with
``P = sum_{l<=k} C(d-1, l)`` parent sets per variable, batched over environments and chains.

**Moves.** One iteration is (1) a *Gibbs relocation*: one random variable per chain is taken
out and put back at one of the ``d`` positions drawn exactly from their posterior weights (three
evaluations of the order give all ``d``: every other variable has one score with and one
without it among its predecessors); (2) a *segment reversal*: a random run of 3 to 6
consecutive positions is reversed, by Metropolis-Hastings (a chain of edges turned around in
one step); (3) two *pair sweeps*: the order is cut into disjoint adjacent pairs (positions
``(0, 1), (2, 3), ...``, then ``(1, 2), (3, 4), ...``) and every pair is swapped or not by its
own Metropolis-Hastings step at once. Swapping a pair changes only its two variables' scores,
and those depend on the *set* of earlier variables, which swaps inside other pairs leave
unchanged, so the pairs are conditionally independent and the ``d / 2`` updates together are
a valid kernel costing one evaluation. Each sample is Rao-Blackwellised over its iteration's
last pair sweep: both configurations of every pair enter, weighted by their exact conditional
probabilities. No tempering.

**Chains, seeds and warm starts.** ``chains`` chains per environment start from random
orders (over-dispersed, so that they can disagree) and run ``burn_in`` iterations before
``samples`` samples are taken, one every ``thin`` iterations (every iteration by default).
Each call draws its random numbers from a generator seeded with ``seed`` and a checksum of
the input, so a call's result depends only on ``seed``, the input and the
warm-start cache, and reruns of the same calls are bit-identical. **Warm start**: the model
keeps the chains' last orders of its last few calls (``cache_size`` entries, each the batch's
histories and the final orders). A call whose histories extend a cached batch's histories
(same batch size and ``d``, the cached rows a prefix of the new rows, masks included), as
along the steps of an episode, starts every such environment's chains from their cached
orders and, when every environment of the batch is warm, runs ``warm_burn_in`` instead of
``burn_in`` iterations; an identical input returns the cached result. The posterior after one
more row is close to the one before, so the chains need little burn-in: an episode costs the
first call's burn-in once and then the sampling phase per step (timings: BENCHMARKS.md,
"Order MCMC").

**Diagnostics** (:attr:`OrderMCMCPosterior.last_diagnostics`, per environment):
``chain_agreement`` the largest ``|difference|`` of an edge marginal between two chains;
``stderr`` the Monte Carlo standard error of every edge marginal (batch means over
``batches`` consecutive batches per chain); ``ess`` the effective sample size, in independent
exact graph samples: ``min p (1 - p) / stderr²`` over the edges with ``p (1 - p) > 0.01`` (with
Rao-Blackwellisation it can exceed the number of MCMC samples); ``swap_acceptance`` and
``relocation_rate`` (how often a relocated variable moved), ``reversal_acceptance`` and ``warm``, whether each
environment was warm-started. The batch means assume batches longer than the chains'
correlation time; chains stuck in different modes show as a large ``chain_agreement``.

**Accuracy contract** (measured against the exact DP, ``benchmarks/bench_mcmc.py``;
BENCHMARKS.md "Order MCMC"): on held-out histories of the linear environments (Erdős–Rényi
degree 3, ``k = 3``, 50 observational rows and 10 random multi-target experiments, linear-SCM
local score) with the defaults, the edge marginals at ``d = 12`` are within 0.003 mean and
0.063 max absolute error of the exact posterior's, and the expected correct entries within 0.09
on average (0.17 at most). At ``d = 20`` two seeds agree within 0.0034 mean absolute difference
of the edge marginals, but the largest single difference is 0.054 in the median history and
0.11 in the worst (chains that sit in different modes of the order posterior for their whole
run), and the expected correct entries differ by 0.3 on average (0.8 at most); at ``d = 30``:
0.0026 mean, 0.081 (median history) and 0.25 (worst) max, expected correct entries 0.6 (1.9).
Read single edge marginals above ``d = 14`` to about ±0.1 (±0.25 at ``d = 30``) and sums over
many edges to well under 1 %.
The model accepts ``d <= MAX_MCMC_D`` (:data:`MAX_MCMC_D`); beyond it, or with an in-degree
bound whose parent-set tables exceed memory (estimated before any allocation), it refuses.
Count data (SERGIO) and histories with NaN are refused too; a chain that produces NaN is an
error, not a silent uniform posterior.
"""

from __future__ import annotations

import copy
import math
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from caasl_envs.histories import check_history
from caasl_envs.reward.bge import ParentSets
from caasl_envs.reward.exact import ExactLinearGaussianPosterior

#: Largest ``d`` of the accuracy contract (module docstring).
MAX_MCMC_D = 30
#: Iterations between the orders :func:`mcmc_graph_samples` takes from one chain.
PLANNER_THIN = 10
#: Elements of the largest per-iteration tensor ``(block, chains, d, P)`` per block of
#: environments (bounds memory; blocks are batched, the loop over blocks is for memory only).
BLOCK_ELEMENTS = 1 << 21


def parent_set_count(d: int, k: int) -> int:
    """``P = sum_{l <= k} C(d - 1, l)``, the candidate parent sets per variable."""
    return sum(math.comb(d - 1, size) for size in range(min(k, d - 1) + 1))


def memory_estimate(batch: int, d: int, k: int, chains: int) -> int:
    """Bytes the scorer needs at its peak for ``batch`` histories: the weighted local scores
    ``(B, d, P)`` and the running sums of the parent-set weights ``(B, chains, d, P)`` (float64),
    the parent-set tables ``(d, P, d)`` and one block of per-iteration work."""
    p = parent_set_count(d, k)
    per_env = 8 * d * p * (1 + chains)
    work = 8 * 6 * min(BLOCK_ELEMENTS, batch * chains * d * p)
    return batch * per_env + 8 * d * p * (d + k + 2) + work


def _free_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: no limit known
        return None


@dataclass(frozen=True)
class _Tables:
    """One block's chain inputs.

    :param log_beta: ``(b, d, P)`` float64 weighted local scores centred per variable (max 0).
    :param weight: ``(b, d, P)`` float32 ``exp(log_beta)`` (sets more than ~87 nats below the
        best underflow to 0; where every allowed set does, sums fall back to ``log_beta``).
    :param bits: ``(d, P)`` parent-set bitmasks (int32 for ``d <= 31``, else int64).
    :param index: ``(d, P, k)`` long member indices (padding ``d ..``, as in
        :class:`~caasl_envs.reward.bge.ParentSets`).
    """

    log_beta: torch.Tensor
    weight: torch.Tensor
    bits: torch.Tensor
    index: torch.Tensor

    @classmethod
    def build(cls, log_beta: torch.Tensor, sets: ParentSets) -> _Tables:
        """From ``(b, d, P)`` weighted local scores (any offset per variable)."""
        centred = log_beta - log_beta.amax(-1, keepdim=True)
        dev, d = log_beta.device, log_beta.shape[1]
        bits = sets.bits.to(dev, torch.int32 if d <= 31 else torch.int64)
        return cls(centred, centred.exp().float(), bits, sets.index.to(dev))


#: Float32 sums of allowed weights below this are recomputed in float64 log space.
_TINY = 1e-30


def predecessor_bits(order: torch.Tensor) -> torch.Tensor:
    """``order (..., d)`` long (variable at each position) -> ``(..., d)`` long, per *variable*
    the bitmask of the variables before it."""
    onehot = torch.ones_like(order) << order
    before = onehot.cumsum(-1) - onehot  # distinct bits: the sum is the OR
    return torch.empty_like(order).scatter_(-1, order, before)


#: The bit pattern of float32 1.0: int32 0/1 times it, viewed as float32, is 0.0/1.0 (one
#: in-place pass instead of a dtype conversion).
_FLOAT32_ONE = 0x3F800000


def _subset_mask(bits: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Float32 0/1 ``bits & ~pred == 0`` (broadcast): the sets inside the predecessor sets."""
    inside = torch.bitwise_and(bits, ~pred.to(bits.dtype)).eq_(0)
    if inside.dtype == torch.int32:
        return inside.mul_(_FLOAT32_ONE).view(torch.float32)
    return inside.to(torch.float32)


def allowed_sets(tables: _Tables, order: torch.Tensor) -> torch.Tensor:
    """``(b, C, d, P)`` float32 0/1: which parent sets of each variable lie among its
    predecessors in ``order (b, C, d)``."""
    return _subset_mask(tables.bits, predecessor_bits(order).unsqueeze(-1))


def _log_sums(tables: _Tables, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 ``(b, C, d)`` log of each variable's summed allowed weight, and the bool
    ``(b, C, d)`` entries that underflowed float32 (computed in float64 log space instead)."""
    total = torch.einsum("bcjp,bjp->bcj", allowed, tables.weight).double()
    low = total < _TINY
    log_total = total.log()
    if bool(low.any()):
        bi, _, ji = low.nonzero(as_tuple=True)
        rows = torch.where(allowed[low] > 0, tables.log_beta[bi, ji], -math.inf)
        log_total = log_total.masked_scatter(low, rows.logsumexp(-1))
    return log_total, low


def _own_scores(tables: _Tables, v: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """``(b, C, m)`` float64 log summed weight of variable ``v (b, C, 1)`` after each of the
    predecessor sets ``prefix (b, C, m)`` (bitmasks)."""
    b, c, _ = v.shape
    p = tables.weight.shape[-1]
    rows = v.view(b, c, 1).expand(b, c, p)
    bits = tables.bits.index_select(0, v.flatten()).view(b, c, 1, p)
    allowed = _subset_mask(bits, prefix.unsqueeze(-1))  # (b, C, m, P)
    weight = tables.weight.gather(1, rows)  # (b, C, P)
    total = torch.einsum("bcmp,bcp->bcm", allowed, weight).double()
    low = total < _TINY
    log_total = total.log()
    if bool(low.any()):
        log_beta = tables.log_beta.gather(1, rows).unsqueeze(2).expand(allowed.shape)
        exact = torch.where(allowed[low] > 0, log_beta[low], -math.inf).logsumexp(-1)
        log_total = log_total.masked_scatter(low, exact)
    return log_total


def _evaluate(tables: _Tables, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The allowed sets ``(b, C, d, P)`` and :func:`family_scores` of ``order``."""
    allowed = allowed_sets(tables, order)
    return allowed, _log_sums(tables, allowed)[0]


def family_scores(tables: _Tables, order: torch.Tensor) -> torch.Tensor:
    """``(b, C, d)`` float64 log of each variable's summed weight given ``order (b, C, d)``; the
    order's log weight is their sum (up to a constant)."""
    return _evaluate(tables, order)[1]


class SetWeightSum:
    """Running sum of ``p(Pa_j = S | order, D)`` over sampled orders, per chain:
    ``coef (b, C, d, P)`` float32 sums of ``allowed / total`` (times ``weight`` at the end: one
    fused pass per sample) and, where the float32 weights underflowed, a float64 ``extra``."""

    def __init__(self, tables: _Tables, chains: int):
        self.tables = tables
        self.coef = tables.weight.new_zeros(
            tables.weight.shape[0], chains, *tables.weight.shape[1:]
        )
        self.extra: torch.Tensor | None = None

    def add(
        self, allowed: torch.Tensor, log_total: torch.Tensor, factor: torch.Tensor | None = None
    ) -> None:
        """Add ``factor (b, C, d)`` (default 1) times the parent-set probabilities of the orders
        with allowed sets ``allowed (b, C, d, P)`` and log sums ``log_total (b, C, d)``."""
        tables = self.tables
        low = log_total < math.log(_TINY)  # where the float32 weights underflow
        scale = torch.where(low, 0.0, (-log_total).exp())
        if factor is not None:
            scale = scale * factor
        self.coef.addcmul_(allowed, scale.to(allowed.dtype).unsqueeze(-1))
        if bool(low.any()):  # the log-space softmax there
            bi, _, ji = low.nonzero(as_tuple=True)
            rows = torch.where(allowed[low] > 0, tables.log_beta[bi, ji], -math.inf).softmax(-1)
            if factor is not None:
                rows = rows * factor[low].unsqueeze(-1)
            if self.extra is None:
                self.extra = torch.zeros(self.coef.shape, dtype=torch.float64)
            self.extra[low] += rows

    def pop(self) -> torch.Tensor:
        """The float64 sums ``(b, C, d, P)`` so far; resets them."""
        out = self.coef.double() * self.tables.weight.double().unsqueeze(1)
        if self.extra is not None:
            out += self.extra
        self.coef.zero_()
        self.extra = None
        return out


def edge_marginals(weights: torch.Tensor, index: torch.Tensor, d: int) -> torch.Tensor:
    """Parent-set probabilities ``(..., d, P)`` -> edge marginals ``(..., d, d)``,
    ``[i, j] = p(i -> j)``: each set's weight added to each of its members (padding dropped)."""
    k = index.shape[-1]
    out = weights.new_zeros(*weights.shape[:-1], d + k)
    for slot in range(k):  # k (<= 4 or so) scatter passes
        out.scatter_add_(-1, index[..., slot].expand_as(weights), weights)
    return out[..., :d].transpose(-1, -2)


@dataclass
class _Chains:
    """The state of every chain of one block: ``order (b, C, d)`` and ``score (b, C, d)`` (its
    :func:`family_scores`), and the counts of accepted moves."""

    order: torch.Tensor
    score: torch.Tensor
    swaps_accepted: torch.Tensor
    swaps_proposed: int
    global_accepted: torch.Tensor
    global_proposed: int
    reversals_accepted: torch.Tensor
    reversals_proposed: int = 0

    @classmethod
    def start(cls, tables: _Tables, order: torch.Tensor) -> _Chains:
        """Chains at ``order (b, C, d)``, no moves counted yet."""
        zero = torch.zeros(order.shape[:2])
        return cls(order, family_scores(tables, order), zero, 0, zero.clone(), 0, zero.clone())


def _pair_sweep(
    tables: _Tables,
    chains: _Chains,
    start: int,
    generator: torch.Generator,
    into: SetWeightSum | None = None,
) -> None:
    """Swap-or-keep every adjacent pair of positions ``(start + 2m, start + 2m + 1)`` (module
    docstring), in place. With ``into``: add the parent-set probabilities of both
    configurations of every pair, weighted by their exact conditional probabilities given the
    other pairs (Rao-Blackwellised over the sweep)."""
    order, d = chains.order, chains.order.shape[-1]
    pairs = (d - start) // 2
    if pairs == 0:
        return
    cut = slice(start, start + 2 * pairs)
    perm = torch.arange(d)
    perm[cut] = perm[cut].view(pairs, 2).flip(-1).flatten()
    proposal = order[..., perm]
    allowed, score = _evaluate(tables, proposal)
    delta = (score - chains.score).gather(-1, order)[..., cut]
    delta = delta.reshape(*delta.shape[:-1], pairs, 2).sum(-1)
    u = torch.rand(delta.shape, generator=generator, dtype=delta.dtype)
    accept = u.log() < delta  # (b, C, pairs)
    at_position = torch.zeros_like(order, dtype=torch.bool)
    at_position[..., cut] = accept.repeat_interleave(2, dim=-1)
    at_variable = torch.zeros_like(at_position).scatter_(-1, order, at_position)
    if into is not None:
        swapped = torch.zeros_like(chains.score)
        swapped[..., cut] = torch.sigmoid(delta).repeat_interleave(2, dim=-1)
        swapped = torch.zeros_like(swapped).scatter_(-1, order, swapped)  # per variable
        into.add(allowed_sets(tables, order), chains.score, 1.0 - swapped)
        into.add(allowed, score, swapped)
    chains.order = torch.where(at_position, proposal, order)
    chains.score = torch.where(at_variable, score, chains.score)
    chains.swaps_accepted += accept.sum(-1)
    chains.swaps_proposed += pairs


def _gibbs_relocation(tables: _Tables, chains: _Chains, generator: torch.Generator) -> None:
    """Heat-bath move of one random variable ``v`` per chain over all ``d`` positions (in place).

    With ``v`` removed, every other variable ``u`` has one of two scores: without ``v`` among
    its predecessors (``v`` inserted after it) or with. Their prefix sums and ``v``'s own score
    after each prefix of the reduced order (one ``(d, P)`` evaluation) give the log weight of
    all ``d`` insertion points at the cost of three evaluations; one is drawn exactly.
    """
    order = chains.order
    b, c, d = order.shape
    v = torch.randint(d, (b, c, 1), generator=generator)
    at = order == v
    old = at.long().argmax(-1, keepdim=True)  # v's position now
    reduced = order[~at].view(b, c, d - 1)  # the order without v
    without = family_scores(tables, torch.cat([reduced, v], -1))  # v last: no u sees it
    with_v = family_scores(tables, torch.cat([v, reduced], -1))
    onehot = torch.ones_like(reduced) << reduced
    prefix = torch.cat([torch.zeros_like(v), onehot.cumsum(-1)], -1)  # (b, C, d)
    own = _own_scores(tables, v, prefix)  # (b, C, d): v inserted at each point
    w, h = without.gather(-1, reduced), with_v.gather(-1, reduced)
    zero = w.new_zeros(b, c, 1)
    before = torch.cat([zero, w.cumsum(-1)], -1)  # sum of u before the insertion point
    after = h.sum(-1, keepdim=True) - torch.cat([zero, h.cumsum(-1)], -1)
    logit = before + after + own
    u = torch.rand(logit.shape, generator=generator, dtype=logit.dtype).clamp(min=1e-300)
    point = (logit - torch.log(-torch.log(u))).argmax(-1, keepdim=True)  # (b, C, 1)
    position = torch.arange(d).expand(b, c, d)
    padded = torch.cat([reduced, v], -1)
    source = torch.where(position < point, position, (position - 1).clamp(min=0))
    chains.order = torch.where(position == point, v, padded.gather(-1, source))
    rank = torch.zeros_like(order).scatter_(-1, reduced, position[..., : d - 1])
    score = torch.where(rank >= point, with_v, without)  # u after v: v among its predecessors
    chains.score = score.scatter(-1, v, own.gather(-1, point))
    chains.global_accepted = chains.global_accepted + (point != old).squeeze(-1)
    chains.global_proposed += 1


def _segment_reversal(
    tables: _Tables, chains: _Chains, longest: int, generator: torch.Generator
) -> None:
    """Reverse a random segment of 3 to ``longest`` consecutive positions per chain (MH, in
    place): one step between orders that put a chain of edges one way and the other, which
    single-variable moves can only reach through worse orders."""
    order = chains.order
    b, c, d = order.shape
    longest = min(longest, d)
    if longest < 3:
        return
    length = 3 + torch.randint(longest - 2, (b, c, 1), generator=generator)
    first = (torch.rand(b, c, 1, generator=generator) * (d - length + 1)).long()
    position = torch.arange(d).expand(b, c, d)
    inside = (position >= first) & (position < first + length)
    source = torch.where(inside, 2 * first + length - 1 - position, position)
    proposal = order.gather(-1, source)
    score = family_scores(tables, proposal)
    delta = (score - chains.score).sum(-1)
    u = torch.rand(delta.shape, generator=generator, dtype=delta.dtype)
    accept = (u.log() < delta).unsqueeze(-1)
    chains.order = torch.where(accept, proposal, order)
    chains.score = torch.where(accept, score, chains.score)
    chains.reversals_accepted = chains.reversals_accepted + accept.squeeze(-1)
    chains.reversals_proposed += 1


@dataclass(frozen=True)
class RunSettings:
    """How long the chains run: ``burn_in`` iterations, then ``samples`` samples one every
    ``thin`` iterations, split into ``batches`` consecutive batches per chain (diagnostics).
    An iteration is ``sweeps`` pairs of pair sweeps and ``relocations`` relocation moves."""

    burn_in: int
    samples: int
    thin: int
    batches: int
    sweeps: int = 1
    relocations: int = 1
    reversals: int = 1
    longest: int = 6


def _iteration(
    tables: _Tables,
    chains: _Chains,
    run: RunSettings,
    generator: torch.Generator,
    into: SetWeightSum | None = None,
    parity: int = 1,
) -> None:
    """One iteration (:class:`RunSettings`): relocations, then pair sweeps of alternating
    parity (0, 1, 0, 1, ...). With ``into``: a sample is added to it, Rao-Blackwellised over
    the last sweep of parity ``parity`` (alternate it between samples: the sampled sweep then
    alternates too), or taken at the end when there are no sweeps."""
    for _ in range(run.relocations):
        _gibbs_relocation(tables, chains, generator)
    for _ in range(run.reversals):
        _segment_reversal(tables, chains, run.longest, generator)
    for sweep in range(run.sweeps):
        last = sweep == run.sweeps - 1
        _pair_sweep(tables, chains, 0, generator, into if last and parity == 0 else None)
        _pair_sweep(tables, chains, 1, generator, into if last and parity == 1 else None)
    if into is not None and run.sweeps == 0:
        into.add(*_evaluate(tables, chains.order))


def run_chains(
    tables: _Tables, order: torch.Tensor, run: RunSettings, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Run the chains of one block from ``order (b, C, d)``.

    :return: the final orders ``(b, C, d)``, the batch means of the edge marginals
        ``(b, C, batches, d, d)`` float64, and the acceptance rates ``(b,)`` of the moves.
    """
    b, c, d = order.shape
    chains = _Chains.start(tables, order)
    for _ in range(run.burn_in):
        _iteration(tables, chains, run, generator)
    per_batch = -(-run.samples // run.batches)
    means = []
    total = SetWeightSum(tables, c)
    for sample in range(run.samples):
        for _ in range(run.thin - 1):
            _iteration(tables, chains, run, generator)
        _iteration(tables, chains, run, generator, total, sample % 2)
        if (sample + 1) % per_batch == 0 or sample + 1 == run.samples:
            count = (sample % per_batch) + 1
            means.append(edge_marginals(total.pop() / count, tables.index, d))
    rates = {
        "swap_acceptance": chains.swaps_accepted.sum(1) / max(1, c * chains.swaps_proposed),
        "relocation_rate": chains.global_accepted.sum(1) / max(1, c * chains.global_proposed),
        "reversal_acceptance": chains.reversals_accepted.sum(1)
        / max(1, c * chains.reversals_proposed),
    }
    return chains.order, torch.stack(means, dim=2), rates


@dataclass
class _CacheEntry:
    """A call's histories ``x (B, n, d, 2)``, row mask ``valid (B, n)``, final chain orders
    ``(B, C, d)``, result and diagnostics (the warm-start cache)."""

    x: torch.Tensor
    valid: torch.Tensor
    order: torch.Tensor
    probs: torch.Tensor
    diagnostics: dict[str, torch.Tensor]

    def warm(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: which of ``x``'s histories extend this entry's (all False if the shapes
        do not match)."""
        b, n = self.x.shape[:2]
        if x.shape[0] != b or x.shape[2] != self.x.shape[2] or x.shape[1] < n:
            return torch.zeros(x.shape[0], dtype=torch.bool)
        same_rows = (x[:, :n] == self.x).flatten(1).all(1)
        return same_rows & (valid[:, :n] == self.valid).all(1)


class OrderMCMCPosterior(ExactLinearGaussianPosterior):
    """Edge posterior by order MCMC on the exact posterior's local scores (module docstring).

    Accepts every argument of :class:`~caasl_envs.reward.exact.ExactLinearGaussianPosterior`
    (the prior, local score and data handling are that class's) and:

    :param chains: chains per environment (``>= 2``: the diagnostics compare them).
    :param samples: samples per chain, one every ``thin`` iterations.
    :param burn_in: iterations before sampling from a cold start.
    :param warm_burn_in: iterations before sampling when every history extends a cached one.
    :param thin: iterations between samples.
    :param batches: batches per chain for the batch-means standard errors.
    :param seed: seeds every call's generator (with a checksum of the input).
    :param cache_size: warm-start cache entries (``0``: no warm starts).
    :param max_d: largest accepted ``d`` (default :data:`MAX_MCMC_D`, the contract's).
    :param max_memory: bytes the scorer may use (default: the memory free at the call).
    :param sweeps: pairs of pair sweeps per iteration (module docstring, "Moves").
    :param relocations: Gibbs relocations per iteration.
    :param reversals: segment reversals per iteration.
    """

    def __init__(
        self,
        *args,
        chains: int = 8,
        samples: int = 400,
        burn_in: int = 50,
        warm_burn_in: int = 10,
        thin: int = 1,
        batches: int = 5,
        seed: int = 0,
        cache_size: int = 4,
        max_d: int = MAX_MCMC_D,
        max_memory: int | None = None,
        sweeps: int = 1,
        relocations: int = 1,
        reversals: int = 1,
        **kwargs,
    ):
        super().__init__(*args, max_d=max_d, **kwargs)
        for name, value, low in (
            ("chains", chains, 2),
            ("samples", samples, 1),
            ("burn_in", burn_in, 0),
            ("warm_burn_in", warm_burn_in, 0),
            ("thin", thin, 1),
            ("batches", batches, 1),
            ("cache_size", cache_size, 0),
            ("sweeps", sweeps, 0),
            ("relocations", relocations, 0),
            ("reversals", reversals, 0),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 2 <= max_d <= 62:
            raise ValueError(f"max_d must be in [2, 62] (bitmask orders), got {max_d}")
        if batches > samples:
            raise ValueError(f"batches ({batches}) must be <= samples ({samples})")
        self.chains, self.samples, self.thin, self.batches = chains, samples, thin, batches
        self.burn_in, self.warm_burn_in = burn_in, warm_burn_in
        self.seed, self.cache_size, self.max_memory = int(seed), cache_size, max_memory
        self.sweeps, self.relocations, self.reversals = sweeps, relocations, reversals
        self._cache: list[_CacheEntry] = []
        self.last_diagnostics: dict[str, torch.Tensor] = {}

    def for_prior(self, prior: object) -> OrderMCMCPosterior:
        """As :meth:`ExactLinearGaussianPosterior.for_prior`; refuses count-data simulators."""
        if getattr(prior, "action_kind", None) == "target_only":
            raise ValueError(
                f"{type(self).__name__} scores linear-Gaussian data; {type(prior).__name__} "
                "simulates count data (SERGIO): use its AVICI reward model"
            )
        variant = super().for_prior(prior)
        if variant is not self:
            variant._cache = []
        return variant

    def posterior(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float64 edge marginals ``(B, d, d)`` and, in place of the exact log normaliser, the
        chains' agreement ``(B,)`` (see :attr:`last_diagnostics`)."""
        probs = self.edge_marginals(x, mask)
        return probs, self.last_diagnostics["chain_agreement"]

    def edge_probs(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, n, d, 2)`` history (+ optional ``(B, n)`` bool mask) -> ``(B, d, d)``
        ``p(i -> j | D)``."""
        return self.edge_marginals(x, mask).to(x.dtype)

    def check_input(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Refuse (one-line ``ValueError``) what the scorer does not cover: bad or NaN
        histories, ``d`` beyond :attr:`max_d`, count data, tables that exceed memory."""
        check_history(x, mask)
        b, _, d, _ = x.shape
        if d > self.max_d:
            raise ValueError(
                f"the order-MCMC posterior's accuracy contract covers d <= {self.max_d}, got "
                f"d={d}; use a learned reward model for larger graphs"
            )
        values = x[..., 0] if mask is None else x[..., 0][mask.bool()]
        if values.numel() >= 2 * d and (values >= 0).all() and (values == values.round()).all():
            raise ValueError(
                "the history looks like count data (every value a non-negative integer): the "
                "order-MCMC posterior scores linear-Gaussian data, not SERGIO counts"
            )
        k = min(self.max_in_degree, d - 1)
        need = memory_estimate(b, d, k, self.chains)
        limit = self.max_memory if self.max_memory is not None else _free_memory()
        if limit is not None and need > limit:
            raise ValueError(
                f"max_in_degree={self.max_in_degree} at d={d} gives {parent_set_count(d, k)} "
                f"parent sets per variable: about {need / 2**30:.1f} GiB for {b} histories, "
                f"more than the {limit / 2**30:.1f} GiB available; lower max_in_degree or the batch"
            )

    def edge_marginals(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Float64 ``(B, d, d)`` edge marginals; sets :attr:`last_diagnostics`."""
        self.check_input(x, mask)
        valid = torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
        x, valid = x.detach().cpu(), valid.cpu()
        entry, warm = self._lookup(x, valid)
        if entry is not None and bool(warm.all()) and entry.x.shape == x.shape:
            self.last_diagnostics = dict(entry.diagnostics)
            return entry.probs.clone()
        generator = torch.Generator().manual_seed(self._call_seed(x, valid))
        log_beta, sets = self.local_weights(x, valid)
        order = self.initial_orders(x.shape[0], x.shape[2], generator)
        if entry is not None:
            order = torch.where(warm.view(-1, 1, 1), entry.order, order)
        burn_in = self.warm_burn_in if bool(warm.all()) else self.burn_in
        run = self.run_settings(burn_in, self.samples)
        order, means, rates = sample_chains(log_beta, sets, order, run, generator)
        probs, diagnostics = summarize(means)
        diagnostics.update(rates, warm=warm)
        self.last_diagnostics = diagnostics
        self._remember(entry, _CacheEntry(x.clone(), valid.clone(), order, probs, diagnostics))
        return probs.clone()

    def run_settings(self, burn_in: int, samples: int) -> RunSettings:
        """This model's chain settings with ``burn_in`` iterations and ``samples`` samples."""
        batches = min(self.batches, samples)
        return RunSettings(
            burn_in, samples, self.thin, batches, self.sweeps, self.relocations, self.reversals
        )

    def initial_orders(self, batch: int, d: int, generator: torch.Generator) -> torch.Tensor:
        """``(B, C, d)`` independent uniformly random orders."""
        return torch.rand(batch, self.chains, d, generator=generator).argsort(-1)

    def _call_seed(self, x: torch.Tensor, valid: torch.Tensor) -> int:
        checksum = zlib.crc32(x.contiguous().numpy().tobytes())
        checksum = zlib.crc32(valid.contiguous().numpy().tobytes(), checksum)
        return (self.seed * 0x9E3779B1 + checksum) % (1 << 62)

    def _lookup(
        self, x: torch.Tensor, valid: torch.Tensor
    ) -> tuple[_CacheEntry | None, torch.Tensor]:
        """The cache entry that the most of ``x``'s histories extend, and which do (``(B,)``)."""
        best, best_warm = None, torch.zeros(x.shape[0], dtype=torch.bool)
        for entry in self._cache:
            warm = entry.warm(x, valid)
            if int(warm.sum()) > int(best_warm.sum()):
                best, best_warm = entry, warm
        return best, best_warm

    def _remember(self, old: _CacheEntry | None, new: _CacheEntry) -> None:
        if self.cache_size == 0:
            return
        self._cache = [e for e in self._cache if e is not old][: self.cache_size - 1]
        self._cache.insert(0, new)


def _blocks(
    log_beta: torch.Tensor, sets: ParentSets, order: torch.Tensor
) -> Iterator[tuple[_Tables, torch.Tensor]]:
    """The chain tables and starting orders of consecutive blocks of environments (of at most
    :data:`BLOCK_ELEMENTS` per-iteration elements; the loop bounds memory)."""
    b, d, p = log_beta.shape
    if not torch.isfinite(log_beta).all():
        raise ValueError("the local scores contain NaN or inf (degenerate data?)")
    block = max(1, BLOCK_ELEMENTS // (order.shape[1] * d * p))
    for lo in range(0, b, block):
        yield _Tables.build(log_beta[lo : lo + block], sets), order[lo : lo + block]


def sample_chains(
    log_beta: torch.Tensor,
    sets: ParentSets,
    order: torch.Tensor,
    run: RunSettings,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`run_chains` on every environment, in blocks of environments (memory only).

    :param log_beta: ``(B, d, P)`` float64 weighted local scores (the order DP's input).
    :param order: ``(B, C, d)`` long starting orders.
    :return: final orders ``(B, C, d)``, batch means ``(B, C, batches, d, d)``, acceptance rates.
    """
    parts = [
        run_chains(tables, start, run, generator)
        for tables, start in _blocks(log_beta, sets, order)
    ]
    orders = torch.cat([part[0] for part in parts])
    means = torch.cat([part[1] for part in parts])
    rates = {key: torch.cat([part[2][key] for part in parts]) for key in parts[0][2]}
    return orders, means, rates


def summarize(means: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Edge marginals ``(B, d, d)`` and diagnostics from batch means ``(B, C, K, d, d)``.

    Every batch holds the same number of samples except possibly the last of each chain; the
    estimate weighs batches equally (the last one's weight differs by at most one sample).
    """
    if not torch.isfinite(means).all():
        raise RuntimeError("order MCMC produced NaN edge marginals (a chain diverged)")
    b, c, k = means.shape[:3]
    means = means.clamp(0.0, 1.0)  # float32 weight sums can pass 1 by a rounding error
    probs = means.mean((1, 2))
    per_chain = means.mean(2)
    agreement = (per_chain.amax(1) - per_chain.amin(1)).flatten(1).amax(1)
    flat = means.flatten(1, 2)  # (B, C K, d, d)
    stderr = (flat.var(1, correction=1) / (c * k)).sqrt() if c * k > 1 else torch.zeros_like(probs)
    spread = probs * (1.0 - probs)
    uncertain = spread > 0.01
    ess = torch.where(uncertain, spread / stderr.square().clamp(min=1e-12), math.inf)
    diagnostics = {
        "chain_agreement": agreement,
        "stderr": stderr,
        "max_stderr": stderr.flatten(1).amax(1),
        "ess": ess.flatten(1).amin(1),
    }
    return probs, diagnostics


def graphs_given_orders(
    log_beta: torch.Tensor, sets: ParentSets, order: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """One graph per order, drawn exactly from ``p(G | order, D)``: each variable's parent set
    among the subsets of its predecessors, with probability proportional to ``beta_j(Pa)``
    (Gumbel-max; the backward sampler of the order DP restricted to one order).

    :param log_beta: ``(B, d, P)`` weighted local scores; ``order (B, S, d)`` long.
    :return: ``parents (B, S, d)`` long, the index (into ``sets``) of each variable's parent set.
    """
    tables = _Tables.build(log_beta, sets)
    logit = torch.where(allowed_sets(tables, order) > 0, tables.log_beta.unsqueeze(1), -math.inf)
    u = torch.rand(logit.shape, generator=generator, dtype=logit.dtype).clamp(min=1e-300)
    return (logit - torch.log(-torch.log(u))).argmax(-1)


def sample_orders(
    log_beta: torch.Tensor,
    sets: ParentSets,
    order: torch.Tensor,
    run: RunSettings,
    generator: torch.Generator,
) -> torch.Tensor:
    """``run.samples`` orders per chain, one every ``run.thin`` iterations after ``run.burn_in``,
    from ``order (B, C, d)`` (blocks of environments as in :func:`sample_chains`).

    :return: ``(B, C, samples, d)`` long.
    """
    parts = []
    for tables, start in _blocks(log_beta, sets, order):
        chains = _Chains.start(tables, start)
        for _ in range(run.burn_in):
            _iteration(tables, chains, run, generator)
        kept = []
        for _ in range(run.samples):
            for _ in range(run.thin):
                _iteration(tables, chains, run, generator)
            kept.append(chains.order)
        parts.append(torch.stack(kept, 2))
    return torch.cat(parts)


def mcmc_graph_samples(
    model: ExactLinearGaussianPosterior,
    log_beta: torch.Tensor,
    sets: ParentSets,
    count: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` posterior (order, graph) samples per environment by order MCMC, in the format
    of :func:`caasl_agent.bench.eig.sample_graphs`: ``order (B, S, d)`` (the variable at each
    position) and ``parents (B, S, d)``. The chains (count, burn-in, moves) are ``model``'s when
    it is an :class:`OrderMCMCPosterior`, else the defaults; each chain gives
    ``count / chains`` orders :data:`PLANNER_THIN` iterations apart (chains interleaved), and each order one
    exact graph sample (:func:`graphs_given_orders`)."""
    settings = model if isinstance(model, OrderMCMCPosterior) else OrderMCMCPosterior()
    b, d, _ = log_beta.shape
    start = torch.rand(b, settings.chains, d, generator=generator).argsort(-1)
    per_chain = -(-count // settings.chains)
    run = replace(settings.run_settings(settings.burn_in, per_chain), thin=PLANNER_THIN)
    orders = sample_orders(log_beta, sets, start, run, generator)
    order = orders.transpose(1, 2).flatten(1, 2)[:, :count]
    return order, graphs_given_orders(log_beta, sets, order, generator)


def mcmc_twin(model: ExactLinearGaussianPosterior, **kwargs) -> OrderMCMCPosterior:
    """An :class:`OrderMCMCPosterior` with ``model``'s prior, local score and data handling."""
    twin = OrderMCMCPosterior(**kwargs)
    for name in (
        "max_in_degree",
        "graph_degree",
        "local_score",
        "alpha_mu",
        "alpha_w",
        "noise_shape",
        "noise_rate",
        "standardize",
        "intervened_rows",
    ):
        setattr(twin, name, copy.copy(getattr(model, name)))
    return twin
