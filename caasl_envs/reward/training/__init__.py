"""Training reward models on a simulator's prior: dataset samplers and targets
(:mod:`~caasl_envs.reward.training.data`), the trainer and its configuration
(:mod:`~caasl_envs.reward.training.trainer`), command-line options built from the configuration
dataclasses (:mod:`~caasl_envs.reward.training.options`) and the command lines.

``caasl-train-reward`` (:mod:`caasl_envs.reward.training.train`) trains on linear SCMs,
``python -m caasl_envs.reward.training.train_sergio`` on SERGIO. Nothing here is imported by the
environments: the runtime models live one level up, in :mod:`caasl_envs.reward`.
"""
