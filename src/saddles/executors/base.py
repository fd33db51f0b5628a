"""The executor interface: open a pool of workers on a payload, then run units on it.

A run has two steps, so that the payload travels to each worker once however many units
follow::

    with executor.open(setup, payload, work) as pool:   # state = setup(payload) per worker
        pool.run(units, on_result)                      # on_result(unit, work(state, unit))
        pool.run(more_units, on_result)                 # same workers, same state

``on_result`` is called on the driver, one result at a time, in the order results arrive
(input order for the local executor, completion order on Ray); the caller records them. A unit
whose ``work`` raises stops the run with one :class:`UnitError` naming the unit (the original
exception is its ``__cause__``), on every executor; a worker that dies is the executor's
problem (retried elsewhere), never the caller's. ``tests/test_contracts.py`` checks every
registered executor against this.

Owns the interface (:class:`Executor`, :class:`Pool`), :class:`UnitError` and
:func:`make_executor`, which looks a name up in :mod:`saddles.executors.registry`. This module
must not import the implementations (:mod:`~saddles.executors.local`,
:mod:`~saddles.executors.ray_pool`): they import it, and register themselves by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from saddles.executors import registry


class UnitError(RuntimeError):
    """A unit of work failed on a worker (its loss raised, or its worker kept dying).

    The message is one line naming the unit; the original exception is the ``__cause__``.
    """


class Pool(ABC):
    """Workers that hold ``setup(payload)`` and run units on it (see the module docstring)."""

    @abstractmethod
    def run(self, units: Iterable[Any], on_result: Callable[[Any, Any], None]) -> None:
        """Run ``work(state, unit)`` for every unit; call ``on_result(unit, result)`` for each."""

    @property
    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Provenance: the executor's name, number of workers, torch threads per worker..."""

    def close(self) -> None:  # noqa: B027 (a hook: nothing to release by default)
        """Release the workers (the cluster itself belongs to the executor)."""

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Executor(ABC):
    """Where units run; :meth:`open` gives a :class:`Pool` of workers on one payload."""

    name: str = "executor"

    @abstractmethod
    def open(
        self, setup: Callable[[Any], Any], payload: Any, work: Callable[[Any, Any], Any]
    ) -> Pool:
        """Start workers, each holding ``setup(payload)``, ready to run ``work`` on units."""

    def close(self) -> None:  # noqa: B027 (a hook: nothing to release by default)
        """Release what the executor itself started (e.g. a local Ray cluster)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_executor(
    executor: str | Executor | None = None,
    *,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    max_retries: int = 3,
) -> tuple[Executor, bool]:
    """The executor a name asks for, and whether the caller owns it (and must close it).

    ``None`` or ``"local"``: in this process. ``"ray"``: a
    :class:`~saddles.executors.ray_pool.RayExecutor` with ``workers`` actors (joining
    ``RAY_ADDRESS`` or an initialised Ray, else starting a loopback cluster). Any other name is
    looked up in :mod:`saddles.executors.registry`. An :class:`Executor` object is used as it
    is, and stays the caller's.
    """
    if isinstance(executor, Executor):
        if workers is not None or gpus_per_worker or max_retries != 3:
            raise ValueError(
                "workers, gpus_per_worker and max_retries configure executor='ray'; "
                "give them to the Executor object instead"
            )
        return executor, False
    name = "local" if executor is None else executor
    factory = registry.lookup(name) if isinstance(name, str) else None
    if factory is None:
        raise ValueError(
            f"executor must be one of {registry.registered()} or an Executor, not {executor!r}"
        )
    return factory(workers=workers, gpus_per_worker=gpus_per_worker, max_retries=max_retries), True


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def unit_failed(unit: Any, exc: BaseException) -> UnitError:
    """The one-line :class:`UnitError` for a unit whose ``work`` raised ``exc``."""
    return UnitError(f"{unit} failed: {one_line(exc)}")
