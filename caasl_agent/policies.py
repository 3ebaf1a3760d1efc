"""CAASLPolicy: an equivariant Tanh-Gaussian actor and an ensemble of per-variable critics.

Actions follow the environment layout ``[targets_0..d-1, values_0..d-1]`` (``a = 2`` entries per
variable) or ``[targets_0..d-1]`` (``a = 1``, target-only spaces such as SERGIO knockouts).
Internally every network works per variable: the action of variable ``j`` is
``(target_j, value_j)`` and is produced from, or paired with, variable ``j``'s embedding.
The original code paired the critic's action entries ``(2j, 2j+1)`` with variable ``j``, mixing
targets and values of different variables (defect 1, docs/design.md §6); here the pairing follows the
layout above. No weight depends on ``d``: the same policy acts on histories of any size, and
permuting the variables of an observation permutes the action the same way.

Reference: Annadani et al., "Amortized Active Causal Induction with Deep Reinforcement
Learning" (CAASL), NeurIPS 2024; docs/design.md §4 for the sizes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import SACPolicy
from torch import nn

from caasl_agent.cut_head import (
    CutEnergy,
    alternating_signs,
    atypical_signs,
    targeted_rows,
    valid_sums,
)
from caasl_agent.torch_layers import CAASLEncoder
from caasl_envs.histories import (
    batched_belief,
    batched_observation,
    history_space_dims,
    required_belief,
)

DEFAULT_ACTOR_ENCODER = dict(embed_dim=32, n_layers=4, n_heads=8, ff_dim=128, dropout=0.1)
DEFAULT_CRITIC_ENCODER = dict(embed_dim=32, n_layers=4, n_heads=8, ff_dim=64, dropout=0.0)
#: How the actor chooses targets: ``"mlp"``, each variable from its own embedding
#: (:class:`EquivariantActor`, the paper's actor); ``"cut"``, :class:`CutActor`.
TARGET_HEADS = ("mlp", "cut")
#: :class:`CutActor`'s rules that start from the alternating signs and make the targets' values
#: atypical of the data: rule -> ``metric`` of :func:`~caasl_agent.cut_head.atypical_signs`.
ATYPICAL_METRICS = {"atypical": "correlation", "mahalanobis": "mahalanobis"}
#: How :class:`CutActor` signs its values: alternating per variable, or one of the above.
VALUE_SIGNS = ("alternating", *ATYPICAL_METRICS)
#: :class:`CutActor`'s target means are its gains times this (see there).
CUT_MEAN_SCALE = 1.0 / 1.7
#: :class:`CutActor`'s value means are ``+-CUT_VALUE_MEAN`` by default (``tanh`` 0.995: the
#: largest magnitude is the most informative; 0.96 instead costs ~0.3 expected correct
#: entries; ``value_mean=10`` gives 1.0 in float32) ...
CUT_VALUE_MEAN = 3.0
#: ... with this log-std (sampled values stay within 0.99 of the mean's sign).
CUT_VALUE_LOG_STD = -3.0


def action_entries_per_variable(observation_space: spaces.Space, action_space: spaces.Space) -> int:
    """``a`` in ``action_space = Box(-1, 1, (a * d,))``: 2 for (target, value), 1 for target only."""
    _, d = history_space_dims(observation_space)
    if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
        raise ValueError(f"expected a 1-D Box action space, got {action_space}")
    if not (np.all(action_space.low == -1.0) and np.all(action_space.high == 1.0)):
        raise ValueError("CAASLPolicy needs the action space Box(-1, 1): got other bounds")
    size = action_space.shape[0]
    if size not in (d, 2 * d):
        raise ValueError(
            f"action size {size} is neither d={d} (targets) nor 2d={2 * d} (targets, values)"
        )
    return size // d


def per_variable_actions(actions: torch.Tensor, d: int) -> torch.Tensor:
    """Env layout ``(B, a * d)`` -> per-variable ``(B, d, a)``: row ``j`` is ``(target_j, value_j)``."""
    if actions.ndim != 2 or actions.shape[1] % d != 0:
        raise ValueError(
            f"actions must have shape (B, a * d) with d={d}, got {tuple(actions.shape)}"
        )
    return actions.reshape(actions.shape[0], -1, d).transpose(1, 2)


def env_layout_actions(per_variable: torch.Tensor) -> torch.Tensor:
    """Per-variable ``(B, d, a)`` -> env layout ``(B, a * d)`` = ``[targets..., values...]``."""
    return per_variable.transpose(1, 2).flatten(1)


class SquashedGaussianActor(BasePolicy):
    """Shared plumbing of the actors: a Tanh-Gaussian over the ``a * d`` action entries whose
    mean and log-std (``(B, a * d)``, env layout, pre-tanh) come from
    :meth:`get_action_dist_params`."""

    entries: int

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Box):
        super().__init__(observation_space, action_space, squash_output=True)
        self.entries = action_entries_per_variable(observation_space, action_space)
        # the action size of the distribution is only used to build layers, which we do not use
        self.action_dist = SquashedDiagGaussianDistribution(self.entries)

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor, dict]:
        raise NotImplementedError

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        mean, log_std, _ = self.get_action_dist_params(obs)
        if deterministic:  # the distribution's mode, without building the distribution
            return torch.tanh(mean)
        return self.action_dist.actions_from_params(mean, log_std)

    def action_log_prob(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled actions ``(B, a * d)`` and their log-probabilities ``(B,)``."""
        mean, log_std, _ = self.get_action_dist_params(obs)
        return self.action_dist.log_prob_from_params(mean, log_std)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self(observation, deterministic)


class EquivariantActor(SquashedGaussianActor):
    """Tanh-Gaussian actor: encoder -> shared per-variable MLP -> mean and log-std of ``a`` entries.

    :param observation_space: causal-design Dict observation space (any d works at run time).
    :param action_space: ``Box(-1, 1, (a * d,))``.
    :param encoder_kwargs: keyword arguments of :class:`CAASLEncoder`.
    :param net_arch: hidden sizes of the per-variable head.
    :param activation_fn: activation of the head.
    :param log_std_bounds: clamp of the log-std (the original work's ``(-20, 0)``).
    :param log_std_init: initial log-std (bias of the log-std output): ``log(sqrt(1/3))``.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        encoder_kwargs: dict[str, Any],
        net_arch: list[int],
        activation_fn: type[nn.Module] = nn.ReLU,
        log_std_bounds: tuple[float, float] = (-20.0, 0.0),
        log_std_init: float = math.log(math.sqrt(1.0 / 3.0)),
    ):
        super().__init__(observation_space, action_space)
        self.log_std_bounds = log_std_bounds
        self.encoder = CAASLEncoder(**encoder_kwargs)
        self.head = nn.Sequential(*create_mlp(self.encoder.embed_dim, -1, net_arch, activation_fn))
        width = net_arch[-1] if net_arch else self.encoder.embed_dim
        self.mu = nn.Linear(width, self.entries)
        self.log_std = nn.Linear(width, self.entries)
        nn.init.zeros_(self.log_std.weight)
        nn.init.constant_(self.log_std.bias, log_std_init)

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Mean and clamped log-std, both ``(B, a * d)`` in env layout (pre-tanh)."""
        latent = self.head(self.encoder(obs["history"], obs["mask"], obs.get("belief")))
        log_std = self.log_std(latent).clamp(*self.log_std_bounds)
        return env_layout_actions(self.mu(latent)), env_layout_actions(log_std), {}


class CutActor(SquashedGaussianActor):
    """Actor of the cut head (:mod:`caasl_agent.cut_head`): the target means are
    :data:`CUT_MEAN_SCALE` times the mean-field gains of a :class:`CutEnergy` of the
    observation's ``belief`` and history, with log-std 0, so that a sampled design flips
    variable ``j`` with about the logistic probability ``sigmoid(-|g_j|)`` (probit slope
    1.7); the values are ``+-tanh(CUT_VALUE_MEAN)`` (0.995), the sign alternating with each
    intervention on the variable (:func:`~caasl_agent.cut_head.alternating_signs`) or, with
    ``value_signs="atypical"``, chosen from there so that the values of the deterministic
    target set (positive gains) are jointly atypical of the data
    (:func:`~caasl_agent.cut_head.atypical_signs`; ``"mahalanobis"``: by the Mahalanobis
    metric), with log-std :data:`CUT_VALUE_LOG_STD`. Only the energy is learned.

    :param cut_kwargs: keyword arguments of :class:`CutEnergy`.
    :param value_signs: one of :data:`VALUE_SIGNS`.
    :param value_mean: the values' pre-``tanh`` mean magnitude (> 0).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        cut_kwargs: dict[str, Any] | None = None,
        value_signs: str = "alternating",
        value_mean: float = CUT_VALUE_MEAN,
    ):
        super().__init__(observation_space, action_space)
        if value_signs not in VALUE_SIGNS:
            raise ValueError(f"value_signs must be one of {VALUE_SIGNS}, got {value_signs!r}")
        number = isinstance(value_mean, (int, float)) and not isinstance(value_mean, bool)
        if not (number and 0 < value_mean < float("inf")):
            raise ValueError(f"value_mean must be a finite number > 0, got {value_mean!r}")
        self.cut = CutEnergy(**(cut_kwargs or {}))
        self.value_signs = value_signs
        self.value_mean = float(value_mean)

    def cut_energy(
        self,
        obs: PyTorchObs,
        tie_key: torch.Tensor | None = None,
        targeted: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair weights ``(B, d, d)`` and unary terms ``(B, d)`` of the observation
        (``tie_key``, ``targeted``: :func:`~caasl_agent.cut_head.valid_sums` and
        :func:`~caasl_agent.cut_head.targeted_rows` of the history, if known)."""
        belief = required_belief(obs.get("belief"), "the cut head")
        return self.cut(belief, obs["history"], obs["mask"], tie_key, targeted)

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Mean and log-std, both ``(B, a * d)`` in env layout (pre-tanh)."""
        # the label-free order of exact ties, shared by the energy, the local search and the
        # signs, and the rows' targets, shared by the energy and the signs: computed once
        tie_key = valid_sums(obs["history"], obs["mask"])
        targeted = targeted_rows(obs["history"], obs["mask"])
        gains = self.cut.decode(*self.cut_energy(obs, tie_key, targeted), tie_key)
        mean, log_std = [CUT_MEAN_SCALE * gains], [torch.zeros_like(gains)]
        if self.entries == 2:
            mean.append(self.value_mean * self.signs(obs, gains > 0, tie_key, targeted))
            log_std.append(torch.full_like(gains, CUT_VALUE_LOG_STD))
        return torch.cat(mean, 1), torch.cat(log_std, 1), {}

    def signs(
        self,
        obs: PyTorchObs,
        targets: torch.Tensor,
        tie_key: torch.Tensor | None = None,
        targeted: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The values' signs ``(B, d)`` for the target set ``targets (B, d)`` bool
        (``tie_key``, ``targeted``: :func:`~caasl_agent.cut_head.valid_sums` and
        :func:`~caasl_agent.cut_head.targeted_rows` of the history, if known)."""
        signs = alternating_signs(obs["history"], obs["mask"], targeted)
        if self.value_signs in ATYPICAL_METRICS:
            metric = ATYPICAL_METRICS[self.value_signs]
            signs = atypical_signs(obs["history"], obs["mask"], targets, signs, metric, tie_key)
        return signs


class VariableQNetwork(nn.Module):
    """One critic: own encoder, ``(embedding_j, target_j, value_j)`` -> MLP -> sum over ``j``."""

    def __init__(
        self,
        encoder_kwargs: dict[str, Any],
        entries: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
    ):
        super().__init__()
        self.encoder = CAASLEncoder(**encoder_kwargs)
        self.head = nn.Sequential(
            *create_mlp(self.encoder.embed_dim + entries, 1, net_arch, activation_fn)
        )

    def embed(self, obs: PyTorchObs) -> torch.Tensor:
        """Per-variable embeddings ``(B, d, D)``; they do not depend on the action."""
        return self.encoder(obs["history"], obs["mask"], obs.get("belief"))

    def q_from_embeddings(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``z (B, d, D)``, ``actions (B, a * d)`` -> ``Q (B, 1)``."""
        per_variable = per_variable_actions(actions, z.shape[1])
        return self.head(torch.cat([z, per_variable], dim=-1)).sum(dim=1)

    def forward(self, obs: PyTorchObs, actions: torch.Tensor) -> torch.Tensor:
        """``obs`` Dict, ``actions (B, a * d)`` -> ``Q (B, 1)``."""
        return self.q_from_embeddings(self.embed(obs), actions)


class EnsembleCritic(BaseModel):
    """``n_critics`` independent :class:`VariableQNetwork` (REDQ ensemble; 2 is clipped double Q)."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        encoder_kwargs: dict[str, Any],
        net_arch: list[int],
        activation_fn: type[nn.Module] = nn.ReLU,
        n_critics: int = 2,
    ):
        super().__init__(observation_space, action_space)
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1, got {n_critics}")
        entries = action_entries_per_variable(observation_space, action_space)
        self.n_critics = n_critics
        self.q_networks = nn.ModuleList(
            VariableQNetwork(encoder_kwargs, entries, net_arch, activation_fn)
            for _ in range(n_critics)
        )

    def forward(self, obs: PyTorchObs, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One ``(B, 1)`` Q-value per ensemble member."""
        return tuple(q(obs, actions) for q in self.q_networks)

    def subset(self, obs: PyTorchObs, actions: torch.Tensor, members: list[int]) -> torch.Tensor:
        """Q-values of the chosen members, stacked ``(B, len(members))``."""
        return torch.cat([self.q_networks[i](obs, actions) for i in members], dim=1)

    def action_gradient_q(self, obs: PyTorchObs, actions: torch.Tensor) -> torch.Tensor:
        """All members' Q-values ``(B, n_critics)`` with gradients to ``actions`` only.

        For the actor loss: the encoders see no action, so they run without autograd, which
        gives the same actor gradient as a full forward at a fraction of the cost.
        """
        with torch.no_grad():
            embeddings = [q.embed(obs) for q in self.q_networks]
        return torch.cat(
            [q.q_from_embeddings(z, actions) for q, z in zip(self.q_networks, embeddings)], dim=1
        )


class CAASLPolicy(SACPolicy):
    """SAC policy for causal design: an actor (:class:`EquivariantActor` or
    :class:`CutActor`) and :class:`EnsembleCritic`.

    Works on observations of any ``d`` (and any number of rows ``N``): :meth:`predict` accepts
    a Dict ``{"history": (N, d, 2) or (B, N, d, 2), "mask": (N,) or (B, N)}`` whatever the ``d``
    of the training env, and returns actions ``(a * d,)`` or ``(B, a * d)``.

    :param observation_space: causal-design Dict observation space.
    :param action_space: ``Box(-1, 1, (a * d,))`` with ``a`` 2 (targets, values) or 1 (targets).
    :param lr_schedule: learning-rate schedule of both optimizers (:class:`~caasl_agent.CAASL`
        sets the critic's own rate).
    :param net_arch: hidden sizes of the per-variable actor and critic heads (reference: 128, 128).
    :param activation_fn: activation of the heads.
    :param actor_encoder_kwargs: :class:`CAASLEncoder` kwargs of the actor (overrides the reference
        sizes of docs/design.md §4 key by key).
    :param critic_encoder_kwargs: same for each critic (each critic has its own encoder).
    :param standardization: input standardisation of every encoder: ``"none"`` (real-valued
        data, the default), ``"zscore"``, or ``"counts"`` for count data such as SERGIO
        (AVICI's log2-CPM, see :func:`caasl_agent.torch_layers.standardize_history`).
    :param log_std_bounds: clamp of the actor's log-std.
    :param target_head: the actor, ``"mlp"`` (:class:`EquivariantActor`) or ``"cut"``
        (:class:`CutActor`, which needs ``observe_belief=True`` environments and ignores
        ``actor_encoder_kwargs``, ``net_arch`` and ``log_std_bounds``).
    :param cut_kwargs: keyword arguments of :class:`~caasl_agent.cut_head.CutEnergy`.
    :param value_signs: how :class:`CutActor` signs its values, one of :data:`VALUE_SIGNS`.
    :param value_mean: :class:`CutActor`'s pre-``tanh`` value magnitude.
    :param n_critics: size ``N`` of the critic ensemble.
    :param optimizer_class: optimizer of actor and critics.
    :param optimizer_kwargs: extra optimizer kwargs.
    :param use_sde: must be False (SB3 passes it to every SAC policy).
    """

    actor: SquashedGaussianActor
    critic: EnsembleCritic
    critic_target: EnsembleCritic

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        actor_encoder_kwargs: dict[str, Any] | None = None,
        critic_encoder_kwargs: dict[str, Any] | None = None,
        standardization: str = "none",
        log_std_bounds: tuple[float, float] = (-20.0, 0.0),
        target_head: str = "mlp",
        cut_kwargs: dict[str, Any] | None = None,
        value_signs: str = "alternating",
        value_mean: float = CUT_VALUE_MEAN,
        n_critics: int = 2,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        use_sde: bool = False,
    ):
        if use_sde:
            raise ValueError("CAASLPolicy does not support gSDE (use_sde=True)")
        if target_head not in TARGET_HEADS:
            raise ValueError(f"target_head must be one of {TARGET_HEADS}, got {target_head!r}")
        if target_head != "cut" and (value_signs, value_mean) != ("alternating", CUT_VALUE_MEAN):
            raise ValueError(
                "value_signs and value_mean are options of target_head='cut', got "
                f"target_head={target_head!r}"
            )
        # SACPolicy.__init__ builds flat-MLP kwargs; only the BasePolicy part is wanted here.
        BasePolicy.__init__(
            self,
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
        )
        action_entries_per_variable(observation_space, action_space)
        self.net_arch = [128, 128] if net_arch is None else list(net_arch)
        self.activation_fn = activation_fn
        self.actor_encoder_kwargs = dict(actor_encoder_kwargs or {})
        self.critic_encoder_kwargs = dict(critic_encoder_kwargs or {})
        self.standardization = standardization
        self.log_std_bounds = tuple(log_std_bounds)
        self.target_head = target_head
        self.cut_kwargs = dict(cut_kwargs or {})
        self.value_signs = value_signs
        self.value_mean = value_mean
        self.n_critics = n_critics
        self.share_features_extractor = False
        self._build(lr_schedule)

    def _network_args(self, default_encoder: dict[str, Any], encoder: dict[str, Any]) -> tuple:
        """Positional arguments shared by the actor and critic constructors."""
        encoder_kwargs = {**default_encoder, **encoder, "standardization": self.standardization}
        return (
            self.observation_space,
            self.action_space,
            encoder_kwargs,
            self.net_arch,
            self.activation_fn,
        )

    def make_actor(self, features_extractor=None) -> SquashedGaussianActor:
        if self.target_head == "cut":
            actor = CutActor(
                self.observation_space,
                self.action_space,
                self.cut_kwargs,
                self.value_signs,
                self.value_mean,
            )
            return actor.to(self.device)
        args = self._network_args(DEFAULT_ACTOR_ENCODER, self.actor_encoder_kwargs)
        return EquivariantActor(*args, self.log_std_bounds).to(self.device)

    def make_critic(self, features_extractor=None) -> EnsembleCritic:
        args = self._network_args(DEFAULT_CRITIC_ENCODER, self.critic_encoder_kwargs)
        return EnsembleCritic(*args, self.n_critics).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            lr_schedule=self._dummy_schedule,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            actor_encoder_kwargs=self.actor_encoder_kwargs,
            critic_encoder_kwargs=self.critic_encoder_kwargs,
            standardization=self.standardization,
            log_std_bounds=self.log_std_bounds,
            target_head=self.target_head,
            cut_kwargs=self.cut_kwargs,
            value_signs=self.value_signs,
            value_mean=self.value_mean,
            n_critics=self.n_critics,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )

    def obs_to_tensor(self, observation: dict[str, np.ndarray]) -> tuple[PyTorchObs, bool]:
        """Dict observation of any ``d`` and ``N`` -> batched tensors, and whether it was batched.

        Replaces SB3's check against the training ``observation_space`` (which would reject
        other ``d``) with a check of the causal-design structure.
        """
        history, mask, single = batched_observation(observation)
        device = self.device  # SB3 looks it up from the parameters at every access
        tensors = {
            "history": torch.as_tensor(history, device=device),
            "mask": torch.as_tensor(mask, device=device),
        }
        belief = batched_belief(observation, history.shape[2])
        if belief is not None:
            tensors["belief"] = torch.as_tensor(belief, device=device)
        return tensors, not single

    def set_training_mode(self, mode: bool) -> None:
        """SB3's switch between training and evaluation mode, skipped when the policy, its
        actor and its critics are in ``mode`` already: :meth:`predict` asks for it at every
        call, and walking every submodule (the critics' encoders included) cost a quarter of a
        cut actor's design at d = 10, batch 1 (0.4-0.8 ms). A submodule switched on its own,
        below the actor or the critics, is not looked for."""
        if self.training == mode and self.actor.training == mode and self.critic.training == mode:
            return
        super().set_training_mode(mode)

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions in ``[-1, 1]``: ``(a * d,)`` for one observation, ``(B, a * d)`` for a batch."""
        self.set_training_mode(False)
        obs, batched = self.obs_to_tensor(observation)
        with torch.inference_mode():
            actions = self._predict(obs, deterministic=deterministic).cpu().numpy()
        return (actions if batched else actions[0]), state
