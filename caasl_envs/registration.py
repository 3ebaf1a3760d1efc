"""The registered environment ids (one namespace, ``caasl/``; table in the README)."""

from __future__ import annotations

import gymnasium as gym

_LINEAR = {"simulator": "linear", "d": 10, "n0": 50, "budget": 10, "samples_per_step": 1}
_RFF = {
    **_LINEAR,
    "simulator": "rff",
    "graph": "erdos_renyi",
    "graph_degree": 3.0,
    "noise": "gauss",
}

#: id -> default kwargs. Every kwarg can be overridden in ``gym.make(id, **kwargs)``.
ENV_IDS: dict[str, dict] = {
    "caasl/LinearGaussian-v0": {**_LINEAR, "graph": "erdos_renyi", "graph_degree": 3.0},
    "caasl/LinearGaussianShift-v0": {
        **_LINEAR,
        "graph": "erdos_renyi",
        "graph_degree": 3.0,
        "intervention": "shift",
    },
    "caasl/LinearGaussianScaleFree-v0": {**_LINEAR, "graph": "scale_free", "graph_degree": 3.0},
    "caasl/SERGIO-v0": {
        **_LINEAR,
        "simulator": "sergio",
        "graph": "erdos_renyi",
        "graph_degree": 3.0,
        "intervention": "knockout",
        "technical_noise": "10x-chromium-mini",
    },
    # Perturb-seq-like: each step is one knockout experiment measured on 10 cells, on sparse
    # networks (ER degree 1); the numbers behind each choice are in the README and BENCHMARKS.md
    # ("SERGIO: how much a knockout experiment says about the graph").
    "caasl/SERGIOPerturbSeq-v0": {
        **_LINEAR,
        "simulator": "sergio",
        "samples_per_step": 10,
        "graph": "erdos_renyi",
        "graph_degree": 1.0,
        "intervention": "knockout",
        "technical_noise": "10x-chromium-mini",
        # trained for this setting; reads knockout cells (model card in caasl_envs/reward/weights)
        "reward_model": "avici-sergio-perturbseq-v0",
    },
    # Real and semi-real systems (caasl_envs/real; docs/real-data.md)
    "caasl/Sachs-v0": {
        "simulator": "sachs",
        "d": 11,
        "n0": 50,
        "budget": 10,
        "samples_per_step": 10,
        "reward_model": "exact-linear-gaussian",
    },
    "caasl/GeneNetwork-v0": {
        **_LINEAR,
        "simulator": "gene_network",
        "d": 12,
        "network": "ecoli70",
        "reward_model": "exact-linear-gaussian",
    },
    # AVICI's rff family (caasl_envs/scm/rff.py; docs/nonlinear.md)
    "caasl/NonlinearRFF-v0": {**_RFF},
    "caasl/NonlinearRFFShift-v0": {**_RFF, "intervention": "shift"},
}


def register_envs() -> None:
    """Register every id of :data:`ENV_IDS` (idempotent)."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="caasl_envs.env:CausalDesignEnv",
            vector_entry_point="caasl_envs.vector:CausalDesignVectorEnv",
            kwargs=dict(kwargs),
        )
