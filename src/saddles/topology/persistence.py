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
