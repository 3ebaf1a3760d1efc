"""``caasl/Sachs-v0``: experimental design on a pool of real flow-cytometry cells.

**Data.** The 11-protein single-cell table of Sachs, Perez, Pe'er, Lauffenburger & Nolan,
"Causal protein-signaling networks derived from multiparameter single-cell data", Science
308:523-529 (2005): 7,466 human primary CD4+ T cells, each with 11 measured phosphoproteins and
phospholipids, shipped as a checksummed copy of ``cdt`` 0.6.0's ``cyto_full_data.csv``
(:mod:`caasl_envs.real.data`). The table stacks the study's nine condition files without a
label column; they have 853, 902, 911, 723, 810, 799, 848, 913 and 707 cells (7,466 in all), so
the condition of every row follows from the block boundaries (:func:`condition_labels`). The
boundaries are also the nine largest change points of the per-row measurements, and each
inhibitor moves the level it should (tests/test_sachs.py): under U0126 (a MEK inhibitor) the
phosphorylation of MEK's substrate ERK (``p44/42``) falls from a median of 14.9 to 2.7 (raw
units), and under psitectorigenin (a PIP2 inhibitor) PIP2 falls from 48 to 2.1.

**Conditions** (:data:`CONDITIONS`; reagents as in Sachs et al. 2005, Fig. 1 and Table 1):

================  =====  =======================================  ===========  ======
condition         cells  reagent                                  kind         target
================  =====  =======================================  ===========  ======
``cd3cd28``       853    anti-CD3 + anti-CD28 (general stimulus)  general      --
``cd3cd28icam2``  902    anti-CD3/CD28 + ICAM-2 (general)         general      --
``aktinhib``      911    Akt inhibitor (+ anti-CD3/CD28)          inhibitor    Akt
``g0076``         723    G06976, PKC inhibitor (+ anti-CD3/CD28)  inhibitor    PKC
``psitect``       810    psitectorigenin, PIP2 inhibitor (+ ...)  inhibitor    PIP2
``u0126``         799    U0126, MEK inhibitor (+ anti-CD3/CD28)   inhibitor    Mek
``ly``            848    LY294002, PI3K inhibitor (+ ...)         inhibitor    PIP3
``pma``           913    PMA, PKC activator (no anti-CD3/CD28)    activator    PKC
``b2camp``        707    beta2cAMP, PKA activator (no anti-CD3/CD28)  activator  PKA
================  =====  =======================================  ===========  ======

Each inhibitor or activator is treated as a perfect intervention on its target (the target's
rows leave its local score, as for ``do``), the usual reading of these data (e.g. Eaton &
Murphy 2007 model them as uncertain interventions; Wang et al. 2017 use the five inhibitors
as interventions on Akt, PKC, PIP2, Mek and PIP3). PI3K is not measured: LY294002 is taken as
an intervention on its product PIP3. This is a *model* of the chemistry, and a misspecified
one: an inhibitor of a kinase's activity need not change the kinase's own measured
phosphorylation (U0126 *raises* phospho-MEK while it lowers phospho-ERK), PMA and beta2cAMP
replace the general stimulus rather than adding to it, and the cells are not
linear-Gaussian.

**Observational data.** The two general-stimulation conditions form one observational pool of
1,755 cells by default (``observational=("cd3cd28", "cd3cd28icam2")``, as in Wang et al. 2017);
the initial ``n0`` cells and every observational experiment come from it.

**Actions** use the linear environments' ``[targets, values]`` layout over the 11 variables,
so every CAASL policy and baseline acts unchanged; the environment runs the experiment of the
data closest to the action (:meth:`SachsPool.condition_of`):

1. among the targeted variables (``targets_j > 0``) that some available condition intervenes
   on, the one with the largest ``|value_j|`` (ties: the lowest index);
2. its condition; for PKC, which has two, ``value < 0`` picks the inhibitor G06976 and
   ``value >= 0`` the activator PMA (the other one when only one is in ``conditions``);
3. when no targeted variable has a condition (Raf, Plcg, Erk, P38 and Jnk never do), the
   observational pool: those targets are ignored.

The history records the condition's target (channel 1), not the action's.
Each experiment returns ``samples_per_step`` cells drawn **without replacement** from that
condition's pool (an episode's seed fixes the order in which every pool is drawn); values are
``log`` of the measured intensities (all positive), standardised with the observational pool's
mean and standard deviation per protein (``standardize=False`` keeps the log scale).

**Reference graph** (``reference``): ``"sachs2005"`` (default), the 17-edge network Sachs et
al. (2005, Fig. 3A) report — the most used reference for these data, distributed as the bnlearn
``sachs`` network; or ``"cdt"``, the 18-edge list shipped with ``cdt`` (``cyto_full_target.csv``).
They share 13 edges; ``sachs2005`` alone has Plcg->PIP3, PIP3->PIP2, Erk->Akt and PKC->PKA;
``cdt`` alone has PIP2->PKC, Plcg->PKC, PIP3->Plcg, PIP2->PIP3 and PIP3->Akt. Neither is
ground truth: signalling has feedback loops a DAG cannot hold, and biologists still argue over
several of these edges.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

from caasl_envs.checks import check_bool
from caasl_envs.real.data import read_data_file
from caasl_envs.rng import BatchedRNG

#: the 11 measured molecules, in the table's column order (``cdt``'s column names in brackets)
VARIABLES = ("Raf", "Mek", "Plcg", "PIP2", "PIP3", "Erk", "Akt", "PKA", "PKC", "P38", "Jnk")
COLUMNS = (
    "praf",
    "pmek",
    "plcg",
    "PIP2",
    "PIP3",
    "p44/42",
    "pakts473",
    "PKA",
    "PKC",
    "P38",
    "pjnk",
)
D = len(VARIABLES)


@dataclass(frozen=True)
class Condition:
    """One condition file of Sachs et al. (2005): ``kind`` is ``"general"``, ``"inhibitor"``
    or ``"activator"``; ``target`` the intervened variable (``None`` for general stimuli)."""

    name: str
    cells: int
    reagent: str
    kind: str
    target: str | None


#: the nine conditions, in the order of their blocks of rows
CONDITIONS = (
    Condition("cd3cd28", 853, "anti-CD3 + anti-CD28", "general", None),
    Condition("cd3cd28icam2", 902, "anti-CD3 + anti-CD28 + ICAM-2", "general", None),
    Condition("aktinhib", 911, "Akt inhibitor + anti-CD3/CD28", "inhibitor", "Akt"),
    Condition("g0076", 723, "G06976 (PKC inhibitor) + anti-CD3/CD28", "inhibitor", "PKC"),
    Condition(
        "psitect", 810, "psitectorigenin (PIP2 inhibitor) + anti-CD3/CD28", "inhibitor", "PIP2"
    ),
    Condition("u0126", 799, "U0126 (MEK inhibitor) + anti-CD3/CD28", "inhibitor", "Mek"),
    Condition("ly", 848, "LY294002 (PI3K inhibitor) + anti-CD3/CD28", "inhibitor", "PIP3"),
    Condition("pma", 913, "PMA (PKC activator)", "activator", "PKC"),
    Condition("b2camp", 707, "beta2cAMP (PKA activator)", "activator", "PKA"),
)
CONDITION_NAMES = tuple(c.name for c in CONDITIONS)
GENERAL = tuple(c.name for c in CONDITIONS if c.kind == "general")
INTERVENTIONAL = tuple(c.name for c in CONDITIONS if c.kind != "general")

#: Sachs et al. (2005), Fig. 3A: the 17-edge network (bnlearn's ``sachs``)
SACHS2005_EDGES = (
    ("Raf", "Mek"), ("Mek", "Erk"), ("Plcg", "PIP2"), ("Plcg", "PIP3"), ("PIP3", "PIP2"),
    ("Erk", "Akt"), ("PKA", "Akt"), ("PKA", "Erk"), ("PKA", "Jnk"), ("PKA", "Mek"),
    ("PKA", "P38"), ("PKA", "Raf"), ("PKC", "Jnk"), ("PKC", "Mek"), ("PKC", "P38"),
    ("PKC", "PKA"), ("PKC", "Raf"),
)  # fmt: skip
#: ``cdt`` 0.6.0's ``cyto_full_target.csv``: 18 edges
CDT_EDGES = (
    ("PIP2", "PKC"), ("Plcg", "PIP2"), ("PIP3", "Plcg"), ("PIP2", "PIP3"), ("Plcg", "PKC"),
    ("PKC", "Jnk"), ("PKC", "P38"), ("PKA", "P38"), ("PKC", "Raf"), ("PKA", "Raf"),
    ("Raf", "Mek"), ("Mek", "Erk"), ("PKC", "Mek"), ("PKA", "Akt"), ("PIP3", "Akt"),
    ("PKA", "Mek"), ("PKA", "Erk"), ("PKA", "Jnk"),
)  # fmt: skip
REFERENCES = {"sachs2005": SACHS2005_EDGES, "cdt": CDT_EDGES}


def reference_graph(reference: str = "sachs2005") -> np.ndarray:
    """``(11, 11)`` 0/1 adjacency of a reference graph (``graph[i, j] = 1`` for ``i -> j``)."""
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; expected one of {sorted(REFERENCES)}")
    graph = np.zeros((D, D))
    for a, b in REFERENCES[reference]:
        graph[VARIABLES.index(a), VARIABLES.index(b)] = 1.0
    return graph


def condition_labels() -> np.ndarray:
    """``(7466,)`` index into :data:`CONDITIONS` of every row, rebuilt from the block sizes."""
    return np.repeat(np.arange(len(CONDITIONS)), [c.cells for c in CONDITIONS])


@cache
def load_sachs() -> np.ndarray:
    """The raw table ``(7466, 11)`` float64, columns :data:`COLUMNS` (checksum checked)."""
    text = read_data_file("sachs2005.csv.gz").decode()
    header, _, body = text.partition("\n")
    if tuple(header.strip().split(",")) != COLUMNS:
        raise ValueError(f"sachs2005.csv.gz: unexpected columns {header.strip()!r}")
    table = np.loadtxt(io.StringIO(body), delimiter=",")
    if table.shape != (len(condition_labels()), D):
        raise ValueError(f"sachs2005.csv.gz: expected 7466 x 11 values, got {table.shape}")
    return table


def _names(kind: str, names: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise ValueError(f"{kind} must be a list of condition names, got {names!r}")
    unknown = [n for n in names if n not in allowed]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"{kind}: unknown or repeated condition names {unknown or list(names)}; "
            f"expected distinct names among {list(allowed)}"
        )
    return tuple(names)


@dataclass
class SachsPrior:
    """The Sachs cell pools as a simulator family (``simulator="sachs"``).

    :param d: must be 11.
    :param reference: ``"sachs2005"`` (17 edges, default) or ``"cdt"`` (18 edges).
    :param conditions: the interventional conditions the agent may run (default: all seven).
    :param observational: the general-stimulation conditions pooled as observational data.
    :param standardize: standardise the log data with the observational pool's statistics.
    """

    d: int = D
    reference: str = "sachs2005"
    conditions: tuple[str, ...] = INTERVENTIONAL
    observational: tuple[str, ...] = GENERAL
    standardize: bool = True
    groups: list[np.ndarray] = field(init=False, repr=False)

    action_kind = "target_value"
    default_reward_model = "exact-linear-gaussian"
    intervention = "do"

    def __post_init__(self) -> None:
        if self.d != D:
            raise ValueError(f"the Sachs data have d={D} variables, got d={self.d}")
        self.graph = torch.as_tensor(reference_graph(self.reference), dtype=torch.float32)
        self.conditions = _names("conditions", self.conditions, INTERVENTIONAL)
        self.observational = _names("observational", self.observational, GENERAL)
        if not self.observational:
            raise ValueError("observational must name at least one general-stimulation condition")
        self.standardize = check_bool("standardize", self.standardize)
        labels = condition_labels()
        index = {c.name: i for i, c in enumerate(CONDITIONS)}
        obs = np.flatnonzero(np.isin(labels, [index[n] for n in self.observational]))
        self.groups = [obs, *(np.flatnonzero(labels == index[n]) for n in self.conditions)]
        x = np.log(load_sachs())
        if self.standardize:
            x = (x - x[obs].mean(0)) / x[obs].std(0)
        self.data = torch.as_tensor(x, dtype=torch.float32)
        self.sizes = torch.as_tensor([len(g) for g in self.groups])
        self.group_targets, self.variable_groups = self._tables()

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G, d)`` bool targets of each group (group 0: observational) and ``(2, d)`` the
        group that intervention ``value < 0`` / ``>= 0`` on each variable runs (-1: none)."""
        targets = torch.zeros(len(self.groups), D, dtype=torch.bool)
        pick = torch.full((2, D), -1, dtype=torch.long)
        by_name = {c.name: c for c in CONDITIONS}
        for g, name in enumerate(self.conditions, start=1):
            j = VARIABLES.index(by_name[name].target)
            targets[g, j] = True
            preferred = 0 if by_name[name].kind == "inhibitor" else 1
            pick[preferred, j] = g
            if pick[1 - preferred, j] < 0:
                pick[1 - preferred, j] = g
        return targets, pick

    def check_design(self, n0: int, budget: int, samples_per_step: int) -> None:
        """``ValueError`` before the episode when an agent could run a pool dry: ``n0`` plus every
        experiment from the observational pool, or every experiment from the smallest pool."""
        per_episode = budget * samples_per_step
        if n0 + per_episode > int(self.sizes[0]):
            raise ValueError(
                f"n0 + budget * samples_per_step = {n0} + {budget} * {samples_per_step} cells "
                f"may all come from the observational pool, which has {int(self.sizes[0])}; "
                "lower n0, budget or samples_per_step"
            )
        for g, name in enumerate(self.conditions, start=1):
            if per_episode > int(self.sizes[g]):
                raise ValueError(
                    f"budget * samples_per_step = {budget} * {samples_per_step} cells may all "
                    f"come from condition {name!r}, which has {int(self.sizes[g])}; lower budget "
                    "or samples_per_step"
                )

    def sample(self, rng: BatchedRNG) -> SachsPool:
        """One pool per environment, each pool in an order drawn from its generator."""
        b, device = len(rng), rng.device
        order = torch.zeros(b, len(self.groups), int(self.sizes.max()), dtype=torch.long)
        for g, rows in enumerate(self.groups):  # a few groups, batched over environments
            perm = rng.uniform(len(rows)).cpu().argsort(dim=1)
            order[:, g, : len(rows)] = torch.as_tensor(rows)[perm]
        return SachsPool(
            graph=self.graph.to(device).expand(b, D, D).clone(),
            data=self.data.to(device),
            order=order.to(device),
            used=torch.zeros(b, len(self.groups), dtype=torch.long, device=device),
            sizes=self.sizes.to(device),
            group_targets=self.group_targets.to(device),
            variable_groups=self.variable_groups.to(device),
        )


@dataclass
class SachsPool:
    """The cell pools of ``B`` environments.

    :param graph: ``(B, 11, 11)`` reference graph.
    :param data: ``(7466, 11)`` transformed table.
    :param order: ``(B, G, M)`` row indices of each group's cells in draw order (padded).
    :param used: ``(B, G)`` cells drawn so far from each group.
    :param sizes: ``(G,)`` cells in each group (group 0: observational).
    :param group_targets: ``(G, 11)`` bool, the variable each group intervenes on.
    :param variable_groups: ``(2, 11)`` group run by a negative / non-negative value (-1: none).
    """

    graph: torch.Tensor
    data: torch.Tensor
    order: torch.Tensor
    used: torch.Tensor
    sizes: torch.Tensor
    group_targets: torch.Tensor
    variable_groups: torch.Tensor

    def condition_of(
        self, targets: torch.Tensor | None, values: torch.Tensor | None
    ) -> torch.Tensor:
        """``(B,)`` group run for actions ``targets (B, 11)`` bool, ``values (B, 11)`` (module
        docstring: the targeted variable with a condition and the largest ``|value|``)."""
        b = self.used.shape[0]
        if targets is None or values is None:
            return torch.zeros(b, dtype=torch.long, device=self.used.device)
        targets, values = targets.to(self.used.device), values.to(self.used.device)
        has = targets.bool() & (self.variable_groups >= 0).any(0)
        strength = torch.where(has, values.abs().float(), torch.full_like(values.float(), -1.0))
        j = strength.argmax(1)  # the first maximum: ties go to the lowest index
        sign = (values.gather(1, j[:, None])[:, 0] >= 0).long()
        group = self.variable_groups[sign, j]
        return torch.where(has.any(1), group, torch.zeros_like(group))

    def intervened(self, targets: torch.Tensor | None, values: torch.Tensor | None) -> torch.Tensor:
        """``(B, 11)`` bool: the variables the experiment run for these actions intervenes on."""
        return self.group_targets[self.condition_of(targets, values)]

    def sample(
        self, rng: BatchedRNG, n: int, targets: torch.Tensor | None, values: torch.Tensor | None
    ) -> torch.Tensor:
        """``(B, n, 11)`` cells of the condition each action maps to, without replacement
        (``rng`` is unused: the pools' order was drawn at reset)."""
        group = self.condition_of(targets, values)
        start = self.used.gather(1, group[:, None])  # (B, 1)
        if bool((start[:, 0] + n > self.sizes[group]).any()):
            raise RuntimeError(
                f"a condition's pool has fewer than {n} cells left (check_design should have "
                "refused this budget)"
            )
        position = start + torch.arange(n, device=start.device)  # (B, n)
        rows = self.order[
            torch.arange(len(group), device=group.device)[:, None], group[:, None], position
        ]
        self.used.scatter_add_(1, group[:, None], torch.full_like(start, n))
        return self.data[rows]
