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

The package imports torch, numpy and rich; it imports the topology package only inside
:meth:`Landscape.to_graph` and :meth:`Landscape.topology`, and it must not import the CLI.
"""

from saddles.landscape.evaluate import evaluate
from saddles.landscape.memory import MAX_CHUNK, PointCost, parse_bytes
from saddles.landscape.plan import EngineFallbackWarning, Plan
from saddles.landscape.result import LANDSCAPE_FORMAT, LANDSCAPE_VERSION, Landscape
from saddles.landscape.rundir import RUN_FORMAT_VERSION
from saddles.names import ENGINES

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
