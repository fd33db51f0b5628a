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

With a ``threshold``, every count and statistic is repeated after :func:`simplify` with the
suffix ``_simplified``, and ``simplification_threshold`` gives the absolute threshold used.

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
    if threshold is not None:
        absolute = threshold * (out["value_max"] - out["value_min"]) if relative else threshold
        simple = _metrics(simplify(tree, absolute))
        for key, value in simple.items():
            if key not in ("n_vertices", "value_min", "value_max", "n_nonfinite"):
                out[f"{key}_simplified"] = value
        out["simplification_threshold"] = float(absolute)
    return out


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
