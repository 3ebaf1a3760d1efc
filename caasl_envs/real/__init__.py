"""Real and semi-real systems: a pool of Sachs et al. (2005) flow-cytometry cells
(:mod:`caasl_envs.real.sachs`, ``simulator="sachs"``, ``caasl/Sachs-v0``) and sub-networks of
linear-Gaussian networks fitted to real data (:mod:`caasl_envs.real.networks`,
``simulator="gene_network"``, ``caasl/GeneNetwork-v0``). The data ship with the package
(:mod:`caasl_envs.real.data`); nothing is downloaded. User guide: docs/real-data.md.
"""

from caasl_envs.real.networks import NETWORKS, GeneNetworkPrior, load_network
from caasl_envs.real.sachs import CONDITIONS, SachsPool, SachsPrior, load_sachs, reference_graph

__all__ = [
    "CONDITIONS",
    "NETWORKS",
    "GeneNetworkPrior",
    "SachsPool",
    "SachsPrior",
    "load_network",
    "load_sachs",
    "reference_graph",
]
