"""RL Zoo hyper-parameters for the registered environments (off-policy agents: SAC, TD3, TQC).

``python -m rl_zoo3.train --algo sac --env caasl/LinearGaussian-v0 --gym-packages caasl_envs
--conf-file caasl_envs.rl_zoo``. The settings are those of the ``cpu-quick`` CAASL preset
(batch 32, gamma 0.9, 16k steps) with the Zoo's ``MultiInputPolicy``, which the dict
observation needs (the Zoo's default ``MlpPolicy`` rejects it).
"""

from __future__ import annotations

from caasl_envs.registration import ENV_IDS

_OFF_POLICY = {
    "policy": "MultiInputPolicy",
    "n_timesteps": 16_000,
    "learning_starts": 800,
    "buffer_size": 100_000,
    "batch_size": 32,
    "gamma": 0.9,
    "learning_rate": 1e-3,
    "policy_kwargs": "dict(net_arch=[64, 64])",
}

#: ``{env id: hyper-parameters}``, the layout ``rl_zoo3`` reads from ``--conf-file``
hyperparams: dict[str, dict] = {env_id: dict(_OFF_POLICY) for env_id in ENV_IDS}

__all__ = ["hyperparams"]
