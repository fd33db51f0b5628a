"""Stages 3-4 of saddles: connectivity, merge trees, persistence and metrics.

``graphs`` builds neighbour graphs, ``representations`` names them (the one place every path
turns a representation name into a graph and a merge tree), ``mergetree``, ``persistence`` and
``metrics`` do the rest; ``distances`` compares two diagrams.

This package never imports torch, so the ``saddles topology`` command starts fast.

    >>> import numpy as np
    >>> from saddles.topology import merge_tree_grid, compute_metrics
    >>> x = np.linspace(-2, 2, 101)
    >>> field = np.cos(3 * x)[:, None] + np.cos(3 * x)[None, :]
    >>> compute_metrics(merge_tree_grid(field, "full"))["n_minima"]
    4
"""

from saddles.topology.distances import (
    bottleneck_distance,
    diagram_distances,
    wasserstein_distance,
)
from saddles.topology.graphs import (
    CONNECTIVITIES,
    delaunay_edges,
    gabriel_edges,
    grid_edges,
    grid_offsets,
    knn_edges,
    resolve_knn_method,
)
from saddles.topology.mergetree import MergeTree, merge_tree, merge_tree_grid, simplify
from saddles.topology.metrics import (
    NOISE_MULTIPLE,
    basin_sizes,
    compute_metrics,
    noise_metrics,
    smad,
    smad_normalized,
)
from saddles.topology.persistence import (
    loop_metrics,
    loops_diagram,
    persistence_diagram,
    persistence_pairs,
    ttk_diagram,
)
from saddles.topology.representations import (
    REPRESENTATIONS,
    default_k,
    representation_edges,
    representation_name,
    representation_tree,
)

__all__ = [
    "CONNECTIVITIES",
    "MergeTree",
    "REPRESENTATIONS",
    "basin_sizes",
    "bottleneck_distance",
    "compute_metrics",
    "noise_metrics",
    "NOISE_MULTIPLE",
    "default_k",
    "delaunay_edges",
    "diagram_distances",
    "gabriel_edges",
    "grid_edges",
    "grid_offsets",
    "knn_edges",
    "loop_metrics",
    "loops_diagram",
    "merge_tree",
    "merge_tree_grid",
    "persistence_diagram",
    "persistence_pairs",
    "representation_edges",
    "representation_name",
    "representation_tree",
    "resolve_knn_method",
    "simplify",
    "smad",
    "smad_normalized",
    "ttk_diagram",
    "wasserstein_distance",
]
