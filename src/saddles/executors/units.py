"""``map_units``: run whole independent units of work on an executor, results in input order.

A unit is anything ``fn(item)`` computes on its own: one checkpoint's analysis, one seed of
random directions, one landscape. ``fn`` and the items travel to the workers (with Ray, by
value through its object store), so ``fn`` must be importable or picklable there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from saddles.executors.base import Executor, make_executor


@dataclass(frozen=True)
class Unit:
    index: int
    item: Any

    def __str__(self) -> str:
        return f"unit {self.index}"


def _hold(fn: Callable) -> Callable:
    return fn


def _call(fn: Callable, unit: Unit) -> Any:
    return fn(unit.item)


def map_units(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    executor: str | Executor | None = None,
    *,
    workers: int | None = None,
    max_retries: int = 3,
) -> list[Any]:
    """``[fn(item) for item in items]``, each item a unit on ``executor`` (see
    :func:`~saddles.executors.base.make_executor`); results in the order of ``items``."""
    units = [Unit(i, item) for i, item in enumerate(items)]
    results: list[Any] = [None] * len(units)

    def keep(unit: Unit, result: Any) -> None:
        results[unit.index] = result

    ex, owned = make_executor(executor, workers=workers, max_retries=max_retries)
    try:
        with ex.open(_hold, fn, _call) as pool:
            pool.run(units, keep)
    finally:
        if owned:
            ex.close()
    return results
