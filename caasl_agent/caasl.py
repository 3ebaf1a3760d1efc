"""CAASL: soft actor-critic with a REDQ critic ensemble, for causal experimental design.

A subclass of SB3's :class:`~stable_baselines3.SAC` (so callbacks, logging, TensorBoard,
``progress_bar``, ``save``/``load`` work unchanged) that adds:

* REDQ knobs (Chen et al., "Randomized Ensembled Double Q-Learning", ICLR 2021): an ensemble
  of ``ensemble_size`` (N) critics, the TD target takes the min over a random subset of
  ``target_subset_size`` (M) target critics, and the actor and entropy coefficient are updated
  once every ``critic_updates_per_actor_update`` (G) critic updates;
* separate learning rates for actor, critics and entropy coefficient;
* a target entropy annealed linearly from ``target_entropy`` to ``target_entropy_final``;
* :class:`~caasl_agent.buffers.HistoryReplayBuffer` by default (next observation stored as the
  appended rows), and the TD target evaluated on the *next* history with the *next* validity
  mask (the original code used the current mask: defect 2, docs/design.md §6);
* zero-shot use across ``d``: :meth:`predict` and :meth:`load` accept observations and envs of
  any number of variables (see :meth:`set_env`).

Reference: Annadani et al., "Amortized Active Causal Induction with Deep Reinforcement
Learning", NeurIPS 2024.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, GymEnv, Schedule
from stable_baselines3.common.utils import FloatSchedule, polyak_update, update_learning_rate

from caasl_agent.buffers import HistoryReplayBuffer
from caasl_agent.hyperparams import check_hyperparameters, check_learn
from caasl_agent.policies import CAASLPolicy
from caasl_agent.serialization import load_checked, safe_custom_objects
from caasl_envs.core import resolve_device
from caasl_envs.histories import history_space_dims


class CAASL(SAC):
    """REDQ-style SAC with :class:`~caasl_agent.CAASLPolicy` (see the module docstring).

    Unlike SB3 algorithms, ``env`` comes first and the policy defaults to ``"CAASLPolicy"``:
    ``CAASL(env)``. Every other SAC argument keeps its meaning; defaults follow docs/design.md §4
    where they do not depend on the compute budget (``gamma=0.9``, ``tau=1e-3``, actor lr 1e-3,
    critic lr 3e-5).

    :param env: the environment (SB3 VecEnv, gymnasium env or registered id).
    :param policy: policy class or alias.
    :param learning_rate: actor learning rate (float or schedule of the remaining progress).
    :param critic_learning_rate: critic learning rate.
    :param ent_coef_learning_rate: entropy-coefficient learning rate; ``None``: same as actor.
    :param ensemble_size: REDQ N, number of critics.
    :param target_subset_size: REDQ M, number of target critics the TD target takes the min of.
    :param critic_updates_per_actor_update: REDQ G.
    :param actor_q_reduction: how the actor loss reduces the ensemble: ``"mean"`` (REDQ) or
        ``"min"`` (SAC).
    :param target_entropy: ``"auto"`` (``-|A|``) or a float, the target entropy at the start.
    :param target_entropy_final: target entropy at the end of training (linear annealing in the
        training progress); ``None`` keeps it constant.
    :param replay_buffer_class: ``None`` selects :class:`~caasl_agent.buffers.HistoryReplayBuffer`.
    :param actor_warmup_steps: gradient steps that update the critics only (the actor and the
        entropy coefficient wait): after imitation, the critics learn the imitated policy's
        values before the actor follows them.
    :param imitation_coef: weight of an imitation term added to the actor loss
        (:func:`~caasl_agent.imitation.trainer.actor_imitation_loss` on a batch of teacher
        labels), decaying linearly to 0 over ``imitation_decay_steps`` actor-updating steps.
    :param imitation_decay_steps: see ``imitation_coef``.
    :param imitation_labels: folder of label chunks (``caasl imitate collect``) for the term.
    """

    policy_aliases: ClassVar[dict[str, type]] = {"CAASLPolicy": CAASLPolicy}
    policy: CAASLPolicy

    def __init__(
        self,
        env: GymEnv | str,
        policy: str | type[CAASLPolicy] = "CAASLPolicy",
        learning_rate: float | Schedule = 1e-3,
        critic_learning_rate: float | Schedule = 3e-5,
        ent_coef_learning_rate: float | Schedule | None = None,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1_000,
        batch_size: int = 256,
        tau: float = 1e-3,
        gamma: float = 0.9,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        ensemble_size: int = 2,
        target_subset_size: int = 2,
        critic_updates_per_actor_update: int = 1,
        actor_q_reduction: str = "mean",
        ent_coef: str | float = "auto",
        target_entropy: str | float = "auto",
        target_entropy_final: float | None = None,
        actor_warmup_steps: int = 0,
        imitation_coef: float = 0.0,
        imitation_decay_steps: int = 1,
        imitation_labels: str | None = None,
        target_update_interval: int = 1,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        check_hyperparameters(locals())  # one-line errors naming the argument (hyperparams.py)
        if env is None and _init_setup_model:  # SB3's load builds the model without an env
            raise ValueError(
                "CAASL needs an env: a Gymnasium env, a VecEnv or a registered id such as "
                "'caasl/LinearGaussian-v0' (a saved model loads without one: CAASL.load(path))"
            )
        if not 1 <= target_subset_size <= ensemble_size:
            raise ValueError(
                f"target_subset_size (M={target_subset_size}) must be in [1, ensemble_size={ensemble_size}]"
            )
        if critic_updates_per_actor_update < 1:
            raise ValueError(
                f"critic_updates_per_actor_update must be >= 1, got {critic_updates_per_actor_update}"
            )
        if actor_q_reduction not in ("mean", "min"):
            raise ValueError(
                f"actor_q_reduction must be 'mean' or 'min', got {actor_q_reduction!r}"
            )
        if policy_kwargs and "n_critics" in policy_kwargs:
            raise ValueError(
                "set the ensemble size with ensemble_size, not policy_kwargs['n_critics']"
            )
        self.ensemble_size = ensemble_size
        self.target_subset_size = target_subset_size
        self.critic_updates_per_actor_update = critic_updates_per_actor_update
        self.actor_q_reduction = actor_q_reduction
        self.critic_learning_rate = critic_learning_rate
        self.ent_coef_learning_rate = (
            learning_rate if ent_coef_learning_rate is None else ent_coef_learning_rate
        )
        self.target_entropy_final = target_entropy_final
        self.actor_warmup_steps = int(actor_warmup_steps)
        self.imitation_coef = float(imitation_coef)
        self.imitation_decay_steps = max(int(imitation_decay_steps), 1)
        self.imitation_labels = None if imitation_labels is None else str(imitation_labels)
        if self.imitation_coef > 0 and self.imitation_labels is None:
            raise ValueError(
                "imitation_coef > 0 needs imitation_labels, a folder of label chunks "
                "(`caasl imitate rl` sets it)"
            )
        self._imitation_data = None
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            replay_buffer_class=replay_buffer_class or HistoryReplayBuffer,
            replay_buffer_kwargs=replay_buffer_kwargs,
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self.policy_kwargs = {**self.policy_kwargs, "n_critics": self.ensemble_size}
        super()._setup_model()
        # a loaded model brings its initial target entropy; self.target_entropy is annealed
        if getattr(self, "target_entropy_initial", None) is None:
            self.target_entropy_initial = self.target_entropy
        self.critic_lr_schedule = FloatSchedule(self.critic_learning_rate)
        self.ent_coef_lr_schedule = FloatSchedule(self.ent_coef_learning_rate)
        update_learning_rate(self.critic.optimizer, self.critic_lr_schedule(1.0))
        if self.ent_coef_optimizer is not None:
            update_learning_rate(self.ent_coef_optimizer, self.ent_coef_lr_schedule(1.0))

    def _current_target_entropy(self) -> float:
        if self.target_entropy_final is None:
            return self.target_entropy_initial
        done = 1.0 - self._current_progress_remaining
        return (1.0 - done) * self.target_entropy_initial + done * self.target_entropy_final

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        progress = self._current_progress_remaining
        rates = {
            "learning_rate": self.lr_schedule(progress),
            "critic_learning_rate": self.critic_lr_schedule(progress),
        }
        update_learning_rate(self.actor.optimizer, rates["learning_rate"])
        update_learning_rate(self.critic.optimizer, rates["critic_learning_rate"])
        if self.ent_coef_optimizer is not None:
            rates["ent_coef_learning_rate"] = self.ent_coef_lr_schedule(progress)
            update_learning_rate(self.ent_coef_optimizer, rates["ent_coef_learning_rate"])
        for name, rate in rates.items():
            self.logger.record(f"train/{name}", rate)
        self.target_entropy = self._current_target_entropy()

        critic_losses, actor_losses, ent_coef_losses, ent_coefs, q_means = [], [], [], [], []
        for step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            ent_coef = self._entropy_coefficient()

            target_q = self._td_target(data, ent_coef)
            current_q = self.critic(data.observations, data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            critic_losses.append(critic_loss.item())
            q_means.append(torch.cat(current_q, dim=1).mean().item())

            if (self._n_updates + step) % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)

            warm = self._n_updates + step >= self.actor_warmup_steps
            if warm and (self._n_updates + step + 1) % self.critic_updates_per_actor_update == 0:
                actor_loss, ent_coef_loss = self._update_actor_and_entropy(
                    data.observations, ent_coef
                )
                actor_losses.append(actor_loss)
                ent_coefs.append(ent_coef.item())
                if ent_coef_loss is not None:
                    ent_coef_losses.append(ent_coef_loss)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        self.logger.record("train/q_mean", np.mean(q_means))
        self.logger.record("train/target_entropy", self.target_entropy)
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
            self.logger.record("train/ent_coef", np.mean(ent_coefs))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))

    def _td_target(self, data: DictReplayBufferSamples, ent_coef: torch.Tensor) -> torch.Tensor:
        """REDQ TD target ``(B, 1)``, without gradient.

        ``r + gamma (1 - done) (min_{i in S} Q'_i(s', a') - alpha log pi(a' | s'))`` with
        ``a' ~ pi(. | s')`` on the next history and its next mask, ``Q'_i`` the target critics
        and ``S`` one uniformly random subset of ``target_subset_size`` of them, drawn afresh
        for each batch from torch's global generator (seeded by ``seed``).
        """
        with torch.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
            members = torch.randperm(self.ensemble_size)[: self.target_subset_size].tolist()
            next_q = self.critic_target.subset(data.next_observations, next_actions, members)
            next_q = next_q.min(dim=1, keepdim=True).values - ent_coef * next_log_prob.reshape(
                -1, 1
            )
            return data.rewards + (1 - data.dones) * self.gamma * next_q

    def _actor_q(
        self, observations: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> torch.Tensor:
        """The ensemble's value ``(B, 1)`` of ``actions (B, A)`` for the actor loss: the mean or
        the min over all critics (``actor_q_reduction``), with gradients to ``actions`` only."""
        q = self.critic.action_gradient_q(observations, actions)  # (B, N)
        if self.actor_q_reduction == "mean":
            return q.mean(dim=1, keepdim=True)
        return q.min(dim=1, keepdim=True).values

    def _entropy_coefficient(self) -> torch.Tensor:
        if self.log_ent_coef is not None:
            return torch.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor

    def _update_actor_and_entropy(
        self, observations: dict[str, torch.Tensor], ent_coef: torch.Tensor
    ) -> tuple[float, float | None]:
        """One actor step (and entropy-coefficient step when learned); returns the losses."""
        actions_pi, log_prob = self.actor.action_log_prob(observations)
        log_prob = log_prob.reshape(-1, 1)
        ent_coef_loss = None
        if self.ent_coef_optimizer is not None:
            loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
            self.ent_coef_optimizer.zero_grad()
            loss.backward()
            self.ent_coef_optimizer.step()
            ent_coef_loss = loss.item()
        actor_loss = (ent_coef * log_prob - self._actor_q(observations, actions_pi)).mean()
        actor_loss = actor_loss + self._imitation_term()
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()
        return actor_loss.item(), ent_coef_loss

    def _imitation_term(self) -> torch.Tensor | float:
        """The decaying imitation term of the actor loss (0 once decayed or when unused)."""
        done = (self._n_updates - self.actor_warmup_steps) / self.imitation_decay_steps
        coef = self.imitation_coef * max(0.0, 1.0 - done)
        if coef <= 0:
            return 0.0
        from caasl_agent.imitation import LabelDataset, actor_imitation_loss, load_chunks

        if self._imitation_data is None:
            self._imitation_data = LabelDataset(load_chunks(Path(self.imitation_labels)))
        batch = self._imitation_data.sample(self.batch_size, np.random.default_rng(self._n_updates))
        loss, _ = actor_imitation_loss(self, batch)
        self.logger.record("train/imitation_coef", coef)
        return coef * loss

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """Attach ``env``; it may have another ``d`` (or ``N``) or number of envs than before.

        The weights do not depend on ``d``. When the spaces differ, the model adopts the new
        spaces and rescales the target entropy by the change of action size; when the spaces or
        the number of envs differ, it starts an empty replay buffer of the new shape (old
        transitions cannot be mixed with new ones). Evaluation alone needs none of this:
        :meth:`predict` takes observations of any ``d``.
        """
        env = self._wrap_env(env, self.verbose)
        same_spaces = (
            env.observation_space == self.observation_space
            and env.action_space == self.action_space
        )
        if not same_spaces:
            self._adopt_spaces(env.observation_space, env.action_space)
        if not same_spaces or env.num_envs != self.n_envs:
            self.n_envs = env.num_envs
            if self.replay_buffer is not None:
                self.replay_buffer = self.replay_buffer_class(
                    self.buffer_size,
                    self.observation_space,
                    self.action_space,
                    device=self.device,
                    n_envs=self.n_envs,
                    optimize_memory_usage=self.optimize_memory_usage,
                    **self.replay_buffer_kwargs,
                )
        super().set_env(env, force_reset)

    def _adopt_spaces(self, observation_space: spaces.Dict, action_space: spaces.Box) -> None:
        """Switch to the spaces of an env of another ``d`` (same action entries per variable)."""
        old_d, new_d = (
            history_space_dims(self.observation_space)[1],
            history_space_dims(observation_space)[1],
        )
        old_size, new_size = self.action_space.shape[0], action_space.shape[0]
        if old_size * new_d != new_size * old_d:
            raise ValueError(
                f"the env's action space {action_space} for d={new_d} does not have the model's "
                f"{old_size // old_d} action entries per variable"
            )
        scale = new_size / old_size
        self.target_entropy_initial *= scale
        self.target_entropy *= scale
        if self.target_entropy_final is not None:
            self.target_entropy_final *= scale
        self.observation_space, self.action_space = observation_space, action_space
        for module in (self.policy, self.actor, self.critic, self.critic_target):
            module.observation_space, module.action_space = observation_space, action_space

    @classmethod
    def load(
        cls,
        path,
        env: GymEnv | None = None,
        device: torch.device | str = "auto",
        trust_pickles: bool = False,
        **kwargs,
    ) -> CAASL:
        """SB3 ``load``; ``env`` may have any ``d`` and number of envs (attached with :meth:`set_env`).

        Safe by default: the zip's pickled entries are rebuilt from an allow-list
        (:mod:`caasl_agent.serialization`), so a crafted file runs no code; ``trust_pickles=True``
        unpickles them as SB3 does, for a file one trusts. ``device`` must exist here
        (``"auto"`` falls back to the CPU; an absent GPU is a ``ValueError``).
        """
        force_reset = kwargs.pop("force_reset", True)
        resolve_device(device)
        if not trust_pickles:
            kwargs["custom_objects"] = safe_custom_objects(path, kwargs.get("custom_objects"))
        model = load_checked(super().load, path, env=None, device=device, **kwargs)
        if env is not None:
            model.set_env(env, force_reset=force_reset)
        return model

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int | None = 4,
        tb_log_name: str = "SAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> CAASL:
        """SB3's ``learn``, after :func:`~caasl_agent.hyperparams.check_learn` (positive
        ``total_timesteps``, every hyper-parameter in range)."""
        check_learn(self, total_timesteps, log_interval)
        return super().learn(
            total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar
        )

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "critic_lr_schedule",
            "ent_coef_lr_schedule",
            "_imitation_data",
        ]
