"""The executors by name: each implementation registers a factory here under its name.

Owns the table ``name -> factory``, :func:`register` (which the implementations call when they
are imported: :mod:`~saddles.executors.local` registers ``"local"``, :mod:`~saddles.executors.
ray_pool` registers ``"ray"``), :func:`lookup` and :func:`registered`. A factory takes the
keyword arguments ``workers``, ``gpus_per_worker`` and ``max_retries`` and returns an
:class:`~saddles.executors.base.Executor`, refusing the arguments it cannot honour.

The built-in names are found lazily: :data:`BUILTIN` maps each to the module that registers it,
imported by name only when that name is first looked up, so nothing imports Ray until a Ray
executor is asked for (and :mod:`~saddles.executors.ray_pool` itself imports Ray only when a
:class:`~saddles.executors.ray_pool.RayExecutor` is made). :data:`saddles.names.EXECUTORS` is
the tuple of the built-in names, for the command line; a test checks that the two agree.

This module imports only the standard library: not torch, not Ray, not the implementations
(their modules are imported by name in :func:`lookup`), not :mod:`~saddles.executors.base`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: The built-in executors: name -> the module that registers it when imported.
BUILTIN: dict[str, str] = {
    "local": "saddles.executors.local",
    "ray": "saddles.executors.ray_pool",
}

_FACTORIES: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory(*, workers, gpus_per_worker, max_retries) -> Executor``
    under ``name``. Registering a name twice with a different factory is an error."""

    def add(factory: Callable[..., Any]) -> Callable[..., Any]:
        known = _FACTORIES.get(name)
        if known is not None and known is not factory and _qualname(known) != _qualname(factory):
            raise ValueError(f"executor {name!r} is already registered ({_qualname(known)})")
        _FACTORIES[name] = factory
        return factory

    return add


def _qualname(factory: Callable[..., Any]) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', '?')}"


def lookup(name: str) -> Callable[..., Any] | None:
    """The factory registered under ``name`` (importing its built-in module first), or None."""
    if name not in _FACTORIES and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    return _FACTORIES.get(name)


def registered() -> tuple[str, ...]:
    """Every executor name: the built-in ones (their modules imported), then any others."""
    for name in BUILTIN:
        lookup(name)
    return tuple(BUILTIN) + tuple(n for n in _FACTORIES if n not in BUILTIN)
