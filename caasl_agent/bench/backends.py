"""Where a benchmark's runs execute, and the record of the runs that finished.

A benchmark is a list of independent tasks, one per (setting, agent, mode). An *executor*
runs a picklable function over them and yields ``(index, result)`` as each finishes:

* :class:`InProcess` — one after the other in this process (``workers=1``);
* :class:`ProcessPool` — ``concurrent.futures`` worker processes on this machine
  (``workers=N``, spawned, one torch thread each);
* :class:`RayCluster` — one Ray task each, on a local Ray instance sized to the machine or on a
  running cluster (``address="auto"``, ``"ray://HOST:PORT"``); ``pip install 'caasl[ray]'``.

An exception in one task does not stop the others: the executor yields a :class:`Failure` for
it (with the remote traceback). :func:`execute` collects the results; with an output folder it
keeps every finished run in ``out/runs/`` (:class:`RunStore`) as soon as it arrives, so that
after a failure or an interruption the same command runs only the missing tasks, and it
refuses a folder that holds a different benchmark instead of overwriting it.

Agents travel to the workers pickled (cloudpickle for Ray): baseline names and ``sb3:PATH``
models (loaded once, in the driver) need nothing on the workers but an installed ``caasl``;
``module:attr`` agents are pickled by reference, so their module must be importable there
(Ray adds the driver's working directory to the workers' ``sys.path`` on the same machine; on a
cluster, install the package on every node or submit with ``ray job submit --working-dir .``).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from caasl_agent.bench.fingerprint import check_stored, run_fingerprint
from caasl_agent.bench.reports import RunRecord
from caasl_agent.interrupts import check_reachable
from caasl_envs.checks import check_int
from caasl_envs.optional import require

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "BenchmarkError",
    "BenchmarkFailed",
    "Executor",
    "Failure",
    "InProcess",
    "ProcessPool",
    "RayCluster",
    "RunStore",
    "execute",
    "make_executor",
]

BACKENDS = ("local", "ray")

#: What one task returns: the run (``None`` when skipped), why it was skipped, seconds taken.
Outcome = tuple[RunRecord | None, str | None, float]


@dataclass(frozen=True)
class Failure:
    """A task that raised: the exception's last line and the full (remote) traceback."""

    error: str
    traceback: str

    @classmethod
    def of(cls, err: BaseException) -> Failure:
        lines = traceback.format_exception(err)
        return cls("".join(traceback.format_exception_only(err)).strip(), "".join(lines))


class BenchmarkError(RuntimeError):
    """A benchmark that did not finish; ``failures`` is ``[(task, Failure)]`` of the runs that
    raised (empty when none ran)."""

    failures: Sequence[tuple[Any, Failure]] = ()


class BackendUnavailable(BenchmarkError):
    """The backend did not start or could not be joined (no run was attempted)."""


class BenchmarkFailed(BenchmarkError):
    """Some tasks raised. ``failures`` is ``[(task, Failure)]``; the finished runs are kept in
    the output folder (when one was given) and a rerun of the same call completes the rest."""

    def __init__(self, failures: list[tuple[Any, Failure]], kept: Path | None):
        self.failures = failures
        lines = [
            f"{task.setting.name} / {task.label} / {task.mode}: {failure.error}"
            for task, failure in failures
        ]
        where = (
            f"the finished runs are kept in {kept}; rerun the same command to complete the rest"
            if kept is not None
            else "give an output folder to keep the finished runs"
        )
        super().__init__(f"{len(failures)} run(s) failed ({where}):\n  " + "\n  ".join(lines))


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    """``fn(item)``; an exception becomes a :class:`Failure` here, where its traceback is (the
    exception itself need not be picklable)."""
    try:
        return fn(item)
    except Exception as err:
        return Failure.of(err)


def _call_in_worker(fn: Callable[[Any], Any], item: Any) -> Any:
    """:func:`_call` with one torch thread (workers share the machine's cores)."""
    torch.set_num_threads(1)
    return _call(fn, item)


class Executor(Protocol):
    """Runs ``fn`` over ``items``, yielding ``(index, fn(item) or Failure)`` as each finishes."""

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]: ...


class InProcess:
    """Every task in this process, in order."""

    def map_unordered(self, fn, items):
        for i, item in enumerate(items):
            yield i, _call(fn, item)


class ProcessPool:
    """``workers`` spawned processes on this machine (tasks and results are pickled)."""

    def __init__(self, workers: int):
        self.workers = check_int("workers", workers, 1)

    def map_unordered(self, fn, items):
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_call_in_worker, fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except Exception as err:  # the worker process died
                    yield futures[future], Failure.of(err)


class RayCluster:
    """One Ray task per item (one CPU each).

    :param address: ``None`` starts a local Ray instance sized to this machine (shut down
        afterwards); ``"auto"`` joins the cluster this machine belongs to, ``"ray://HOST:PORT"``
        one through Ray Client. When Ray is already initialised in this process (``ray.init``
        by the caller), that instance is used and ``address`` must be ``None``.
    """

    def __init__(self, address: str | None = None):
        self.address = address
        self.ray = _import_ray()

    def map_unordered(self, fn, items):
        ray = self.ray
        started = not ray.is_initialized()
        if started:
            kwargs = {"include_dashboard": False} if self.address is None else {}
            try:
                check_reachable(self.address)  # ray.init retries a dead address for minutes
                ray.init(address=self.address, **kwargs)
            except Exception as err:  # Ray raises plain Exception, ConnectionError, ...
                where = "a local Ray instance" if self.address is None else repr(self.address)
                raise BackendUnavailable(
                    f"Ray did not start or join {where}: {err} (on a busy machine Ray's local "
                    "start can time out: run the same command again, or use --workers)"
                ) from err
        elif self.address is not None:
            raise ValueError(
                f"Ray is already initialised in this process; cannot also join {self.address!r}"
            )
        try:
            remote = ray.remote(num_cpus=1)(_call_in_worker)
            index = {remote.remote(fn, item): i for i, item in enumerate(items)}
            pending = list(index)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        yield index[ref], ray.get(ref)
                    except Exception as err:  # the worker died or the task was cancelled
                        yield index[ref], Failure.of(err)
        finally:
            if started:
                ray.shutdown()


def _import_ray():
    return require("ray", purpose="backend 'ray'")


def make_executor(backend: str, workers: int, address: str | None) -> Executor:
    """The executor for ``backend`` (``"local"``: here or ``workers`` processes; ``"ray"``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    workers = check_int("workers", workers, 1)
    if backend == "ray":
        if workers != 1:
            raise ValueError(
                "workers is for the local backend; Ray runs one task per CPU of its cluster"
            )
        return RayCluster(address)
    if address is not None:
        raise ValueError("address is for the ray backend")
    return InProcess() if workers == 1 else ProcessPool(workers)


# --------------------------------------------------------------------------- finished runs
def fingerprint(task: Any) -> dict[str, Any]:
    """What makes a task's result what it is (JSON-ready): setting, environment kwargs, agent
    label, mode, episode seeds, agent seed, reward model and device."""
    model = task.reward_model
    return {
        "setting": task.setting.name,
        "env_id": task.setting.env_id,
        "env_kwargs": {k: v for k, v in task.setting.env_kwargs().items() if k != "reward_model"},
        "agent": task.label,
        "mode": task.mode,
        "seeds": [int(s) for s in task.seeds],
        "agent_seed": int(task.agent_seed),
        "reward_model": model if isinstance(model, str) else type(model).__qualname__,
        "device": str(task.device),
    }


class RunStore:
    """Finished runs of one benchmark in ``out/runs/``: ``tasks.json`` (every task's
    :func:`fingerprint`, in order) and ``<index>.npz`` per finished task.

    :raises ValueError: when ``out`` holds another benchmark (other tasks, or reports without
        ``runs/``): it is never overwritten.
    """

    def __init__(self, out: str | Path, tasks: Sequence[Any]):
        self.folder = Path(out) / "runs"
        self.fingerprints = [run_fingerprint(t, fingerprint(t)) for t in tasks]  # reuse check
        manifest = self.folder / "tasks.json"
        text = json.dumps([fingerprint(t) for t in tasks], indent=1, default=repr) + "\n"
        if manifest.exists():
            if manifest.read_text() != text:
                raise ValueError(
                    f"{out} holds the runs of a different benchmark ({manifest} lists other "
                    "tasks); choose another output folder or remove it"
                )
        elif (Path(out) / "results.json").exists():
            raise ValueError(
                f"{out} already holds benchmark results; choose another output folder or remove it"
            )
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(manifest, text.encode())

    def load(self, index: int) -> Outcome | None:
        """The stored outcome of task ``index``, ``None`` when it has not finished."""
        path = self.folder / f"{index}.npz"
        if not path.exists() or not check_stored(path, self.fingerprints[index]):
            return None  # not finished, or a corrupt or stale file (named): recomputed
        with np.load(path, allow_pickle=False) as npz:
            head = json.loads(str(npz["head"]))
            if head["skipped"] is not None:
                return None, head["skipped"], head["seconds"]
            record = RunRecord(
                setting=head["setting"],
                agent=head["agent"],
                mode=head["mode"],
                seeds=tuple(head["seeds"]),
                metrics={name: npz[f"metric_{i}"] for i, name in enumerate(head["metrics"])},
                probs=npz["probs"],
                graphs=npz["graphs"],
            )
        return record, None, head["seconds"]

    def save(self, index: int, outcome: Outcome) -> None:
        """Keep task ``index``'s outcome (written to a temporary file, then renamed)."""
        record, why, seconds = outcome
        head: dict[str, Any] = {"skipped": why, "seconds": seconds}
        head["fingerprint"] = self.fingerprints[index]
        arrays: dict[str, np.ndarray] = {}
        if record is not None:
            head.update(
                setting=record.setting,
                agent=record.agent,
                mode=record.mode,
                seeds=[int(s) for s in record.seeds],
                metrics=list(record.metrics),
            )
            arrays = {f"metric_{i}": v for i, v in enumerate(record.metrics.values())}
            arrays.update(probs=record.probs, graphs=record.graphs)
        path = self.folder / f"{index}.npz"
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, head=np.array(json.dumps(head)), **arrays)
        os.replace(tmp, path)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def execute(
    fn: Callable[[Any], Outcome],
    tasks: Sequence[Any],
    executor: Executor,
    out: str | Path | None = None,
    progress: bool = True,
) -> list[Outcome]:
    """Run ``fn`` over the tasks not finished yet in ``out`` (all when ``out`` is ``None``).

    :return: every task's outcome, in task order.
    :raises BenchmarkFailed: when some tasks raised, after the others finished (and were kept).
    """
    store = RunStore(out, tasks) if out is not None else None
    outcomes: list[Outcome | None] = [
        store.load(i) if store is not None else None for i in range(len(tasks))
    ]
    missing = [i for i, outcome in enumerate(outcomes) if outcome is None]
    failures: dict[int, Failure] = {}
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(missing),
        desc="benchmark",
        unit="run",
        disable=not progress,
    )
    results = executor.map_unordered(fn, [tasks[i] for i in missing]) if missing else ()
    for j, result in results:
        i = missing[j]
        bar.set_postfix_str(f"{tasks[i].setting.name} / {tasks[i].label} / {tasks[i].mode}")
        if isinstance(result, Failure):
            failures[i] = result
        else:
            outcomes[i] = result
            if store is not None:
                store.save(i, result)
        bar.update()
    bar.close()
    if failures:
        raise BenchmarkFailed(
            [(tasks[i], failures[i]) for i in sorted(failures)],
            store.folder if store is not None else None,
        )
    return outcomes  # type: ignore[return-value]
