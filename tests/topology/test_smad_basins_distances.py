"""SMAD and basins on fields whose merge trees are drawn by hand; persistence pairs; diagram
distances against gudhi called directly."""

from __future__ import annotations

import gudhi
import numpy as np
import pytest
from gudhi.hera import wasserstein_distance as hera
from scipy import ndimage

from saddles.topology import (
    basin_sizes,
    compute_metrics,
    diagram_distances,
    merge_tree,
    merge_tree_grid,
    persistence_pairs,
    simplify,
    smad,
    smad_normalized,
)
from saddles.topology.graphs import grid_edges
from saddles.topology.metrics import minimum_saddle_edges

# f = 0 1 2 5 3 4 on a path. Sweep: v0 is born, v1 and v2 join it, v4 is born, v5 joins v4,
# and v3 (5, the highest value) merges {v0, v1, v2} with {v4, v5}: v3 is the saddle and the top.
#
#        v3 (5)            edges (minimum, saddle): (v0, v3): 5 - 0 = 5,  (v4, v3): 5 - 3 = 2
#       /      \           basins: v0 -> {v0, v1, v2} = 3 points, v4 -> {v4, v5} = 2 points
#   v0 (0)    v4 (3)       SMAD = 3.5, basin-weighted = (3 * 5 + 2 * 2) / 5 = 3.8
PATH = np.array([0.0, 1, 2, 5, 3, 4])

# Three wells on a 3x3 grid, 4-neighbours (values 5 at the edges' middles, 6 at the centre):
#   0 5 1      sweep: 0, 1, 2 are born; v1 (0,1) = 5 merges the wells at 0 and 1 (the one at 1
#   5 6 5      dies, persistence 4); v3 (1,0) = 5 merges in the well at 2 (persistence 3);
#   2 5 9      v5, v7 (5), v4 (6) and v8 (9) join.
# Tree: v0 -> v1, v2 -> v1, v1 -> v3, v6 -> v3, v3 -> v8 (the top).
# Minimum-saddle edges: (v0, v1) 5, (v2, v1) 4, (v6, v3) 3: SMAD = 12 / 3 = 4, range 9.
WELLS = np.array([[0.0, 5, 1], [5, 6, 5], [2, 5, 9]])


def test_smad_and_basins_on_a_path():
    tree = merge_tree_grid(PATH)
    np.testing.assert_array_equal(minimum_saddle_edges(tree), [[0, 3], [4, 3]])
    assert basin_sizes(tree) == {0: 3, 4: 2}
    assert smad(tree) == pytest.approx(3.5)
    assert smad(tree, weights="basin") == pytest.approx(3.8)
    assert smad_normalized(tree) == pytest.approx(3.5 / 5)
    m = compute_metrics(tree)
    assert m["smad"] == pytest.approx(3.5) and m["smad_basin_weighted"] == pytest.approx(3.8)
    assert m["largest_basin_share"] == pytest.approx(3 / 6) and m["basin_sizes"] == [3, 2]
    # Above the one finite pair's persistence (2) a single basin is left: the whole path.
    m = compute_metrics(tree, threshold=2.5)
    assert m["smad_simplified"] == 0.0 and m["basin_sizes"] == [6]
    assert m["largest_basin_share_simplified"] == 1.0


def test_smad_on_three_wells_and_after_simplification():
    tree = merge_tree_grid(WELLS, "faces")
    np.testing.assert_array_equal(minimum_saddle_edges(tree), [[0, 1], [2, 1], [6, 3]])
    assert smad(tree) == pytest.approx(4.0)
    assert smad_normalized(tree) == pytest.approx(4 / 9)
    assert basin_sizes(tree) == {0: 1, 2: 1, 6: 1}
    # The well at 2 (persistence 3) goes; v0 and v2 still meet at v1.
    simple = simplify(tree, 3.5)
    np.testing.assert_array_equal(minimum_saddle_edges(simple), [[0, 1], [2, 1]])
    assert smad(simple) == pytest.approx(4.5)
    # The same tree from an explicit edge list.
    same = merge_tree(WELLS.ravel(), grid_edges(WELLS.shape, "faces"))
    assert smad(same) == smad(tree) and basin_sizes(same) == basin_sizes(tree)


def test_no_saddle_no_edge():
    tree = merge_tree_grid(np.arange(5.0))
    assert len(minimum_saddle_edges(tree)) == 0 and smad(tree) == 0.0
    assert basin_sizes(tree) == {0: 5}


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.3])
def test_basins_are_sublevel_components_below_the_parent_saddle(threshold):
    """Brute force: the basin of a minimum m is the component of {f < f(s)} holding m."""
    field = np.random.default_rng(3).random((12, 15))  # no ties
    tree = simplify(merge_tree_grid(field, "faces"), threshold)
    sizes = basin_sizes(tree)
    edges = dict(minimum_saddle_edges(tree).tolist())
    flat = field.ravel()
    for m, size in sizes.items():
        level = flat[edges[m]] if m in edges else np.inf
        labels, _ = ndimage.label(field < level)  # 4-connectivity, as "faces"
        assert size == int((labels == labels.flat[m]).sum()), m


def test_persistence_pairs_with_coordinates():
    tree = merge_tree_grid(WELLS, "faces")
    ys, xs = np.meshgrid([-1.0, 0.0, 1.0], [10.0, 20.0, 30.0], indexing="ij")
    coords = np.stack([ys.ravel(), xs.ravel()], axis=1)
    pairs = persistence_pairs(tree, coords=coords)
    np.testing.assert_array_equal(pairs["birth_vertex"], [2, 6, 0])
    np.testing.assert_array_equal(pairs["death_vertex"], [1, 3, 8])
    np.testing.assert_array_equal(pairs["essential"], [False, False, True])
    np.testing.assert_allclose(pairs["persistence"], [4, 3, 9])
    np.testing.assert_allclose(pairs["birth_coords"][1], [1.0, 10.0])  # v6 = row 2, column 0
    grid = persistence_pairs(tree, shape=WELLS.shape)
    np.testing.assert_array_equal(grid["death_coords"][0], [0, 1])


def _gudhi_diagram(field: np.ndarray) -> np.ndarray:
    """0-dim diagram of gudhi's cubical complex (8-neighbours), essential capped at the max."""
    cc = gudhi.CubicalComplex(top_dimensional_cells=field)
    cc.compute_persistence(min_persistence=-1)
    d = np.asarray(cc.persistence_intervals_in_dimension(0)).reshape(-1, 2)
    d[np.isinf(d[:, 1]), 1] = field.max()
    return d


def test_distances_agree_with_gudhi_on_its_own_diagrams():
    rng = np.random.default_rng(7)
    a, b = rng.random((9, 11)), rng.random((9, 11)) * 3 + 1
    got = diagram_distances(merge_tree_grid(a, "full"), merge_tree_grid(b, "full"))
    da, db = _gudhi_diagram(a), _gudhi_diagram(b)
    assert got["bottleneck"] == pytest.approx(gudhi.bottleneck_distance(da, db), abs=1e-12)
    # saddles rounds to 1.5e-5 of the scale before calling hera (see wasserstein_distance)
    assert got["wasserstein_1"] == pytest.approx(hera(da, db, order=1.0), rel=1e-4)
    assert got["wasserstein_2"] == pytest.approx(hera(da, db, order=2.0), rel=1e-4)
    na, nb = (da - a.min()) / np.ptp(a), (db - b.min()) / np.ptp(b)
    assert got["bottleneck_normalized"] == pytest.approx(gudhi.bottleneck_distance(na, nb))
    assert got["wasserstein_1_normalized"] == pytest.approx(hera(na, nb, order=1.0), rel=1e-4)


def test_wasserstein_terminates_where_bare_hera_loops():
    """Equal diagrams in another order, and differences near double precision, make hera's
    auction loop forever (gudhi 3.13); run in a child process so a regression fails, not hangs."""
    code = (
        "import numpy as np\n"
        "from saddles.topology.distances import wasserstein_distance as w\n"
        "rng = np.random.default_rng(0)\n"
        "b = rng.random(40); a = np.stack([b, b + rng.random(40)], 1)\n"
        "c = a[rng.permutation(40)].copy()\n"
        "assert w(a, c, 1.0) == w(a, c, 2.0) == 0.0\n"
        "c[:20] += 1e-9 * rng.random((20, 2))\n"
        "assert w(a, c, 2.0) < 1e-4\n"
        "d = np.vstack([a, [[0.3, 0.3]]])\n"
        "assert w(a, d, 2.0) == 0.0\n"
    )
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], timeout=120, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_distances_by_hand_and_normalization_removes_scale_and_offset():
    # One well of depth 4 against one of depth 2 (each is an essential class, capped at its
    # max): matching the two points costs max(|0 - 0|, |4 - 2|) = 2, less than sending both to
    # the diagonal (4/2 and 2/2), so bottleneck = W1 = W2 = 2.
    a, b = merge_tree_grid(np.array([4.0, 0, 4])), merge_tree_grid(np.array([2.0, 0, 2]))
    d = diagram_distances(a, b)
    assert d["bottleneck"] == d["wasserstein_1"] == d["wasserstein_2"] == pytest.approx(2.0)
    assert d["bottleneck_normalized"] == pytest.approx(0.0)
    field = np.random.default_rng(1).random((8, 8))
    d = diagram_distances(merge_tree_grid(field), merge_tree_grid(3 * field + 7))
    assert d["bottleneck"] > 1 and d["wasserstein_1_normalized"] == pytest.approx(0, abs=1e-12)


def test_reprs_are_short():
    tree = merge_tree_grid(np.random.default_rng(0).random((30, 30)))
    text = repr(tree)
    assert text.startswith("MergeTree(900 vertices") and "array" not in text and len(text) < 200
