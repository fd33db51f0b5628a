"""Evaluate a loss on points of a parameter subspace: the loss landscape (stage 2).

Given a model, a loss, data, directions ``d_1..d_k`` (:mod:`saddles.directions`) and
coordinates (:mod:`saddles.sampling`), :func:`evaluate` computes
``L(theta_0 + sum_k c_k d_k)`` for every point ``c`` and returns a :class:`Landscape`: numpy
arrays plus provenance, which hands itself to the topology core. One idea per module, in the
order data flows:

- :mod:`~saddles.landscape.result`: :class:`Landscape` and its file format (no torch);
- :mod:`~saddles.landscape.problem`: the checked inputs every engine needs;
- :mod:`~saddles.landscape.engines`: sequential (in place, point by point) and batched (vmap);
- :mod:`~saddles.landscape.memory`: what a point costs (memory, operators, FLOPs);
- :mod:`~saddles.landscape.plan`: the engine and chunk size, by a counting rule; the loop;
- :mod:`~saddles.landscape.rundir`: the resumable run directory and its configuration hash;
- :mod:`~saddles.landscape.evaluate`: :func:`evaluate`, which wires them together.

The package imports torch, numpy and rich, but ``import saddles.landscape`` does not import
torch: :class:`Landscape` and its files (``Landscape.load``) are numpy and json, so reading a
landscape (``saddles export``, reports) stays light; the names of the torch modules
(:func:`evaluate`, :class:`Plan`, ...) are imported on first use (PEP 562). The package
imports the topology package only inside :meth:`Landscape.to_graph` and
:meth:`Landscape.topology`, and it must not import the CLI.
"""

import sys
import types
from importlib import import_module

from saddles.landscape.result import LANDSCAPE_FORMAT, LANDSCAPE_VERSION, Landscape
from saddles.names import ENGINES

#: The names of the torch modules, each with the module that defines it.
_LAZY = {
    "evaluate": "saddles.landscape.evaluate",
    "MAX_CHUNK": "saddles.landscape.memory",
    "PointCost": "saddles.landscape.memory",
    "parse_bytes": "saddles.files",
    "EngineFallbackWarning": "saddles.landscape.plan",
    "Plan": "saddles.landscape.plan",
    "RUN_FORMAT_VERSION": "saddles.landscape.rundir",
}

__all__ = [
    "ENGINES",
    "LANDSCAPE_FORMAT",
    "LANDSCAPE_VERSION",
    "MAX_CHUNK",
    "RUN_FORMAT_VERSION",
    "EngineFallbackWarning",
    "Landscape",
    "Plan",
    "PointCost",
    "evaluate",
    "parse_bytes",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'saddles.landscape' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """Keeps ``saddles.landscape.evaluate`` the function: importing the submodule of the same
    name would otherwise bind the module over it (``import saddles.landscape.evaluate``)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
