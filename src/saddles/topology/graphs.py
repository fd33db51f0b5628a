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
Exact duplicate points never end up isolated: Delaunay and Gabriel join each duplicate to its
twin (Qhull itself drops duplicates), and kNN lists them as neighbours at distance 0.
:mod:`saddles.topology.representations` names these graphs and picks their defaults.

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

#: A point whose squared distance to an edge's midpoint exceeds the squared half-length by at
#: most this fraction counts as on the edge's diametral sphere (see ``gabriel_edges``).
GABRIEL_RTOL = 1e-9


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


def delaunay_edges(points: np.ndarray, qhull_options: str | None = None) -> np.ndarray:
    """Edges of the Delaunay triangulation of points in 2 to about 6 dimensions (scipy/Qhull).

    Qhull leaves exact duplicates out of the triangulation; here each duplicate is joined to
    its twin (the first occurrence of the same coordinates) and has no other edge, so every
    point stays connected. A point Qhull drops for being within its precision of a vertex is
    likewise joined to that vertex. ``qhull_options`` goes to ``scipy.spatial.Delaunay``.

    Qhull's cost grows steeply with dimension: 10^4 points in 5D took 36 s here and 10D does
    not finish; use ``knn_edges`` there.
    """
    points = _check_points(points, min_points=3)
    first, inverse = _distinct(points)
    return _expand(_delaunay(points[first], qhull_options), first, inverse)


def gabriel_edges(
    points: np.ndarray, delaunay: np.ndarray | None = None, qhull_options: str | None = None
) -> np.ndarray:
    """Edges of the Gabriel graph (Gabriel & Sokal 1969; Matula & Sokal 1980's inequality).

    ``(i, j)`` is an edge iff no other point lies in the CLOSED ball with diameter
    ``[p_i, p_j]``: for every other point c, ``|p_i - c|^2 + |p_j - c|^2 > |p_i - p_j|^2``.
    A point on the sphere (a right angle at c) removes the edge. With this definition every
    Gabriel edge is strongly Delaunay (an empty closed ball touches only its endpoints), so it
    lies in every Delaunay triangulation and the result does not depend on which one Qhull
    picks for cocircular points: on a regular grid the axis edges are kept and both diagonals
    of each square dropped (a 3x3 grid has 12 edges). "On the sphere" allows a relative
    rounding of ``GABRIEL_RTOL`` in the squared radius, so exactly-cocircular inputs whose
    coordinates carry rounding (``np.linspace`` grids) behave as exact ones.

    Exact duplicates are one point: the graph is built on distinct points and each duplicate
    joined to its twin, as :func:`delaunay_edges` does (a duplicate would otherwise lie on the
    sphere of all of its twin's edges and isolate both).

    Candidates come from ``delaunay`` (any Delaunay triangulation's edges; computed with
    ``qhull_options`` when not given). Each is tested at its midpoint against the nearest
    points of a k-d tree other than its own endpoints (they lie on the sphere by definition).
    """
    from scipy.spatial import cKDTree

    points = _check_points(points, min_points=3)
    first, inverse = _distinct(points)
    pts = points[first]
    if delaunay is None:
        cand = _delaunay(pts, qhull_options)
    else:
        cand = _canonical(inverse[_check_edges(delaunay, len(points))])
    if len(cand) == 0:
        return _expand(cand, first, inverse)
    p, q = pts[cand[:, 0]], pts[cand[:, 1]]
    r2 = 0.25 * np.einsum("ij,ij->i", p - q, p - q)
    # The nearest non-endpoint to the midpoint decides; with at most two endpoints ahead of
    # it, it is among the 4 nearest (the 4th guards against ties in rounding).
    _, idx = cKDTree(pts).query(0.5 * (p + q), k=min(4, len(pts)))
    blocked = np.zeros(len(cand), dtype=bool)
    for col in np.asarray(idx).reshape(len(cand), -1).T:
        other = (col != cand[:, 0]) & (col != cand[:, 1])
        c = pts[col]
        # (p - c).(q - c) = |c - m|^2 - r^2: <= 0 inside or on the sphere.
        power = np.einsum("ij,ij->i", p - c, q - c)
        blocked |= other & (power <= GABRIEL_RTOL * r2)
    return _expand(cand[~blocked], first, inverse)


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


def _delaunay(points: np.ndarray, qhull_options: str | None) -> np.ndarray:
    """Delaunay edges of distinct points, plus (dropped point, nearest vertex) for any point
    Qhull leaves out as within its precision of a vertex."""
    from scipy.spatial import Delaunay, QhullError

    if points.shape[1] < 2:
        raise ValueError("Delaunay triangulation needs points in at least 2 dimensions")
    if points.shape[1] > 8:
        raise ValueError(
            f"Delaunay triangulation in {points.shape[1]} dimensions is intractable; "
            "use knn_edges for points in more than about 6 dimensions"
        )
    if len(points) < points.shape[1] + 1:
        raise ValueError(
            f"Delaunay triangulation in {points.shape[1]}D needs at least "
            f"{points.shape[1] + 1} distinct points, got {len(points)}"
        )
    try:
        # Qhull's tolerances are absolute: centring keeps samples far from the origin (a
        # small box around a trained model's coordinates) from being merged as coplanar.
        tri = Delaunay(points - points.mean(axis=0), qhull_options=qhull_options)
    except QhullError as exc:
        raise ValueError(
            f"Delaunay triangulation failed (degenerate points?): {str(exc).splitlines()[0]}"
        ) from exc
    indptr, indices = tri.vertex_neighbor_vertices
    src = np.repeat(np.arange(len(points), dtype=np.int64), np.diff(indptr))
    edges = np.stack([src, indices.astype(np.int64)], axis=1)
    if len(tri.coplanar):
        edges = np.concatenate([edges, tri.coplanar[:, [0, 2]].astype(np.int64)])
    return _canonical(edges)


def _distinct(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)``: ``points[first]`` are the distinct points (each at its first
    occurrence) and ``inverse[i]`` is the distinct point that point ``i`` equals."""
    _, first, inverse = np.unique(points, axis=0, return_index=True, return_inverse=True)
    return first.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def _expand(edges: np.ndarray, first: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Edges among distinct points, renumbered to the input points, plus one edge from every
    duplicate to its twin (the first occurrence)."""
    twin = first[inverse]
    dup = np.flatnonzero(twin != np.arange(len(inverse)))
    edges = np.concatenate([first[edges].reshape(-1, 2), np.stack([dup, twin[dup]], axis=1)])
    return _canonical(edges)


def _canonical(edges: np.ndarray) -> np.ndarray:
    """Rows (min, max), self-loops and duplicates removed, sorted."""
    edges = np.sort(np.asarray(edges, dtype=np.int64), axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    if len(edges) == 0:
        return edges.reshape(0, 2)
    # One int64 key per edge sorts as the rows do, and np.unique on keys is ~10x faster than
    # on rows (axis=0); vertex ids stay below 2^31 for any graph that fits in memory.
    n = int(edges[:, 1].max()) + 1
    keys = np.unique(edges[:, 0] * n + edges[:, 1])
    return np.stack([keys // n, keys % n], axis=1)


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
