"""Distances between the 0-dimensional persistence diagrams of two landscapes, by gudhi.

The bottleneck distance is ``gudhi.bottleneck_distance`` (exact); the p-Wasserstein distance
is ``gudhi.hera.wasserstein_distance`` (Hera, Kerber, Morozov & Nigmetov 2017) with the
L-infinity ground metric between points (``internal_p=inf``, gudhi's default, and the
convention of persistence stability theorems), within hera's relative error ``delta``
(gudhi's default, 1%). Unmatched points go to the diagonal.

Which pairs: TTK's diagram (:func:`~saddles.topology.persistence.ttk_diagram`), i.e. the
finite pairs plus each component's essential class *capped at the component's maximum*
(global min, global max). Every point is then finite, so two landscapes with different
value ranges get a finite distance, and the pairs are the ones behind the persistence
metrics (``average_persistence`` uses the same capping). Zero-persistence pairs lie on the
diagonal and change no distance.

Normalized distances compare shapes rather than scales: each diagram is mapped through its
own landscape's range, ``v -> (v - value_min) / (value_max - value_min)`` (a constant field
maps to 0), so every point lies in the unit square and a landscape ``a * f + b`` (``a > 0``)
is at distance 0 from ``f``.

This module never imports torch; gudhi is imported when a distance is computed.
"""

from __future__ import annotations

import numpy as np

from saddles.topology.mergetree import MergeTree
from saddles.topology.persistence import ttk_diagram

#: The Wasserstein orders :func:`diagram_distances` reports by default.
ORDERS = (1.0, 2.0)

#: Relative rounding step of the diagrams passed to hera (see :func:`wasserstein_distance`).
SNAP = 2.0**-16


def distance_diagram(tree: MergeTree, normalized: bool = False) -> np.ndarray:
    """The ``(p, 2)`` diagram the distances use: TTK's (essential classes capped at the
    component maximum), optionally range-normalized (see the module docstring)."""
    diagram = ttk_diagram(tree)
    if not normalized:
        return diagram
    low = float(tree.values.min())
    span = float(tree.values.max()) - low
    return (diagram - low) / span if span > 0 else np.zeros_like(diagram)


def bottleneck_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bottleneck distance between two ``(p, 2)`` diagrams (``gudhi.bottleneck_distance``).

    Equal diagrams get 0: gudhi's exact algorithm answers the smallest normal double
    (2.2e-308) for them, a search bound rather than a distance."""
    import gudhi

    distance = float(gudhi.bottleneck_distance(_check(a), _check(b)))
    return 0.0 if distance <= np.finfo(np.float64).tiny else distance


def wasserstein_distance(
    a: np.ndarray, b: np.ndarray, order: float = 1.0, delta: float = 0.01
) -> float:
    """p-Wasserstein distance between two ``(p, 2)`` diagrams, ground metric L-infinity
    (``gudhi.hera.wasserstein_distance``, within a factor ``1 + delta`` of the exact value).

    Before hera is called, both diagrams are rounded to a step of :data:`SNAP` (1.5e-5) times
    their largest magnitude, points on the diagonal are dropped (they cost nothing), the
    points are sorted, and equal diagrams get 0 without hera. Hera's auction (gudhi 3.13)
    loops forever otherwise: on diagonal points (gudhi issue #477), on two equal diagrams
    listed in different orders (orders 1 and 2), and at order 2 when points differ by 1e-7 of
    the scale, so that the optimal cost is near double precision. Rounding moves each point
    by at most half a step (7.6e-6 of the scale), well inside hera's relative error.
    """
    from gudhi.hera import wasserstein_distance as hera

    if not order >= 1:
        raise ValueError(f"the Wasserstein order must be at least 1, not {order}")
    a, b = _check(a), _check(b)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    if scale > 0:
        step = SNAP * scale
        a, b = np.round(a / step) * step, np.round(b / step) * step
    a, b = _canonical(a), _canonical(b)
    if a.shape == b.shape and np.array_equal(a, b):
        return 0.0
    return float(hera(a, b, order=float(order), internal_p=np.inf, delta=float(delta)))


def diagram_distances(
    a: MergeTree, b: MergeTree, orders: tuple[float, ...] = ORDERS
) -> dict[str, float]:
    """Bottleneck and Wasserstein distances between two trees' diagrams, raw and normalized.

    Keys: ``bottleneck``, ``wasserstein_<p>`` for each order (``wasserstein_1``,
    ``wasserstein_2``), and the same with the suffix ``_normalized``.
    """
    out: dict[str, float] = {}
    for suffix, normalized in (("", False), ("_normalized", True)):
        da, db = distance_diagram(a, normalized), distance_diagram(b, normalized)
        out[f"bottleneck{suffix}"] = bottleneck_distance(da, db)
        for p in orders:
            out[f"wasserstein_{p:g}{suffix}"] = wasserstein_distance(da, db, p)
    return out


def _canonical(diagram: np.ndarray) -> np.ndarray:
    """Off-diagonal points, sorted by (birth, death)."""
    diagram = diagram[diagram[:, 1] != diagram[:, 0]]
    return diagram[np.lexsort((diagram[:, 1], diagram[:, 0]))]


def _check(diagram: np.ndarray) -> np.ndarray:
    diagram = np.asarray(diagram, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(diagram).all():
        raise ValueError("diagrams must be finite (cap essential classes, as ttk_diagram does)")
    return diagram
