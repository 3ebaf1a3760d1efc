"""Training reward models on a simulator's prior: dataset samplers, the trainer and the CLIs.

``caasl-train-reward`` (:mod:`caasl_envs.reward.training.train`) trains on linear SCMs,
``python -m caasl_envs.reward.training.train_sergio`` on SERGIO. Nothing here is imported by the
environments: the runtime models live one level up, in :mod:`caasl_envs.reward`.
"""
