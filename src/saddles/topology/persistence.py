"""0-dimensional persistence diagrams read off a merge tree, in two conventions.

*Standard* (gudhi, ripser, cripser): each finite pair is (birth, death), and each connected
component contributes one essential class (birth, inf), which :func:`persistence_diagram`
returns separately so that the finite part stays a plain float array.

*TTK* (what the paper's numbers come from): the essential class of a component is paired with
that component's maximum value, (global min, global max), so every pair has a finite
persistence. :func:`ttk_diagram` returns that form. TTK also draws a display-only diagonal
cell (pair id -1); it is not a pair and saddles never reports it.

Zero-persistence pairs (a branch that dies at its own value, common with float32 ties) are
kept by default, as TTK keeps them; gudhi reports them only with ``min_persistence=-1`` and
cripser/ripser never. Pass ``drop_zero=True`` to compare with those libraries.

This module never imports torch.
"""

from __future__ import annotations

import numpy as np

from saddles.topology.mergetree import MergeTree


def persistence_diagram(tree: MergeTree, drop_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(finite, essential)``: ``(p, 2)`` finite pairs and ``(c, 2)`` (birth, inf) rows."""
    finite = tree.diagram()
    if drop_zero:
        finite = finite[finite[:, 1] > finite[:, 0]]
    return finite, tree.essential_diagram()


def ttk_diagram(tree: MergeTree, drop_zero: bool = False) -> np.ndarray:
    """TTK's diagram: the finite pairs followed by one (component min, component max) per
    component. Every row is finite."""
    finite = tree.diagram()
    if drop_zero:
        finite = finite[finite[:, 1] > finite[:, 0]]
    ess = np.stack([tree.values[tree.essential[:, 0]], tree.values[tree.essential[:, 1]]], axis=1)
    return np.concatenate([finite, ess])


def persistence_pairs(
    tree: MergeTree, coords: np.ndarray | None = None, shape: tuple[int, ...] | None = None
) -> dict[str, np.ndarray]:
    """Every pair of :func:`ttk_diagram` as columns: what is written to ``pairs-*.npz`` and
    listed by ``saddles topology --pairs``.

    Rows: the finite pairs in the order of ``tree.pairs``, then one row per component for its
    essential class, paired as TTK pairs it with the component's maximum (``essential`` is
    True there; the standard convention's death would be +inf). Columns: ``pair_id`` (the row),
    ``birth_vertex``/``death_vertex`` (vertex ids), ``birth``/``death`` (values),
    ``persistence``, ``essential``, and, given ``coords`` (``(n, k)``, one row per vertex,
    e.g. a landscape's coordinates) or a grid ``shape`` (grid indices in C order),
    ``birth_coords``/``death_coords`` as ``(p, k)`` arrays.
    """
    birth_v = np.concatenate([tree.pairs[:, 0], tree.essential[:, 0]]).astype(np.int64)
    death_v = np.concatenate([tree.pairs[:, 1], tree.essential[:, 1]]).astype(np.int64)
    out = {
        "pair_id": np.arange(len(birth_v), dtype=np.int64),
        "birth_vertex": birth_v,
        "death_vertex": death_v,
        "birth": tree.values[birth_v],
        "death": tree.values[death_v],
        "persistence": tree.values[death_v] - tree.values[birth_v],
        "essential": np.arange(len(birth_v)) >= len(tree.pairs),
    }
    if coords is not None:
        coords = np.asarray(coords, dtype=np.float64)
        if coords.ndim != 2 or len(coords) != tree.n_vertices:
            raise ValueError(f"coords must be ({tree.n_vertices}, k), not {coords.shape}")
        out["birth_coords"], out["death_coords"] = coords[birth_v], coords[death_v]
    elif shape is not None:
        if int(np.prod(shape)) != tree.n_vertices:
            raise ValueError(f"shape {tuple(shape)} does not hold {tree.n_vertices} vertices")
        for key, verts in (("birth_coords", birth_v), ("death_coords", death_v)):
            out[key] = np.stack(np.unravel_index(verts, tuple(shape)), axis=1).astype(np.int64)
    return out


#: The connectivity of the complement: for 2D grids, H1 of sublevel sets under one
#: connectivity is H0 of superlevel sets under the other (digital topology's (4, 8) pairing;
#: Kong & Rosenfeld 1989), and the Freudenthal triangulation is its own complement.
COMPLEMENT = {"faces": "full", "full": "faces", "freudenthal": "freudenthal"}


def loops_diagram(field: np.ndarray, connectivity: str = "full") -> np.ndarray:
    """1-dimensional persistence (loops) of the sublevel filtration of a 2D or 3D grid field.

    Returns an ``(p, 2)`` array of (birth, death) with death > birth; a rectangle has no
    essential loops. The connectivity means the same as for 0-dim persistence (``"full"``:
    gudhi's ``top_dimensional_cells``; ``"faces"``: ``vertices``).

    2D fields use duality: a loop of ``{f <= t}`` is a bounded component of ``{f > t}`` under
    the complementary connectivity, born when that component is cut off from the outside or
    from another one and dying at its maximum. So the loops are the finite 0-dim pairs of ``-f``
    on the complementary grid plus one outside vertex joined to the whole boundary, with
    (birth, death) = (-death, -birth). 3D fields use gudhi's cubical complex (``"full"`` or
    ``"faces"``).
    """
    from saddles.topology.graphs import CONNECTIVITIES, grid_edges
    from saddles.topology.mergetree import merge_tree

    field = np.asarray(field, dtype=np.float64)
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {CONNECTIVITIES}, not {connectivity!r}")
    if not np.isfinite(field).all():
        raise ValueError("loops_diagram needs finite values (replace NaN/inf first)")
    if field.ndim == 3:
        return _loops_gudhi_3d(field, connectivity)
    if field.ndim != 2:
        raise ValueError(f"loops are computed for 2D and 3D grids, not {field.ndim}D")
    ny, nx = field.shape
    n = field.size
    index = np.arange(n).reshape(field.shape)
    boundary = np.unique(np.concatenate([index[0], index[-1], index[:, 0], index[:, -1]]))
    outside = np.stack([boundary, np.full_like(boundary, n)], axis=1)
    edges = np.concatenate([grid_edges(field.shape, COMPLEMENT[connectivity]), outside])
    g = -field.ravel()
    values = np.append(g, g.min() - 1.0)  # the outside comes first: the eldest component
    diagram = merge_tree(values, edges).diagram()
    loops = np.stack([-diagram[:, 1], -diagram[:, 0]], axis=1)
    return loops[loops[:, 1] > loops[:, 0]]


def _loops_gudhi_3d(field: np.ndarray, connectivity: str) -> np.ndarray:
    if connectivity == "freudenthal":
        raise ValueError("3D loops are computed for 'full' and 'faces' grids (gudhi's cubes)")
    try:
        import gudhi
    except ImportError as exc:  # pragma: no cover - gudhi is a dependency
        raise ImportError("3D loops need gudhi (pip install gudhi)") from exc
    cc = (
        gudhi.CubicalComplex(top_dimensional_cells=field)
        if connectivity == "full"
        else gudhi.CubicalComplex(vertices=field)
    )
    cc.compute_persistence(homology_coeff_field=2, min_persistence=0)
    pairs = cc.persistence_intervals_in_dimension(1)
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return pairs[np.isfinite(pairs[:, 1]) & (pairs[:, 1] > pairs[:, 0])]


def loop_metrics(loops: np.ndarray) -> dict[str, float | int]:
    """Count and persistence statistics of a loops diagram (0 when there are none)."""
    p = loops[:, 1] - loops[:, 0] if len(loops) else np.zeros(0)
    return {
        "n_loops": int(len(p)),
        "average_loop_persistence": float(p.mean()) if len(p) else 0.0,
        "total_loop_persistence": float(p.sum()),
        "max_loop_persistence": float(p.max()) if len(p) else 0.0,
    }
