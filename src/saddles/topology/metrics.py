"""Scalar summaries of a merge tree and its persistence diagram.

Definitions (p_i = death_i - birth_i over the pairs named):

- ``n_minima``: vertices that come before all their neighbours in (value, index) order; each
  starts a branch (degree-1 nodes of the merge tree, the paper's minima).
- ``n_saddles``: distinct vertices where two or more branches merge (the paper's saddles).
  A vertex where three branches meet counts once; ``n_merge_events`` counts each branch that
  dies (= the number of finite pairs = ``n_minima - n_components``).
- ``n_components``: connected components (essential classes).
- ``average_persistence``, ``total_persistence``, ``max_persistence``,
  ``median_persistence``, ``persistence_entropy``: over TTK's diagram, i.e. the finite pairs
  plus each component's essential class paired with that component's maximum. This is the
  convention behind the paper's numbers: one smooth basin has average persistence = its value
  range, which is why the ResNet with skips has the *higher* average persistence.
- ``average_finite_persistence`` (and ``total_``/``max_``/``median_finite_persistence``,
  ``finite_persistence_entropy``): the same over finite pairs only (0 when there are none).
- ``persistence_entropy``: -sum q_i log q_i with q_i = p_i / sum p (Chintakunta et al. 2015);
  0 when every p_i is 0.
- ``value_min``, ``value_max``: the range of the (finite) field.
- ``smad``: Landscaper's saddle-minimum average distance, the mean of f(saddle) - f(minimum)
  over the merge tree's edges from each minimum up to its parent node, where that parent is a
  saddle (:func:`minimum_saddle_edges`). Unlike ``average_finite_persistence`` it counts the
  elder minimum at each saddle too. Landscaper 1.3.1 takes these edges from topopy's contour
  tree; where both trees have the same minimum-saddle edges the values agree. 0 without edges.
- ``smad_normalized``: ``smad`` divided by the value range (0 for a constant field).
- ``smad_basin_weighted``: the mean of the same differences weighted by each minimum's basin
  share, ``sum_e w_e d_e / sum_e w_e`` (0 without edges).
- ``basin_sizes`` (a list, largest first) and ``largest_basin_share``: the *basin* of a
  minimum is its sublevel component just before it joins its parent saddle (the leaf arc's
  segment of the merge tree, TTK's arc segmentation); a minimum that never merges has its
  whole component. The share is the basin's size over ``n_vertices``. Basins are nested
  regions below saddles, so they need not cover every point and shares need not sum to 1.

With a ``threshold``, every count and statistic is repeated after :func:`simplify` with the
suffix ``_simplified``, and ``simplification_threshold`` gives the absolute threshold used;
``basin_sizes`` is then reported once, for the simplified tree (the basins at the threshold),
since the full tree of a noisy landscape has thousands of tiny ones.

Scale-free values: every persistence statistic (not the entropies, which are already
scale-free) is repeated divided by the field's value range ``value_max - value_min`` with the
suffix ``_relative`` (e.g. ``average_persistence_relative``), so that landscapes of different
loss scales (PINNs at different beta, model sizes, checkpoints) compare fairly. A constant
field has no range: its relative values are NaN.

Noise: :func:`noise_metrics` counts the features that rounding cannot have made.

This module never imports torch.
"""

from __future__ import annotations

import numpy as np

from saddles.topology.mergetree import MergeTree, simplify


def compute_metrics(
    tree: MergeTree, threshold: float | None = None, relative: bool = False
) -> dict[str, float | int]:
    """Counts and persistence statistics of ``tree`` (see the module docstring)."""
    out = _metrics(tree)
    shown = tree
    if threshold is not None:
        absolute = threshold * (out["value_max"] - out["value_min"]) if relative else threshold
        shown = simplify(tree, absolute)
        simple = _metrics(shown)
        for key, value in simple.items():
            if key not in ("n_vertices", "value_min", "value_max", "n_nonfinite"):
                out[f"{key}_simplified"] = value
        out["simplification_threshold"] = float(absolute)
    if tree.sizes is not None:
        out["basin_sizes"] = sorted(basin_sizes(shown).values(), reverse=True)
    span = out["value_max"] - out["value_min"]
    for key in [
        k for k in out if k.endswith("persistence") or k.endswith("persistence_simplified")
    ]:
        out[f"{key}_relative"] = float(out[key] / span) if span > 0 else float("nan")
    return out


#: A feature is above the noise when its persistence exceeds this multiple of the noise floor.
NOISE_MULTIPLE = 2.0


def noise_metrics(
    tree: MergeTree,
    noise_floor: float,
    multiple: float = NOISE_MULTIPLE,
    batch_floor: float = float("nan"),
) -> dict[str, float | int | str]:
    """Minima and saddles whose persistence is at least ``multiple x`` the noise floor.

    ``noise_floor`` bounds the error of each value from the arithmetic (e.g. the largest
    |float32 - float64| difference of the loss, :func:`saddles.landscape.noise.noise_floor`);
    ``batch_floor``, when measured, bounds it from the evaluation data (the spread of the
    differences between landscapes on disjoint parts of it, scaled to the full landscape's
    error: :func:`saddles.landscape.noise.batch_floor`). The larger of the two is the floor used
    (``noise_floor``; ``noise_floor_source`` says which: ``"arithmetic"`` or ``"batch"``), and
    both are kept (``arithmetic_floor``, ``batch_floor``). A pair's persistence is a
    difference of two values, so errors of at most the floor change it by at most twice the
    floor: a pair below ``2 x floor`` may be made by the noise alone, one above cannot. The
    counts are those of the tree simplified at that threshold (each component keeps its
    global minimum). No finite floor (neither measured) gives NaN counts.
    """
    floors = {"arithmetic": float(noise_floor), "batch": float(batch_floor)}
    known = {k: v for k, v in floors.items() if np.isfinite(v) and v >= 0}
    record = {"arithmetic_floor": floors["arithmetic"], "batch_floor": floors["batch"]}
    if not known:
        nan = float("nan")
        return {"noise_floor": float(noise_floor), "noise_floor_source": "none",
                "noise_threshold": nan, "n_minima_above_noise": nan,
                "n_saddles_above_noise": nan, **record}  # fmt: skip
    source = max(known, key=lambda k: (known[k], k == "batch"))
    floor = known[source]
    threshold = multiple * floor
    simple = simplify(tree, threshold)
    return {
        "noise_floor": floor,
        "noise_floor_source": source,
        "noise_threshold": threshold,
        "n_minima_above_noise": len(simple.minima),
        "n_saddles_above_noise": len(simple.saddles),
        **record,
    }


def minimum_saddle_edges(tree: MergeTree) -> np.ndarray:
    """``(e, 2)`` vertex ids ``(minimum, saddle)``: each minimum whose parent node in the
    tree is a saddle, with that saddle (a minimum that never merges has no edge)."""
    node_pos = np.full(tree.n_vertices, -1, dtype=np.int64)
    node_pos[tree.nodes] = np.arange(len(tree.nodes))
    minima = tree.minima
    parents = tree.parent[node_pos[minima]]
    is_saddle = (parents >= 0) & np.isin(parents, tree.saddles)
    return np.stack([minima[is_saddle], parents[is_saddle]], axis=1).astype(np.int64)


def basin_sizes(tree: MergeTree) -> dict[int, int]:
    """Points in each minimum's basin, ``{minimum vertex: size}`` (see the module docstring).

    Needs the tree's ``sizes`` (every tree built by ``merge_tree`` or ``merge_tree_grid``,
    and its simplifications, has them)."""
    if tree.sizes is None:
        raise ValueError("this merge tree has no node sizes; build it with merge_tree")
    size_of = dict(zip(tree.nodes.tolist(), tree.sizes.tolist(), strict=True))
    edges = minimum_saddle_edges(tree)
    out = {int(m): int(size_of[int(m)]) for m in edges[:, 0]}
    for m, top in tree.essential.tolist():  # a minimum that never merges: its component
        out.setdefault(int(m), int(size_of[int(top)]))
    return out


def smad(tree: MergeTree, weights: str | None = None) -> float:
    """Saddle-minimum average distance: mean f(saddle) - f(minimum) over
    :func:`minimum_saddle_edges`; ``weights="basin"`` weights each edge by its minimum's basin
    size. 0 when there are no edges."""
    edges = minimum_saddle_edges(tree)
    if len(edges) == 0:
        return 0.0
    d = tree.values[edges[:, 1]] - tree.values[edges[:, 0]]
    if weights is None:
        return float(d.mean())
    if weights != "basin":
        raise ValueError(f"weights must be None or 'basin', not {weights!r}")
    sizes = basin_sizes(tree)
    w = np.array([sizes[int(m)] for m in edges[:, 0]], dtype=np.float64)
    return float((w * d).sum() / w.sum())


def smad_normalized(tree: MergeTree) -> float:
    """:func:`smad` divided by the value range (0 for a constant field)."""
    span = float(tree.values.max() - tree.values.min())
    return smad(tree) / span if span > 0 else 0.0


def _metrics(tree: MergeTree) -> dict[str, float | int]:
    finite = tree.persistence()
    everything = np.concatenate([finite, tree.essential_persistence()])
    out: dict[str, float | int] = {
        "n_vertices": tree.n_vertices,
        "n_components": tree.n_components,
        "n_minima": len(tree.minima),
        "n_saddles": len(tree.saddles),
        "n_merge_events": len(tree.pairs),
        "n_nonfinite": tree.n_nonfinite,
    }
    out.update(_stats(everything, ""))
    out.update(_stats(finite, "finite_"))
    out["value_min"] = float(tree.values.min())
    out["value_max"] = float(tree.values.max())
    out["smad"] = smad(tree)
    out["smad_normalized"] = smad_normalized(tree)
    if tree.sizes is not None:
        out["smad_basin_weighted"] = smad(tree, weights="basin")
        out["largest_basin_share"] = max(basin_sizes(tree).values()) / tree.n_vertices
    return out


def _stats(p: np.ndarray, tag: str) -> dict[str, float]:
    if len(p) == 0:
        return {
            f"average_{tag}persistence": 0.0,
            f"total_{tag}persistence": 0.0,
            f"max_{tag}persistence": 0.0,
            f"median_{tag}persistence": 0.0,
            f"{tag}persistence_entropy": 0.0,
        }
    total = float(p.sum())
    if total > 0:
        q = p[p > 0] / total
        entropy = float(-(q * np.log(q)).sum())
    else:
        entropy = 0.0
    return {
        f"average_{tag}persistence": float(p.mean()),
        f"total_{tag}persistence": total,
        f"max_{tag}persistence": float(p.max()),
        f"median_{tag}persistence": float(np.median(p)),
        f"{tag}persistence_entropy": entropy,
    }
