"""Imitation of a planning designer: DAgger-style label collection and the imitation loss.

A *teacher* is any harness agent (default ``eig-batch``, the greedy batch expected-information
gain planner of :mod:`caasl_agent.bench.eig`). Collection rolls out episodes in which every
environment, at every step, executes the teacher's design with probability ``beta`` and the
*explorer*'s otherwise (a random designer in round 0, the current policy in later DAgger
rounds), and labels **every** visited history with the teacher's design, so that the labels
cover the states the learner itself reaches.

**Label chunks.** Collection is split into chunks of ``episodes_per_chunk`` episodes of one
setting (a registered id plus overrides). Chunk ``i`` of a run is fixed by ``(seed, i)``: its
environment seeds, the teacher's and explorer's seeds and the teacher-or-explorer coin flips,
so chunks can be collected in any order, by several processes (``shard``), and a resumed
collection writes the same labels as an uninterrupted one. A chunk is one ``.npz`` file written
atomically (a temporary file, then :func:`os.replace`) with

* ``history (E, N, d, 2)`` float32, each episode's final history (the history seen at step
  ``t`` is its first ``rows[t]`` rows, since experiments only append rows),
* ``rows (T,)`` int64, the valid rows when step ``t``'s design was chosen,
* ``targets (E, T, d)`` bool and ``values (E, T, d)`` float32 in ``[-1, 1]``, the teacher's
  design at every step (values before the environment's ``value_scale``),
* ``belief (E, T, d, d)`` float32, the environment's edge probabilities at step ``t`` (its
  reward model's posterior of the history the design was chosen on),
* ``executed (E, T)`` bool, whether the teacher's design was the one executed,
* ``meta``, a JSON string: format, run fingerprint, chunk index, setting, teacher, beta, round.

A chunk whose format or fingerprint does not match the run is refused with an error naming
the file; nothing already collected is overwritten (``overwrite=True`` clears the folder
first).

The labels are fitted by :mod:`caasl_agent.imitation.trainer`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import caasl_envs  # noqa: F401  (registers the environment ids)
from caasl_envs.histories import has_belief
from caasl_envs.vector import CausalDesignVectorEnv

__all__ = [
    "FORMAT",
    "LabelChunk",
    "LabelSetting",
    "check_teacher",
    "collect",
    "collect_chunk",
    "load_chunk",
    "load_chunks",
    "save_chunk",
]

FORMAT = "caasl-labels-v1"
_ARRAYS = ("history", "rows", "targets", "values", "belief", "executed")


@dataclass(frozen=True)
class LabelSetting:
    """One environment configuration of the collection mix.

    :param name: short name (recorded in each chunk).
    :param env_id: a registered environment id.
    :param overrides: keyword arguments replacing the id's defaults.
    :param weight: relative frequency of the setting among the chunks.
    """

    name: str
    env_id: str
    overrides: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0

    def env_kwargs(self) -> dict[str, Any]:
        if self.env_id not in gym.registry:
            raise ValueError(f"setting {self.name!r}: unknown environment id {self.env_id!r}")
        return {**gym.spec(self.env_id).kwargs, **self.overrides}


@dataclass
class LabelChunk:
    """The labels of one chunk (shapes in the module docstring; ``E`` episodes, ``T`` steps)."""

    history: np.ndarray
    rows: np.ndarray
    targets: np.ndarray
    values: np.ndarray
    belief: np.ndarray
    executed: np.ndarray
    meta: dict[str, Any]


def run_fingerprint(settings: Sequence[LabelSetting], teacher: Teacher, seed: int) -> str:
    """A short hash of what fixes the labels: settings, teacher and seed."""
    text = json.dumps(
        {"settings": [asdict(s) for s in settings], "teacher": teacher_name(teacher), "seed": seed},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def chunk_path(folder: Path, round_: int, index: int) -> Path:
    return Path(folder) / f"labels-r{round_}-{index:05d}.npz"


def save_chunk(chunk: LabelChunk, path: Path) -> None:
    """Write ``chunk`` to ``path`` atomically (never a half-written file under that name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                **{k: getattr(chunk, k) for k in _ARRAYS},
                meta=np.array(json.dumps(chunk.meta)),
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_chunk(path: Path, fingerprint: str | None = None) -> LabelChunk:
    """Read and check one chunk; ``ValueError`` naming ``path`` if it is corrupt, of another
    format, or (given ``fingerprint``) of another run."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in _ARRAYS}
            meta = json.loads(str(data["meta"]))
    except Exception as error:  # zipfile, KeyError, JSON: all mean the file is unusable
        raise ValueError(f"{path}: not a readable label chunk ({error})") from error
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: label format {meta.get('format')!r}, expected {FORMAT!r}")
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{path}: collected by another run (fingerprint {meta.get('fingerprint')!r}, this "
            f"run's {fingerprint!r}); use another folder or --overwrite"
        )
    chunk = LabelChunk(**arrays, meta=meta)
    _check_shapes(chunk, path)
    return chunk


def _check_shapes(chunk: LabelChunk, path: Path) -> None:
    e, t, d = chunk.targets.shape
    expected = {
        "history": (e, chunk.history.shape[1], d, 2),
        "rows": (t,),
        "values": (e, t, d),
        "belief": (e, t, d, d),
        "executed": (e, t),
    }
    for name, shape in expected.items():
        if getattr(chunk, name).shape != shape:
            raise ValueError(
                f"{path}: {name} has shape {getattr(chunk, name).shape}, expected {shape}"
            )
    if int(chunk.rows.max()) > chunk.history.shape[1]:
        raise ValueError(f"{path}: rows exceed the stored history")


def load_chunks(folder: Path, fingerprint: str | None = None) -> list[LabelChunk]:
    """Every chunk under ``folder`` (sorted by name), each checked by :func:`load_chunk`."""
    return [load_chunk(p, fingerprint) for p in sorted(Path(folder).glob("labels-*.npz"))]


#: A teacher: a harness baseline's name, or ``(vec, seed) -> agent`` with SB3's ``predict``.
Teacher = str | Callable[[CausalDesignVectorEnv, int], Any]


def teacher_name(teacher: Teacher) -> str:
    """How a teacher is recorded in chunks and fingerprints."""
    return teacher if isinstance(teacher, str) else getattr(teacher, "__name__", repr(teacher))


def make_teacher(teacher: Teacher, vec: CausalDesignVectorEnv, seed: int) -> Any:
    """The teacher built for ``vec``: a baseline name is built as the harness builds it."""
    from caasl_agent.bench.baselines import baseline_for

    if not isinstance(teacher, str):
        return teacher(vec, seed)
    return baseline_for(teacher, vec.core, seed)


def check_teacher(name: Teacher, settings: Sequence[LabelSetting]) -> None:
    """Refuse, before any work, a teacher that cannot act on one of ``settings``: one
    ``ValueError`` line naming the teacher, the setting and the reason."""
    for setting in settings:
        vec = CausalDesignVectorEnv(num_envs=1, **setting.env_kwargs())
        try:
            teacher = make_teacher(name, vec, 0)
            obs, _ = vec.reset(seed=0)
            teacher.predict(obs)
        except ValueError as error:  # IncompatibleAgentError is a ValueError
            raise ValueError(
                f"teacher {teacher_name(name)!r} cannot act on setting {setting.name!r}: {error}"
            ) from None


def _chunk_seeds(seed: int, index: int, episodes: int) -> tuple[list[int], int, int, int]:
    """Environment seeds, teacher seed, explorer seed and coin seed of chunk ``index``."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(episodes + 3)
    return [int(s) for s in state[:episodes]], int(state[-3]), int(state[-2]), int(state[-1])


def setting_of_chunk(settings: Sequence[LabelSetting], seed: int, index: int) -> LabelSetting:
    """The setting of chunk ``index``: drawn with the settings' weights from ``(seed, index)``."""
    weights = np.array([s.weight for s in settings], dtype=np.float64)
    rng = np.random.default_rng([int(seed), int(index), 1])
    return settings[int(rng.choice(len(settings), p=weights / weights.sum()))]


def collect_chunk(
    setting: LabelSetting,
    teacher: Teacher,
    episodes: int,
    seed: int,
    index: int,
    beta: float,
    explorer: Callable[[int], Any] | None = None,
) -> LabelChunk:
    """Roll out ``episodes`` episodes of ``setting`` (one batch), executing the teacher's
    design with probability ``beta`` per environment and step and the explorer's otherwise,
    and label every visited history with the teacher's design.

    :param explorer: ``seed -> agent`` with SB3's ``predict``; ``None``: the random designer.
    """
    from caasl_agent.bench.baselines import RandomAgent

    env_seeds, teacher_seed, explorer_seed, coin_seed = _chunk_seeds(seed, index, episodes)
    vec = CausalDesignVectorEnv(num_envs=episodes, **setting.env_kwargs())
    core = vec.core
    tutor = make_teacher(teacher, vec, teacher_seed)
    other = (
        RandomAgent(core.target_only, explorer_seed)
        if explorer is None
        else explorer(explorer_seed)
    )
    if has_belief(getattr(other, "observation_space", None)):
        vec.set_observe_belief(True)  # a policy that reads the edge probabilities explores
    coins = np.random.default_rng(coin_seed)
    t_max, d = core.budget, core.d
    targets = np.zeros((episodes, t_max, d), dtype=bool)
    values = np.zeros((episodes, t_max, d), dtype=np.float32)
    belief = np.zeros((episodes, t_max, d, d), dtype=np.float32)
    executed = np.zeros((episodes, t_max), dtype=bool)
    rows = np.zeros(t_max, dtype=np.int64)
    obs, _ = vec.reset(seed=env_seeds)
    for t in range(t_max):
        rows[t] = core.n0 + t * core.samples_per_step
        belief[:, t] = core.probs.cpu().numpy()
        label, _ = tutor.predict(obs, deterministic=True)
        own, _ = other.predict(obs, deterministic=False)
        executed[:, t] = coins.random(episodes) < beta
        targets[:, t] = label[:, :d] > 0
        values[:, t] = label[:, d:] if label.shape[1] == 2 * d else 0.0
        obs, *_ = vec.step(np.where(executed[:, t, None], label, own))
    history = core.history.cpu().numpy().astype(np.float32, copy=True)
    meta = {"format": FORMAT, "index": index, "setting": setting.name}
    meta |= {"teacher": teacher_name(teacher)}
    meta |= {"beta": beta, "seed": seed, "env_kwargs": setting.env_kwargs()}
    return LabelChunk(
        history, rows, targets, values, belief, executed, json.loads(json.dumps(meta, default=str))
    )


def collect(
    folder: Path,
    settings: Sequence[LabelSetting],
    chunks: int,
    teacher: Teacher = "eig-batch",
    episodes_per_chunk: int = 16,
    seed: int = 0,
    beta: float = 0.7,
    round_: int = 0,
    explorer: Callable[[int], Any] | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> list[Path]:
    """Collect chunks ``0 .. chunks-1`` of round ``round_`` into ``folder`` (those with
    ``index % shard[1] == shard[0]``), skipping chunks already there (each is checked: a
    corrupt or foreign chunk is an error naming it). Returns this shard's chunk paths.

    Round ``r`` uses chunk indices offset by ``r * 100_000`` for its seeds, so rounds differ.
    """
    from tqdm.auto import tqdm

    part, parts = shard
    if not 0 <= part < parts:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    fingerprint = run_fingerprint(settings, teacher, seed)
    check_teacher(teacher, settings)
    mine = [i for i in range(chunks) if i % parts == part]
    paths = []
    for i in tqdm(mine, desc=f"labels round {round_}", disable=not progress):
        path = chunk_path(folder, round_, i)
        paths.append(path)
        if path.exists():
            load_chunk(path, fingerprint)
            continue
        index = round_ * 100_000 + i
        setting = setting_of_chunk(settings, seed, index)
        chunk = collect_chunk(setting, teacher, episodes_per_chunk, seed, index, beta, explorer)
        chunk.meta |= {"fingerprint": fingerprint, "round": round_}
        save_chunk(chunk, path)
    return paths
