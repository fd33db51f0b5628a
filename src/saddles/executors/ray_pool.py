"""Ray actors as workers: each receives the payload once and then runs many units.

:class:`RayExecutor` puts the payload into Ray's object store once (``ray.put``); every actor
gets it from there, runs ``setup(payload)`` once, and keeps the state for all its units. The
driver keeps up to :data:`IN_FLIGHT` units queued on each actor (so an actor never waits for
the driver between units) and hands each result to ``on_result`` as it arrives.

Faults:

- a worker that dies (its process killed, by a signal or by Ray's memory monitor, or its node
  lost) takes the units queued on it with it; they go back to the front of the queue, a
  fresh actor takes the dead one's place, and no finished unit is run again. A result Ray
  reports lost (:data:`LOST_WORKER` lists what counts as a lost worker) is treated the same
  way: its unit runs again. A unit whose worker died more than ``max_retries`` times fails
  the run (:class:`~saddles.executors.base.UnitError`), so a unit that kills every worker it
  meets does not loop forever. Ray itself never retries or reconstructs anything here
  (``max_restarts=0``, ``max_task_retries=0``): this loop is the one place that does;
- a unit whose ``work`` raises fails the run at once with a one-line
  :class:`~saddles.executors.base.UnitError` naming the unit (``str(unit)``); the remote
  traceback is kept in the exception's cause;
- any other failure of Ray while a unit is out (the cluster lost, ...) fails the run with
  one line naming the unit and Ray's error, never with Ray's traceback alone.

Registers itself as ``"ray"`` in :mod:`saddles.executors.registry`. Importing this module does
not import Ray (a :class:`RayExecutor` does, when made); it must not import
:mod:`~saddles.executors.local`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from saddles.executors import registry
from saddles.executors.base import Executor, Pool, UnitError, one_line, unit_failed
from saddles.executors.cluster import Cluster, import_ray
from saddles.executors.threads import set_torch_threads, torch_threads

#: Units queued on each actor at once: one running, one waiting.
IN_FLIGHT = 2

#: Ray's exceptions (``ray.exceptions``) that mean a unit's worker or its result was lost, not
#: that the unit failed: the unit runs again on a fresh worker.
LOST_WORKER = (
    "RayActorError",  # ActorDiedError, ActorUnavailableError: the actor's process is gone
    "WorkerCrashedError",
    "ObjectLostError",  # OwnerDiedError, ObjectReconstructionFailedError, ...
    "NodeDiedError",
    "OutOfMemoryError",  # Ray's memory monitor killed the worker
)


def lost_worker_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """The classes of :data:`LOST_WORKER` this Ray version has."""
    return tuple(
        getattr(ray.exceptions, name) for name in LOST_WORKER if hasattr(ray.exceptions, name)
    )


class Worker:
    """The actor's class: holds ``setup(payload)`` and runs ``work(state, unit)``."""

    def __init__(self, setup: Callable, payload: Any, work: Callable, threads: int):
        set_torch_threads(threads)
        self.state = setup(payload)
        self.work = work

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "threads": torch_threads()}

    def run(self, unit: Any) -> Any:
        return self.work(self.state, unit)


class RayExecutor(Executor):
    """Runs units on Ray actors (see the module docstring).

    Args:
        workers: number of actors (default: every CPU of the cluster, ``cpus_per_worker``
            each); for a local cluster, also the CPUs it is started with.
        cpus_per_worker: CPUs each actor reserves; torch gets this many threads.
        gpus_per_worker: GPUs (or a fraction) each actor reserves.
        max_retries: how often a unit may lose its worker before the run fails.
        temp_dir: folder for a local cluster's session files (default: a temporary folder,
            removed at shutdown).
    """

    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        *,
        cpus_per_worker: int = 1,
        gpus_per_worker: float = 0.0,
        max_retries: int = 3,
        temp_dir: str | os.PathLike | None = None,
    ):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive integer, not {workers!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {max_retries!r}")
        self.ray = import_ray()  # fails here, with what to install, when Ray is missing
        self.workers = workers
        self.cpus_per_worker = int(cpus_per_worker)
        self.gpus_per_worker = float(gpus_per_worker)
        self.max_retries = int(max_retries)
        cpus = workers * self.cpus_per_worker if workers else None
        self.cluster = Cluster(num_cpus=cpus, temp_dir=temp_dir)

    def open(
        self, setup: Callable[[Any], Any], payload: Any, work: Callable[[Any, Any], Any]
    ) -> RayPool:
        self.cluster.connect()
        n = self.workers or max(1, self.cluster.cpus() // self.cpus_per_worker)
        return RayPool(self, n, setup, payload, work)

    def close(self) -> None:
        self.cluster.close()


@registry.register("ray")
def make_ray(
    *, workers: int | None = None, gpus_per_worker: float = 0.0, max_retries: int = 3
) -> RayExecutor:
    """The ``"ray"`` entry of the registry (see :class:`RayExecutor`)."""
    return RayExecutor(workers, gpus_per_worker=gpus_per_worker, max_retries=max_retries)


class RayPool(Pool):
    """The actors of one :meth:`RayExecutor.open`, and the dispatch loop."""

    def __init__(self, executor: RayExecutor, n: int, setup, payload, work):
        ray = self.ray = executor.ray
        self.executor = executor
        options = {"num_cpus": executor.cpus_per_worker, "num_gpus": executor.gpus_per_worker,
                   "max_restarts": 0, "max_task_retries": 0}  # fmt: skip
        self.actor_class = ray.remote(**options)(Worker)
        started = time.perf_counter()
        self.args = (setup, ray.put(payload), work, executor.cpus_per_worker)
        self.actors = [self.actor_class.remote(*self.args) for _ in range(n)]
        self.replaced = 0
        try:
            self.described = ray.get([a.describe.remote() for a in self.actors])
        except Exception as exc:
            self.close()
            raise UnitError(f"the Ray workers could not be set up: {one_line(exc)}") from exc
        self.start_s = time.perf_counter() - started  # processes started, problem received

    @property
    def info(self) -> dict[str, Any]:
        return {
            "name": "ray",
            "ray_version": self.ray.__version__,
            "cluster": self.executor.cluster.kind,
            "workers": len(self.actors),
            "cpus_per_worker": self.executor.cpus_per_worker,
            "gpus_per_worker": self.executor.gpus_per_worker,
            "threads_per_worker": sorted({d["threads"] for d in self.described}),
            "hosts": sorted({d["host"] for d in self.described}),
            "max_retries": self.executor.max_retries,
            "workers_replaced": self.replaced,
            "start_s": round(self.start_s, 3),
        }

    def run(self, units: Iterable[Any], on_result: Callable[[Any, Any], None]) -> None:
        ray = self.ray
        lost = lost_worker_errors(ray)
        queue = deque(enumerate(units))
        deaths: dict[int, int] = {}
        pending: dict[Any, tuple[int, Any, Any]] = {}  # ObjectRef -> (index, unit, actor)
        load = {id(a): 0 for a in self.actors}
        while queue or pending:
            for actor in list(self.actors):
                while queue and load[id(actor)] < IN_FLIGHT:
                    index, unit = queue.popleft()
                    pending[actor.run.remote(unit)] = (index, unit, actor)
                    load[id(actor)] += 1
            try:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
            except ray.exceptions.RayError as exc:
                first = min(pending.values(), key=lambda p: p[0])[1]
                raise UnitError(f"{first}: Ray failed while it ran: {one_line(exc)}") from exc
            index, unit, actor = pending.pop(ref)
            load[id(actor)] -= 1
            try:
                result = ray.get(ref)
            except lost as exc:
                deaths[index] = deaths.get(index, 0) + 1
                if deaths[index] > self.executor.max_retries:
                    raise UnitError(
                        f"{unit}: its worker died {deaths[index]} times "
                        f"(max_retries={self.executor.max_retries}): {one_line(exc)}"
                    ) from exc
                queue.appendleft((index, unit))
                if any(a is actor for a in self.actors):  # not yet replaced
                    load[id(self.replace(actor))] = 0
                continue
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                raise unit_failed(unit, cause) from cause
            except ray.exceptions.RayError as exc:
                raise UnitError(f"{unit}: Ray failed while it ran: {one_line(exc)}") from exc
            on_result(unit, result)

    def replace(self, dead: Any) -> Any:
        """A fresh actor (same payload, from the object store) in place of a dead one."""
        with contextlib.suppress(Exception):  # it may be gone already, with its node
            self.ray.kill(dead, no_restart=True)
        fresh = self.actor_class.remote(*self.args)
        self.actors = [fresh if a is dead else a for a in self.actors]
        self.replaced += 1
        return fresh

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors = []
