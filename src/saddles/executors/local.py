"""The in-process executor: one worker, this process, units in input order.

This is the loop the landscape sampler always had: the payload is used as it is (no copy),
and each result is handed back as soon as it is computed, so a run directory sees the same
chunks in the same order as before. A unit whose ``work`` raises stops the run with one
:class:`~saddles.executors.base.UnitError` naming the unit, the original exception as its
cause, as on every executor (``KeyboardInterrupt`` and other non-``Exception`` errors pass
through unchanged).

Registers itself as ``"local"`` in :mod:`saddles.executors.registry`. Imports only
:mod:`~saddles.executors.base`, the registry and the thread helper; never Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from saddles.executors import registry
from saddles.executors.base import Executor, Pool, unit_failed
from saddles.executors.threads import torch_threads


class LocalPool(Pool):
    def __init__(self, state: Any, work: Callable[[Any, Any], Any]):
        self.state = state
        self.work = work

    def run(self, units: Iterable[Any], on_result: Callable[[Any, Any], None]) -> None:
        for unit in units:
            try:
                result = self.work(self.state, unit)
            except Exception as exc:
                raise unit_failed(unit, exc) from exc
            on_result(unit, result)

    @property
    def info(self) -> dict[str, Any]:
        return {"name": "local", "workers": 1, "threads_per_worker": torch_threads()}


class LocalExecutor(Executor):
    """Runs every unit in this process, in order (the default)."""

    name = "local"

    def open(
        self, setup: Callable[[Any], Any], payload: Any, work: Callable[[Any, Any], Any]
    ) -> LocalPool:
        return LocalPool(setup(payload), work)


@registry.register("local")
def make_local(
    *, workers: int | None = None, gpus_per_worker: float = 0.0, max_retries: int = 3
) -> LocalExecutor:
    """The ``"local"`` entry of the registry: one worker, this process, no GPUs to reserve."""
    if workers not in (None, 1) or gpus_per_worker:
        raise ValueError("workers and gpus_per_worker need executor='ray'")
    return LocalExecutor()
