"""The batched environment as a Stable-Baselines3 ``VecEnv``.

SB3 cannot consume a Gymnasium ``VectorEnv``; this adapter exposes
:class:`~caasl_envs.vector.CausalDesignVectorEnv` through SB3's API with SB3's same-step
autoreset (``terminal_observation`` in the infos).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from caasl_envs.registration import ENV_IDS
from caasl_envs.vector import CausalDesignVectorEnv


class SB3VecEnvAdapter(VecEnv):
    """Stable-Baselines3 view of a :class:`CausalDesignVectorEnv`.

    ``seed(s)`` gives environment ``i`` the seed ``s + i`` at the next reset, as SB3's
    ``DummyVecEnv`` does, so results match ``DummyVecEnv`` over single environments.
    """

    def __init__(self, venv: CausalDesignVectorEnv):
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, info = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self.reset_infos = self._split(info)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        infos = self._split(info)
        if terminated.all():
            for i, env_info in enumerate(infos):
                env_info["terminal_observation"] = {k: v[i] for k, v in obs.items()}
                env_info["TimeLimit.truncated"] = False
            obs, reset_info = self.venv.reset()
            self.reset_infos = self._split(reset_info)
        return obs, reward.astype(np.float32), terminated | truncated, infos

    def _split(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """Gymnasium's dict of arrays -> SB3's list of per-environment dicts."""
        keys = [k for k in info if not k.startswith("_")]
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for key in keys:
            value = info[key]
            if isinstance(value, dict):
                columns = {k: v.tolist() for k, v in value.items() if not k.startswith("_")}
                for i, env_info in enumerate(out):
                    env_info[key] = {k: v[i] for k, v in columns.items()}
            else:
                for env_info, v in zip(out, value.tolist(), strict=True):
                    env_info[key] = v
        return out

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
        result = getattr(self.venv, method_name)(*args, **kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def _get_indices(self, indices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else indices


def make_sb3_vec_env(
    env_id: str, n_envs: int = 1, seed: int | None = 0, monitor: bool = True, **kwargs: Any
) -> VecEnv:
    """A registered causal design env as a batched SB3 ``VecEnv``.

    :param env_id: a registered id, e.g. ``"caasl/LinearGaussian-v0"``.
    :param n_envs: number of environments stepped as one batch.
    :param seed: environment ``i`` gets seed ``seed + i`` at the first reset.
    :param monitor: wrap in SB3's ``VecMonitor`` (episode returns in the logs).
    :param kwargs: override the id's environment kwargs.
    """
    spec = gym.spec(env_id)
    if spec.vector_entry_point not in (
        "caasl_envs.vector:CausalDesignVectorEnv",
        CausalDesignVectorEnv,
    ):
        raise ValueError(
            f"{env_id!r} is not a causal design env (its vector_entry_point is "
            f"{spec.vector_entry_point!r}); use one of {', '.join(ENV_IDS)} or an id registered "
            "with vector_entry_point='caasl_envs.vector:CausalDesignVectorEnv'"
        )
    venv = CausalDesignVectorEnv(n_envs, **{**spec.kwargs, **kwargs})
    env: VecEnv = SB3VecEnvAdapter(venv)
    if seed is not None:
        env.seed(seed)
    return VecMonitor(env) if monitor else env
