"""Representations: a sampled landscape as a graph, by name, and the merge tree over it.

Xie et al. 2024 (section 2.2) compare one landscape under several representations; this
module is the one place that maps a name (and its options) to a graph and a merge tree, so
the pipeline, ``saddles topology`` and ``Landscape.topology`` give the same numbers. Arrays
in, arrays out; the builders are in :mod:`saddles.topology.graphs`.

Names (:data:`REPRESENTATIONS`) and the convention each equals:

``grid-full``, ``grid-faces``
    A grid's 3^N - 1 or 2N neighbours: ``gudhi.CubicalComplex`` with ``top_dimensional_cells``
    or ``vertices``, ``cripser``'s ``filtration="T"`` or ``"V"``.
``grid-ttk``
    TTK's Kuhn-Freudenthal triangulation of a regular grid (the paper's "image").
``delaunay``, ``gabriel``
    ``scipy.spatial.Delaunay`` (Qhull) edges; the Gabriel graph by Gabriel & Sokal 1969's
    closed-ball definition.
``knn``, ``knn-approx``
    The union of each point's k nearest neighbours, exact (scipy ``cKDTree``) or approximate
    (pynndescent's NN-Descent). The paper authors' pipeline builds its kNN graph with
    pynndescent, ``k = 4 x dimension``, as the union of the neighbour lists: that is the
    default here (:func:`default_k`, 8 in 2D, 16 in 4D) wherever ``k`` is not given.

This module never imports torch.
"""

from __future__ import annotations

import numpy as np

from saddles.topology.graphs import (
    _check_points,
    _check_shape,
    delaunay_edges,
    gabriel_edges,
    grid_edges,
    knn_edges,
    resolve_knn_method,
)
from saddles.topology.mergetree import MergeTree, merge_tree, merge_tree_grid

#: Representations of a sampled landscape (Xie et al. 2024, section 2.2), by name.
REPRESENTATIONS = {
    "grid-full": "grid, 8 neighbours in 2D (3^N - 1): the image as gudhi/cripser see it",
    "grid-faces": "grid, 4 neighbours in 2D (2N)",
    "grid-ttk": "grid, 6 neighbours in 2D: TTK's triangulation of an image (the paper's 'image')",
    "delaunay": "Delaunay triangulation of the sample points",
    "gabriel": "Gabriel graph of the sample points",
    "knn": "exact k-nearest-neighbour graph (union), k-d tree",
    "knn-approx": "approximate k-nearest-neighbour graph (union), NN-Descent as the paper",
}

#: Grid representations and the ``graphs.grid_edges`` connectivity each uses.
GRID_REPRESENTATIONS = {"grid-full": "full", "grid-faces": "faces", "grid-ttk": "freudenthal"}

#: The paper authors' kNN rule: k = KNN_K_PER_DIM x the landscape's dimension.
KNN_K_PER_DIM = 4

_KNN_METHODS = {"knn": "exact", "knn-approx": "approximate"}


def default_k(dims: int) -> int:
    """Neighbours per point of a kNN representation in ``dims`` dimensions: ``4 x dims``."""
    if not isinstance(dims, (int, np.integer)) or dims < 1:
        raise ValueError(f"dims must be a positive integer, not {dims!r}")
    return KNN_K_PER_DIM * int(dims)


def representation_k(name: str, dims: int, k: int | None = None) -> int | None:
    """The k a representation uses on ``dims``-dimensional points: ``k`` if given, else
    :func:`default_k`; None for representations that take no k."""
    _check_name(name)
    if name not in _KNN_METHODS:
        return None
    return default_k(dims) if k is None else k


def representation_name(
    connectivity: str = "full", *, grid: bool, method: str = "exact", dims: int | None = None
) -> str:
    """The representation named by the older ``(connectivity, method)`` options.

    On a grid, ``connectivity`` (``"full"``, ``"faces"``, ``"freudenthal"``) picks
    ``grid-full``, ``grid-faces`` or ``grid-ttk``; on scattered points, ``method`` (as
    :func:`~saddles.topology.graphs.knn_edges` reads it, ``"auto"`` resolved for ``dims``)
    picks ``knn`` or ``knn-approx``.
    """
    if grid:
        names = {conn: name for name, conn in GRID_REPRESENTATIONS.items()}
        if connectivity not in names:
            raise ValueError(
                f"connectivity must be one of {', '.join(names)}, not {connectivity!r}"
            )
        return names[connectivity]
    if method == "auto" and dims is None:
        raise ValueError("method='auto' needs dims to choose between knn and knn-approx")
    chosen = resolve_knn_method(dims or 1, method)
    return "knn" if chosen == "exact" else "knn-approx"


def representation_edges(
    name: str,
    *,
    coords: np.ndarray | None = None,
    shape: tuple[int, ...] | None = None,
    k: int | None = None,
    mode: str = "union",
) -> np.ndarray:
    """Edge list ``(m, 2)`` of representation ``name``.

    Grid names need ``shape`` (vertices in C order); the others need ``coords``, ``(n, d)``
    points. ``k`` (default ``4 x d``) and ``mode`` (``"union"`` or ``"mutual"``) apply to
    ``knn``/``knn-approx``.
    """
    _check_name(name)
    if name in GRID_REPRESENTATIONS:
        return grid_edges(_grid_shape(name, shape), GRID_REPRESENTATIONS[name])
    points = _points(name, coords)
    if name == "delaunay":
        return delaunay_edges(points)
    if name == "gabriel":
        return gabriel_edges(points)
    k = representation_k(name, points.shape[1], k)
    return knn_edges(points, k=k, method=_KNN_METHODS[name], mode=mode)


def representation_tree(
    name: str,
    values: np.ndarray,
    *,
    coords: np.ndarray | None = None,
    shape: tuple[int, ...] | None = None,
    k: int | None = None,
    mode: str = "union",
    nan_policy: str = "max",
) -> MergeTree:
    """Merge tree of ``values`` (one per point, flat or in the grid's shape) under ``name``.

    Grids go through :func:`~saddles.topology.mergetree.merge_tree_grid` (same tree as the
    edge list, without building it); other names through ``merge_tree`` over
    :func:`representation_edges`. ``nan_policy="max"`` (the default) sweeps diverged points
    last; ``"raise"`` rejects them.
    """
    _check_name(name)
    values = np.asarray(values)
    if name in GRID_REPRESENTATIONS:
        shape = _grid_shape(name, shape)
        if values.size != int(np.prod(shape)):
            raise ValueError(f"{values.size} values do not fill a grid of shape {shape}")
        return merge_tree_grid(
            values.reshape(shape), GRID_REPRESENTATIONS[name], nan_policy=nan_policy
        )
    points = _points(name, coords)
    if values.size != len(points):
        raise ValueError(f"{values.size} values but {len(points)} points")
    edges = representation_edges(name, coords=points, k=k, mode=mode)
    return merge_tree(values.reshape(-1), edges, nan_policy=nan_policy)


def _check_name(name: str) -> None:
    if name not in REPRESENTATIONS:
        raise ValueError(
            f"unknown representation {name!r}; choose from {', '.join(REPRESENTATIONS)}"
        )


def _grid_shape(name: str, shape) -> tuple[int, ...]:
    if shape is None:
        raise ValueError(f"{name} needs a grid landscape; these are scattered points")
    return _check_shape(shape)


def _points(name: str, coords) -> np.ndarray:
    if coords is None:
        raise ValueError(f"{name} needs the sample points' coordinates")
    return _check_points(coords, min_points=2)
