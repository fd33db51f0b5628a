"""Connectivity: which samples of a landscape are neighbours.

Every builder returns an undirected edge array of shape ``(m, 2)`` and dtype int64, each row
``(i, j)`` with ``i < j``, no duplicates and no self-loops, sorted lexicographically. Vertices
of a grid are numbered in C order (``np.ravel`` order: the last numpy axis varies fastest).

Grid connectivities (``grid_edges``; ``grid_offsets`` lists the neighbour offsets):

``"faces"``
    Neighbours differ by one step along one axis: 2N neighbours (4 in 2D, 6 in 3D). This is
    ``gudhi.CubicalComplex(vertices=...)`` and ``cripser``'s ``filtration="V"``.
``"full"``
    Neighbours differ by at most one step along every axis: 3^N - 1 neighbours (8 in 2D, 26
    in 3D). This is ``gudhi.CubicalComplex(top_dimensional_cells=...)``, ``cripser``'s
    ``filtration="T"`` and ``ripser.lower_star_img``.
``"freudenthal"``
    The Kuhn-Freudenthal triangulation that TTK's implicit triangulation puts on a regular grid,
    which is where the paper's "image" numbers come from. With x the fastest-varying index (the
    last numpy axis) flipped, a vertex is joined to every offset in {0, 1}^N \\ {0} and its
    negative: 6 neighbours in 2D (vertex (x, y) is also joined to (x+1, y-1)), 14 in 3D, 2^(N+1)
    - 2 in N-D. In 2D and 3D this is exactly TTK's neighbour table.

Scattered points (``delaunay_edges``, ``gabriel_edges``, ``knn_edges``) follow the paper's
unstructured representations. Sparse graphs (Gabriel) produce many low-persistence minima;
the graph is a modelling choice, and the metrics should be compared within one choice.

This module never imports torch.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

log = logging.getLogger("saddles")

CONNECTIVITIES = ("faces", "full", "freudenthal")
MAX_GRID_DIM = 10

#: Above this dimension ``knn_edges(method="auto")`` switches from an exact k-d tree to
#: NN-Descent: measured on 10^5 points, cKDTree k=8 took 0.4 s in 2D, 1.7 s in 5D, 37 s in 10D.
KNN_EXACT_MAX_DIM = 5


def grid_offsets(ndim: int, connectivity: str = "full") -> np.ndarray:
    """Neighbour offsets of a grid vertex, one per row, both signs included.

    Returns an ``(k, ndim)`` int64 array in numpy axis order (last axis fastest).
    """
    _check_connectivity(connectivity)
    if not 1 <= ndim <= MAX_GRID_DIM:
        raise ValueError(f"grids of 1 to {MAX_GRID_DIM} dimensions are supported, not {ndim}")
    if connectivity == "faces":
        half = np.eye(ndim, dtype=np.int64)
    elif connectivity == "full":
        cube = np.array(list(itertools.product((-1, 0, 1), repeat=ndim)), dtype=np.int64)
        # Keep one of each +-pair: those whose first nonzero entry is positive.
        first_nonzero = cube[np.arange(len(cube)), np.argmax(cube != 0, axis=1)]
        half = cube[first_nonzero > 0]
    else:  # freudenthal
        half = np.array(list(itertools.product((0, 1), repeat=ndim))[1:], dtype=np.int64)
        half[:, -1] *= -1  # flip x, the fastest axis, as TTK does
    return np.concatenate([half, -half])


def grid_edges(shape: tuple[int, ...] | list[int], connectivity: str = "full") -> np.ndarray:
    """Edges of a regular grid of the given shape (vertices numbered in C order)."""
    shape = _check_shape(shape)
    offsets = grid_offsets(len(shape), connectivity)
    half = offsets[: len(offsets) // 2]
    index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    parts = []
    for off in half:
        src = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(off, shape, strict=True))
        dst = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(off, shape, strict=True))
        a, b = index[src].ravel(), index[dst].ravel()
        parts.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    return _canonical(np.concatenate(parts))


def delaunay_edges(points: np.ndarray) -> np.ndarray:
    """Edges of the Delaunay triangulation of points in 2 to about 6 dimensions (scipy/Qhull).

    Qhull's cost grows steeply with dimension: 10^4 points in 5D took 36 s here and 10D does
    not finish; use ``knn_edges`` there.
    """
    from scipy.spatial import Delaunay, QhullError

    points = _check_points(points, min_points=3)
    if points.shape[1] < 2:
        raise ValueError("Delaunay triangulation needs points in at least 2 dimensions")
    if points.shape[1] > 8:
        raise ValueError(
            f"Delaunay triangulation in {points.shape[1]} dimensions is intractable; "
            "use knn_edges for points in more than about 6 dimensions"
        )
    try:
        tri = Delaunay(points)
    except QhullError as exc:
        raise ValueError(
            f"Delaunay triangulation failed (degenerate points?): {str(exc).splitlines()[0]}"
        ) from exc
    indptr, indices = tri.vertex_neighbor_vertices
    src = np.repeat(np.arange(len(points), dtype=np.int64), np.diff(indptr))
    return _canonical(np.stack([src, indices.astype(np.int64)], axis=1))


def gabriel_edges(points: np.ndarray, delaunay: np.ndarray | None = None) -> np.ndarray:
    """Edges of the Gabriel graph: (i, j) such that no other point lies strictly inside the
    ball with diameter [p_i, p_j] (Gabriel & Sokal 1969).

    The Gabriel graph is a subgraph of the Delaunay triangulation, so candidates come from
    ``delaunay`` (computed when not given). Each candidate is tested with a k-d tree query at
    the edge's midpoint that ignores the edge's own endpoints (they lie on the sphere, and
    rounding would otherwise put them inside and drop the edge).
    """
    from scipy.spatial import cKDTree

    points = _check_points(points, min_points=3)
    cand = delaunay_edges(points) if delaunay is None else _check_edges(delaunay, len(points))
    if len(cand) == 0:
        return cand
    mid = 0.5 * (points[cand[:, 0]] + points[cand[:, 1]])
    radius = 0.5 * np.linalg.norm(points[cand[:, 0]] - points[cand[:, 1]], axis=1)
    dist, idx = cKDTree(points).query(mid, k=3)
    own = (idx == cand[:, [0]]) | (idx == cand[:, [1]])
    dist = np.where(own, np.inf, dist)
    inside = dist.min(axis=1) < radius * (1 - 1e-12)
    return cand[~inside]


def knn_edges(
    points: np.ndarray,
    k: int = 8,
    method: str = "auto",
    mode: str = "union",
    random_state: int = 0,
) -> np.ndarray:
    """k-nearest-neighbour graph of points in 1 to 10 dimensions.

    ``method``: ``"exact"`` (scipy ``cKDTree``), ``"approximate"`` (NN-Descent, Dong et al. 2011,
    via pynndescent, as in the paper; pays a numba JIT of tens of seconds per fresh process), or
    ``"auto"``: exact up to ``KNN_EXACT_MAX_DIM`` dimensions, approximate above (logged).
    ``mode``: ``"union"`` joins i and j when either is among the other's k nearest (the paper's
    code, which used k = 4 x dimension); ``"mutual"`` only when both are.
    """
    points = _check_points(points, min_points=2)
    n, dim = points.shape
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    if mode not in ("union", "mutual"):
        raise ValueError(f"mode must be 'union' or 'mutual', not {mode!r}")
    k = min(int(k), n - 1)
    method = resolve_knn_method(dim, method)
    if method == "exact":
        from scipy.spatial import cKDTree

        _, idx = cKDTree(points).query(points, k=k + 1)
    else:
        from pynndescent import NNDescent

        index = NNDescent(points, n_neighbors=k + 1, random_state=random_state)
        idx, _ = index.neighbor_graph
    idx = _drop_self(np.asarray(idx, dtype=np.int64), k)
    src = np.repeat(np.arange(n, dtype=np.int64), k)
    dst = idx.ravel()
    ok = dst >= 0  # NN-Descent may leave -1 for unfilled slots
    src, dst = src[ok], dst[ok]
    if mode == "union":
        return _canonical(np.stack([src, dst], axis=1))
    directed = np.unique(src * n + dst)
    reverse = dst * n + src
    both = np.isin(reverse, directed)
    return _canonical(np.stack([src[both], dst[both]], axis=1))


def resolve_knn_method(dim: int, method: str = "auto") -> str:
    """Turn ``method="auto"`` into ``"exact"`` or ``"approximate"`` for points of ``dim``."""
    if method not in ("auto", "exact", "approximate"):
        raise ValueError(f"method must be 'auto', 'exact' or 'approximate', not {method!r}")
    if method != "auto":
        return method
    chosen = "exact" if dim <= KNN_EXACT_MAX_DIM else "approximate"
    log.info("knn_edges: %d-D points, method='auto' chose %s", dim, chosen)
    return chosen


def _drop_self(idx: np.ndarray, k: int) -> np.ndarray:
    """From (n, k+1) neighbour lists that include each point itself, keep k others per row.

    The point itself is usually first, but not when duplicates tie with it at distance 0.
    """
    rows = np.arange(len(idx))[:, None]
    is_self = idx == rows
    has_self = is_self.any(axis=1)
    # Rows with self: drop that entry; rows without (duplicates filled the list): drop the last.
    drop = np.where(has_self, np.argmax(is_self, axis=1), idx.shape[1] - 1)
    keep = np.ones(idx.shape, dtype=bool)
    keep[np.arange(len(idx)), drop] = False
    return idx[keep].reshape(len(idx), k)


def _canonical(edges: np.ndarray) -> np.ndarray:
    """Rows (min, max), self-loops and duplicates removed, sorted."""
    edges = np.sort(np.asarray(edges, dtype=np.int64), axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    if len(edges) == 0:
        return edges.reshape(0, 2)
    return np.unique(edges, axis=0)


def _check_connectivity(connectivity: str) -> None:
    if connectivity not in CONNECTIVITIES:
        raise ValueError(
            f"connectivity must be one of {', '.join(CONNECTIVITIES)}, not {connectivity!r}"
        )


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not 1 <= len(shape) <= MAX_GRID_DIM:
        raise ValueError(f"grids of 1 to {MAX_GRID_DIM} dimensions are supported, not {len(shape)}")
    if any(s < 1 for s in shape):
        raise ValueError(f"every grid axis needs at least one point; shape is {shape}")
    return shape


def _check_points(points: np.ndarray, min_points: int) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"points must be an (n, d) array, got shape {points.shape}")
    if not 1 <= points.shape[1] <= MAX_GRID_DIM:
        raise ValueError(f"points must have 1 to {MAX_GRID_DIM} coordinates, not {points.shape[1]}")
    if len(points) < min_points:
        raise ValueError(f"need at least {min_points} points, got {len(points)}")
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or inf coordinates")
    return points


def _check_edges(edges: np.ndarray, n_vertices: int) -> np.ndarray:
    edges = np.asarray(edges)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must be an (m, 2) array, got shape {edges.shape}")
    if len(edges) and not np.issubdtype(edges.dtype, np.integer):
        raise ValueError(f"edges must hold integer vertex indices, not {edges.dtype}")
    edges = edges.astype(np.int64, copy=False)
    if len(edges) and (edges.min() < 0 or edges.max() >= n_vertices):
        bad = edges[(edges < 0) | (edges >= n_vertices)][0]
        raise ValueError(
            f"edges name vertex {bad}, but there are only {n_vertices} vertices "
            f"(valid indices 0..{n_vertices - 1})"
        )
    return edges
