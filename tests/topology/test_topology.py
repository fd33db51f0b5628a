"""saddles.topology against gudhi, cripser and ripser, plus analytic and property checks."""

from __future__ import annotations

import itertools
from collections import Counter

import cripser
import gudhi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from saddles.topology import (
    compute_metrics,
    delaunay_edges,
    gabriel_edges,
    grid_edges,
    grid_offsets,
    knn_edges,
    merge_tree,
    merge_tree_grid,
    persistence_diagram,
    simplify,
    ttk_diagram,
)

# --- helpers -------------------------------------------------------------------------------


def nonzero_pairs(diagram) -> Counter:
    """Finite (birth, death) pairs with death > birth, as a multiset."""
    return Counter((float(b), float(d)) for b, d in diagram if d > b and np.isfinite(d))


def ours(field, connectivity):
    finite, essential = persistence_diagram(merge_tree_grid(field, connectivity))
    return nonzero_pairs(finite), sorted(essential[:, 0].tolist())


def gudhi_cubical(field, top_cells: bool):
    cc = (
        gudhi.CubicalComplex(top_dimensional_cells=field)
        if top_cells
        else gudhi.CubicalComplex(vertices=field)
    )
    pairs = [p for dim, p in cc.persistence(min_persistence=-1) if dim == 0]
    return nonzero_pairs(pairs), sorted(b for b, d in pairs if np.isinf(d))


def cripser_pairs(field, filtration):
    res = cripser.compute_ph(field, maxdim=0, filtration=filtration)
    res = res[res[:, 0] == 0]
    return nonzero_pairs(res[:, 1:3]), sorted(res[np.isinf(res[:, 2]), 1].tolist())


def lower_star_pairs(values, edges):
    st_ = gudhi.SimplexTree()
    for v, f in enumerate(values):
        st_.insert([v], filtration=float(f))
    for a, b in edges:
        st_.insert([int(a), int(b)], filtration=float(max(values[a], values[b])))
    pairs = st_.persistence(min_persistence=-1, persistence_dim_max=True)
    pairs = [p for dim, p in pairs if dim == 0]
    return nonzero_pairs(pairs), sorted(b for b, d in pairs if np.isinf(d))


def graph_pairs(values, edges):
    finite, essential = persistence_diagram(merge_tree(values, edges))
    return nonzero_pairs(finite), sorted(essential[:, 0].tolist())


def gaussian_bumps(shape, n_bumps, seed):
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(0, 1, s) for s in shape], indexing="ij")
    field = np.zeros(shape)
    for _ in range(n_bumps):
        centre = rng.random(len(shape))
        width = 0.05 + 0.15 * rng.random()
        r2 = sum((a - c) ** 2 for a, c in zip(axes, centre, strict=True))
        field -= rng.uniform(0.5, 2.0) * np.exp(-r2 / (2 * width**2))
    return field


def fields_2d():
    rng = np.random.default_rng(1)
    yield "random", rng.random((40, 37))
    yield "smooth", gaussian_bumps((50, 60), 8, seed=2)
    yield "ties", rng.integers(0, 4, size=(30, 31)).astype(float)
    yield "float32", gaussian_bumps((45, 45), 6, seed=3).astype(np.float32).astype(float)


# --- graphs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ndim,connectivity,degree",
    [(1, "faces", 2), (1, "full", 2), (1, "freudenthal", 2), (2, "faces", 4), (2, "full", 8),
     (2, "freudenthal", 6), (3, "faces", 6), (3, "full", 26), (3, "freudenthal", 14),
     (4, "freudenthal", 30), (4, "full", 80)],
)  # fmt: skip
def test_grid_interior_degree(ndim, connectivity, degree):
    shape = (5,) * ndim
    edges = grid_edges(shape, connectivity)
    deg = np.bincount(edges.ravel(), minlength=5**ndim).reshape(shape)
    assert deg[(2,) * ndim] == degree
    assert len(grid_offsets(ndim, connectivity)) == degree
    assert (edges[:, 0] < edges[:, 1]).all()
    assert len(np.unique(edges, axis=0)) == len(edges)


def test_freudenthal_matches_ttk_neighbour_tables():
    # 2D: (x, y) is also joined to (x+1, y-1); numpy axes are (y, x).
    off2 = {tuple(o) for o in grid_offsets(2, "freudenthal")}
    assert off2 == {(0, 1), (0, -1), (1, 0), (-1, 0), (-1, 1), (1, -1)}
    # 3D: TTK's interior vertex neighbours, written as (x, y, z) offsets.
    ttk_xyz = {(0, -1, -1), (1, -1, -1), (0, 0, -1), (1, 0, -1), (0, -1, 0), (1, -1, 0),
               (1, 0, 0), (-1, 0, 1), (0, 0, 1), (-1, 0, 0), (-1, 1, 0), (0, 1, 0),
               (-1, 1, 1), (0, 1, 1)}  # fmt: skip
    ours_xyz = {(o[2], o[1], o[0]) for o in grid_offsets(3, "freudenthal")}
    assert ours_xyz == ttk_xyz


def test_grid_edges_are_really_neighbours():
    shape = (4, 5, 3)
    coords = np.array(np.unravel_index(np.arange(60), shape)).T
    for conn in ("faces", "full"):
        e = grid_edges(shape, conn)
        diff = np.abs(coords[e[:, 0]] - coords[e[:, 1]])
        assert diff.max() == 1
        if conn == "faces":
            assert (diff.sum(axis=1) == 1).all()
    # full = every pair at Chebyshev distance 1
    d = np.abs(coords[:, None, :] - coords[None, :, :]).max(axis=2)
    expected = np.argwhere(np.triu(d == 1))
    np.testing.assert_array_equal(grid_edges(shape, "full"), expected)


def test_delaunay_and_gabriel_against_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.random((60, 2))
    from scipy.spatial import Delaunay

    tri = Delaunay(pts)
    brute = set()
    for simplex in tri.simplices:
        for a, b in itertools.combinations(sorted(simplex), 2):
            brute.add((a, b))
    d_edges = delaunay_edges(pts)
    assert set(map(tuple, d_edges.tolist())) == brute
    # Gabriel: no third point strictly inside the diametral circle, over ALL pairs.
    gab = set()
    for i, j in itertools.combinations(range(len(pts)), 2):
        mid, r2 = (pts[i] + pts[j]) / 2, np.sum((pts[i] - pts[j]) ** 2) / 4
        d2 = np.sum((pts - mid) ** 2, axis=1)
        d2[[i, j]] = np.inf
        if (d2 >= r2).all():
            gab.add((i, j))
    assert set(map(tuple, gabriel_edges(pts).tolist())) == gab


def test_gabriel_keeps_edges_of_a_regular_grid():
    # On a square lattice, the axis edges are Gabriel (the other corners lie ON the circle).
    g = np.array(list(itertools.product(range(6), range(6))), dtype=float)
    edges = gabriel_edges(g + 1e-9 * np.random.default_rng(0).random(g.shape))
    assert len(edges) >= 2 * 6 * 5


def closed_gabriel_oracle(pts) -> set[tuple[int, int]]:
    """Gabriel & Sokal over all pairs, by brute force: no other point in the CLOSED ball."""
    out = set()
    for i, j in itertools.combinations(range(len(pts)), 2):
        power = np.einsum("ij,ij->i", pts[i] - pts, pts[j] - pts)  # <= 0 inside or on
        power[[i, j]] = 1
        if (power > 0).all():
            out.add((i, j))
    return out


def edge_set(edges, perm=None) -> set[tuple[int, int]]:
    """Edges as a set; with ``perm``, edges of ``pts[perm]`` renumbered to ``pts``."""
    if perm is None:
        return set(map(tuple, np.asarray(edges).tolist()))
    return {tuple(sorted((int(perm[a]), int(perm[b])))) for a, b in edges}


@pytest.mark.parametrize("options", [None, "QJ", "Qbb Qc Qz Q12", "QJ Pp"])
def test_gabriel_of_a_grid_does_not_depend_on_qhull(options):
    # Cocircular points: Qhull picks one diagonal per square, the closed-ball definition keeps
    # neither (the other two corners lie on the circle), whatever the order or options.
    g = np.array(list(itertools.product(range(3), range(3))), dtype=float)
    axis = edge_set(grid_edges((3, 3), "faces"))
    assert len(axis) == 12
    rng = np.random.default_rng(0)
    for _ in range(5):
        perm = rng.permutation(len(g))
        assert edge_set(gabriel_edges(g[perm], qhull_options=options), perm) == axis
    cube = np.array(list(itertools.product(range(3), repeat=3)), dtype=float)
    assert edge_set(gabriel_edges(cube, qhull_options=options)) == edge_set(
        grid_edges((3, 3, 3), "faces")
    )
    # linspace coordinates carry rounding, and a box far from the origin strains Qhull
    lin = np.linspace(-1, 1, 41)
    g41 = np.stack(np.meshgrid(lin, lin, indexing="ij"), axis=-1).reshape(-1, 2)
    faces = grid_edges((41, 41), "faces")
    for pts in (g41, 1e3 + 1e-3 * g41):
        np.testing.assert_array_equal(gabriel_edges(pts, qhull_options=options), faces)


@pytest.mark.parametrize("dim", [2, 3])
def test_gabriel_equals_the_closed_ball_oracle(dim):
    rng = np.random.default_rng(dim)
    pts = rng.random((70, dim))
    assert edge_set(gabriel_edges(pts)) == closed_gabriel_oracle(pts)
    # integer points of a lattice: many exactly cocircular quadruples, an exact oracle
    lattice = np.array(list(itertools.product(range(7), repeat=dim)), dtype=float)
    sub = lattice[rng.choice(len(lattice), size=min(60, len(lattice) // 2), replace=False)]
    assert edge_set(gabriel_edges(sub)) == closed_gabriel_oracle(sub)
    assert edge_set(gabriel_edges(sub, qhull_options="QJ")) == closed_gabriel_oracle(sub)


def test_duplicates_are_joined_to_their_twin():
    rng = np.random.default_rng(0)
    base = rng.random((50, 2))
    pts = np.concatenate([base, base[[3, 17, 17]]])  # one point doubled, one tripled
    values = rng.random(len(pts))
    twins = {(3, 50), (17, 51), (17, 52)}
    for build in (delaunay_edges, gabriel_edges):
        edges = build(pts)
        assert merge_tree(values, edges).n_components == 1, build.__name__
        got = edge_set(edges)
        assert twins <= got
        # the duplicates carry no other edge; the rest is the graph of the distinct points
        assert got - twins == edge_set(build(base)), build.__name__


@pytest.mark.parametrize("dim", [1, 3, 7])
def test_knn_exact_against_brute_force(dim):
    rng = np.random.default_rng(dim)
    pts = rng.random((80, dim))
    k = 5
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :k]
    directed = {(i, int(j)) for i in range(80) for j in nn[i]}
    union = {tuple(sorted(e)) for e in directed}
    mutual = {tuple(sorted(e)) for e in directed if (e[1], e[0]) in directed}
    assert set(map(tuple, knn_edges(pts, k=k, method="exact").tolist())) == union
    got_mutual = knn_edges(pts, k=k, method="exact", mode="mutual")
    assert set(map(tuple, got_mutual.tolist())) == mutual


def test_knn_handles_duplicate_points():
    pts = np.repeat(np.random.default_rng(0).random((10, 2)), 3, axis=0)
    edges = knn_edges(pts, k=4, method="exact")
    assert (edges[:, 0] != edges[:, 1]).all()
    assert len(np.unique(edges.ravel())) == 30


def test_knn_approximate_recall():
    rng = np.random.default_rng(0)
    pts = rng.random((2000, 6))
    exact = set(map(tuple, knn_edges(pts, k=8, method="exact").tolist()))
    approx = set(map(tuple, knn_edges(pts, k=8, method="approximate").tolist()))
    assert len(exact & approx) / len(exact) > 0.9


def test_graph_builders_reject_bad_points():
    with pytest.raises(ValueError, match="NaN"):
        knn_edges(np.array([[0.0, np.nan], [1, 1], [2, 2]]))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        knn_edges(np.zeros(5))
    with pytest.raises(ValueError, match="connectivity"):
        grid_edges((3, 3), "diagonal")
    with pytest.raises(ValueError, match="1 to 10"):
        grid_edges((2,) * 11)


# --- merge tree against the libraries --------------------------------------------------------


@pytest.mark.parametrize("name,field", list(fields_2d()))
def test_2d_grids_equal_gudhi_and_cripser(name, field):
    full, faces = ours(field, "full"), ours(field, "faces")
    assert full == gudhi_cubical(field, top_cells=True)
    assert faces == gudhi_cubical(field, top_cells=False)
    assert full == cripser_pairs(field, "T")
    assert faces == cripser_pairs(field, "V")


@pytest.mark.parametrize("seed", [0, 1])
def test_3d_grids_equal_gudhi_and_cripser(seed):
    rng = np.random.default_rng(seed)
    for field in (rng.random((9, 10, 11)), gaussian_bumps((14, 12, 10), 6, seed)):
        assert ours(field, "full") == gudhi_cubical(field, top_cells=True)
        assert ours(field, "full") == cripser_pairs(field, "T")
        assert ours(field, "faces") == cripser_pairs(field, "V")


@pytest.mark.parametrize("ndim", [2, 3])
def test_freudenthal_equals_gudhi_lower_star(ndim):
    rng = np.random.default_rng(ndim)
    shape = (25, 23) if ndim == 2 else (8, 9, 7)
    for field in (rng.random(shape), rng.integers(0, 3, shape).astype(float)):
        edges = grid_edges(shape, "freudenthal")
        assert ours(field, "freudenthal") == lower_star_pairs(field.ravel(), edges)


def test_arbitrary_graphs_equal_gudhi_lower_star():
    rng = np.random.default_rng(5)
    pts = rng.random((400, 2))
    values = np.sin(6 * pts[:, 0]) * np.cos(5 * pts[:, 1]) + 0.1 * rng.random(400)
    for edges in (delaunay_edges(pts), gabriel_edges(pts), knn_edges(pts, k=8)):
        assert graph_pairs(values, edges) == lower_star_pairs(values, edges)
    # a random sparse graph, likely disconnected, with tied values
    edges = rng.integers(0, 300, size=(250, 2))
    values = rng.integers(0, 5, 300).astype(float)
    assert graph_pairs(values, edges) == lower_star_pairs(values, edges)


def test_ripser_lower_star_image_loosely():
    from ripser import lower_star_img

    field = gaussian_bumps((40, 40), 7, seed=9)
    theirs = lower_star_img(field)
    finite = theirs[np.isfinite(theirs[:, 1])]
    mine, _ = persistence_diagram(merge_tree_grid(field, "full"), drop_zero=True)
    # ripser works in float32: compare sorted persistences with a float32 tolerance.
    a = np.sort(finite[:, 1] - finite[:, 0])
    b = np.sort(mine[:, 1] - mine[:, 0])
    a, b = a[a > 1e-5], b[b > 1e-5]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_grid_path_equals_edge_path():
    field = gaussian_bumps((30, 20), 5, seed=4) + 0.01 * np.random.default_rng(0).random((30, 20))
    for conn in ("faces", "full", "freudenthal"):
        a = merge_tree_grid(field, conn)
        b = merge_tree(field.ravel(), grid_edges(field.shape, conn))
        np.testing.assert_array_equal(a.pairs, b.pairs)
        np.testing.assert_array_equal(a.nodes, b.nodes)
        np.testing.assert_array_equal(a.parent, b.parent)


# --- analytic landscapes ---------------------------------------------------------------------


def himmelblau(n):
    g = np.linspace(-5, 5, n)
    x, y = np.meshgrid(g, g)
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


@pytest.mark.parametrize("conn", ["faces", "full", "freudenthal"])
def test_himmelblau_has_four_minima_three_saddles(conn):
    for n in (101, 401):
        m = compute_metrics(merge_tree_grid(himmelblau(n), conn))
        assert (m["n_minima"], m["n_saddles"]) == (4, 3), n
    # At 301 points the valley at (-3.78, -3.28) runs across the triangulation's diagonal and
    # splits into two grid minima; the spurious one has persistence ~0 and simplification
    # removes it.
    m = compute_metrics(merge_tree_grid(himmelblau(301), conn), threshold=1e-4, relative=True)
    assert (m["n_minima_simplified"], m["n_saddles_simplified"]) == (4, 3)


def test_single_basin_ttk_convention():
    g = np.linspace(-1, 1, 51)
    bowl = g[:, None] ** 2 + 2 * g[None, :] ** 2
    m = compute_metrics(merge_tree_grid(bowl, "full"))
    assert m["n_minima"] == 1 and m["n_saddles"] == 0
    assert m["average_persistence"] == pytest.approx(bowl.max() - bowl.min())
    assert m["average_finite_persistence"] == 0.0
    np.testing.assert_allclose(ttk_diagram(merge_tree_grid(bowl)), [[bowl.min(), bowl.max()]])


def test_constant_field():
    m = compute_metrics(merge_tree_grid(np.full((7, 8), 3.0), "full"))
    assert (m["n_minima"], m["n_saddles"], m["average_persistence"]) == (1, 0, 0.0)


def test_zero_persistence_pairs_are_kept_like_ttk():
    # Two plateau vertices that are each before all their neighbours in (value, index) order.
    values = np.array([1.0, 0.0, 1.0, 0.0, 1.0])  # path 0-1-2-3-4
    tree = merge_tree(values, grid_edges((5,), "faces"))
    assert sorted(tree.minima.tolist()) == [1, 3]
    assert tree.saddles.tolist() == [2]
    # A tie: vertex 2 equals its left neighbour, vertex 3 is the lower-index-first minimum.
    values = np.array([0.0, 1.0, 1.0, 1.0, 0.5])
    tree = merge_tree(values, grid_edges((5,), "faces"))
    assert sorted(tree.minima.tolist()) == [0, 4]
    m = compute_metrics(merge_tree(np.array([0.0, 0.0, 0.0]), np.array([[0, 2]])))
    assert m["n_components"] == 2  # vertex 1 is isolated: its own component


def test_multi_saddle_counts_once():
    # A star: centre 0 (value 1) joined to three leaves of value 0 -> one saddle, two deaths.
    values = np.array([1.0, 0.0, 0.1, 0.2])
    edges = np.array([[0, 1], [0, 2], [0, 3]])
    m = compute_metrics(merge_tree(values, edges))
    assert (m["n_minima"], m["n_saddles"], m["n_merge_events"]) == (3, 1, 2)


def test_tree_structure_is_valid():
    field = gaussian_bumps((60, 60), 10, seed=11) + 1e-3 * np.random.default_rng(1).random((60, 60))
    tree = merge_tree_grid(field, "full")
    parent_of = dict(zip(tree.nodes.tolist(), tree.parent.tolist(), strict=True))
    children = Counter(p for p in parent_of.values() if p >= 0)
    leaves = [v for v in tree.nodes if children[v] == 0]
    assert sorted(leaves) == sorted(tree.minima.tolist())
    assert all(children[s] >= 2 for s in tree.saddles)
    roots = [v for v, p in parent_of.items() if p < 0]
    assert len(roots) == tree.n_components == 1
    for v, p in parent_of.items():
        if p >= 0:
            assert tree.values[p] >= tree.values[v]


# --- simplification --------------------------------------------------------------------------


def test_simplify_drops_exactly_the_low_pairs():
    field = gaussian_bumps((50, 50), 12, seed=6) + 0.05 * np.random.default_rng(2).random((50, 50))
    tree = merge_tree_grid(field, "full")
    pers = tree.persistence()
    t = float(np.quantile(pers, 0.7))
    simple = simplify(tree, t)
    assert Counter(map(tuple, simple.diagram().tolist())) == Counter(
        map(tuple, tree.diagram()[pers >= t].tolist())
    )
    # The simplified tree is a valid tree over the kept nodes.
    kept = set(simple.nodes.tolist())
    assert all(p in kept for p in simple.parent if p >= 0)
    parent_of = dict(zip(simple.nodes.tolist(), simple.parent.tolist(), strict=True))
    children = Counter(p for p in parent_of.values() if p >= 0)
    assert sorted(v for v in simple.nodes if children[v] == 0) == sorted(simple.minima.tolist())
    m = compute_metrics(tree, threshold=t)
    assert m["n_minima_simplified"] == len(simple.minima)
    rel = compute_metrics(tree, threshold=0.5, relative=True)
    assert rel["simplification_threshold"] == pytest.approx(0.5 * np.ptp(field))


# --- property tests --------------------------------------------------------------------------

small_fields = arrays(
    np.float64,
    st.tuples(st.integers(1, 9), st.integers(1, 9)),
    elements=st.one_of(st.integers(-3, 3).map(float), st.floats(-5, 5, width=32)),
)


@settings(max_examples=60, deadline=None)
@given(field=small_fields, conn=st.sampled_from(["faces", "full", "freudenthal"]))
def test_properties(field, conn):
    tree = merge_tree_grid(field, conn)
    diagram = tree.diagram()
    assert len(tree.pairs) == len(tree.minima) - tree.n_components
    assert (diagram[:, 0] <= diagram[:, 1]).all()
    # A strictly increasing transform leaves the pairing unchanged.
    # (dense ranks, cubed and shifted: exact in floating point, so ties stay ties)
    ranks = np.unique(field, return_inverse=True)[1].reshape(field.shape).astype(float)
    warped = merge_tree_grid(ranks**3 - 7.5, conn)
    np.testing.assert_array_equal(warped.pairs, tree.pairs)
    assert simplify(tree, 0.0).pairs.shape == tree.pairs.shape
    assert len(simplify(tree, np.inf).minima) == tree.n_components
    if len(tree.minima) == 1:
        assert len(tree.saddles) == 0


@settings(max_examples=30, deadline=None)
@given(
    values=arrays(np.float64, st.integers(2, 30), elements=st.integers(0, 4).map(float)),
    data=st.data(),
)
def test_random_graphs_match_gudhi(values, data):
    n = len(values)
    m = data.draw(st.integers(0, 3 * n))
    edges = np.array(
        data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                           min_size=m, max_size=m)),
        dtype=np.int64,
    ).reshape(-1, 2)  # fmt: skip
    assert graph_pairs(values, edges) == lower_star_pairs(values, edges)


# --- bad input -------------------------------------------------------------------------------


def test_nan_raises_by_default_and_max_policy_works():
    field = gaussian_bumps((20, 20), 3, seed=0)
    field[5, 5] = np.nan
    field[6, 6] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        merge_tree_grid(field)
    tree = merge_tree_grid(field, nan_policy="max")
    assert tree.n_nonfinite == 2
    assert np.isfinite(tree.diagram()).all()
    flat = np.flatnonzero(~np.isfinite(field.ravel()))
    assert not np.isin(flat, tree.minima).any()
    with pytest.raises(ValueError, match="nan_policy"):
        merge_tree_grid(field, nan_policy="ignore")


@pytest.mark.parametrize("corner", ["top-left", "bottom-right", "middle-band"])
def test_a_diverged_region_adds_no_minima_or_saddles(corner):
    g = np.linspace(-1, 1, 21)
    bowl = g[:, None] ** 2 + g[None, :] ** 2
    field = bowl.copy()
    if corner == "top-left":
        field[:6, :6] = np.nan
    elif corner == "bottom-right":
        field[-6:, -6:] = np.inf
    else:
        field[:, 15:18] = np.nan  # a diverged band cutting off the right edge
    for conn in ("faces", "full", "freudenthal"):
        m = compute_metrics(merge_tree_grid(field, conn, nan_policy="max"))
        expect = (2, 1) if corner == "middle-band" else (1, 0)
        assert (m["n_minima"], m["n_saddles"]) == expect, conn
        # the same through an explicit edge list
        tree = merge_tree(field.ravel(), grid_edges(field.shape, conn), nan_policy="max")
        assert (len(tree.minima), len(tree.saddles)) == expect


def test_bad_inputs_have_clear_messages():
    with pytest.raises(ValueError, match="at least one point"):
        merge_tree_grid(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="empty"):
        merge_tree(np.zeros(0), np.zeros((0, 2), dtype=int))
    with pytest.raises(ValueError, match="vertex 7"):
        merge_tree(np.zeros(5), np.array([[0, 7]]))
    with pytest.raises(ValueError, match="vertex -1"):
        merge_tree(np.zeros(5), np.array([[0, -1]]))
    with pytest.raises(ValueError, match=r"\(m, 2\)"):
        merge_tree(np.zeros(5), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="1-D"):
        merge_tree(np.zeros((3, 3)), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="real numbers"):
        merge_tree(np.array(["a", "b"]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="threshold"):
        simplify(merge_tree_grid(np.zeros((3, 3))), -1.0)


def test_disconnected_graph_has_one_essential_class_per_component():
    values = np.array([3.0, 1.0, 2.0, 0.5, 4.0, 0.0])
    edges = np.array([[0, 1], [1, 2], [3, 4]])  # components {0,1,2}, {3,4}, {5}
    tree = merge_tree(values, edges)
    finite, essential = persistence_diagram(tree)
    assert sorted(essential[:, 0].tolist()) == [0.0, 0.5, 1.0]
    assert np.isinf(essential[:, 1]).all()
    assert len(finite) == 0
    # TTK pairs each essential class with its own component's maximum.
    assert sorted(map(tuple, ttk_diagram(tree).tolist())) == [(0.0, 0.0), (0.5, 4.0), (1.0, 3.0)]


# --- 1-dimensional persistence (loops) ----------------------------------------------------


def gudhi_loops_cubical(field, top_cells: bool) -> Counter:
    cc = (
        gudhi.CubicalComplex(top_dimensional_cells=field)
        if top_cells
        else gudhi.CubicalComplex(vertices=field)
    )
    return nonzero_pairs([p for dim, p in cc.persistence(min_persistence=-1) if dim == 1])


def gudhi_loops_freudenthal(field) -> Counter:
    """Lower-star filtration of TTK's triangulation (diagonal (y, x+1)-(y+1, x))."""
    ny, nx = field.shape
    idx = np.arange(field.size).reshape(field.shape)
    f = field.ravel()
    st_ = gudhi.SimplexTree()
    for y in range(ny - 1):
        for x in range(nx - 1):
            a, b, c, d = idx[y, x], idx[y, x + 1], idx[y + 1, x], idx[y + 1, x + 1]
            st_.insert([int(a), int(b), int(c)])
            st_.insert([int(b), int(c), int(d)])
    for simplex, _ in list(st_.get_simplices()):  # lower star: the highest vertex's value
        st_.assign_filtration(simplex, float(f[simplex].max()))
    pairs = st_.persistence(min_persistence=-1, persistence_dim_max=True)
    return nonzero_pairs([p for dim, p in pairs if dim == 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loops_2d_equal_gudhi(seed):
    from saddles.topology import loops_diagram

    rng = np.random.default_rng(seed)
    for field in (rng.random((18, 21)), rng.integers(0, 4, (15, 16)).astype(float),
                  gaussian_bumps((30, 30), 8, seed)):  # fmt: skip
        ours_full = nonzero_pairs(loops_diagram(field, "full"))
        assert ours_full == gudhi_loops_cubical(field, top_cells=True)
        assert nonzero_pairs(loops_diagram(field, "faces")) == gudhi_loops_cubical(field, False)
        assert nonzero_pairs(loops_diagram(field, "freudenthal")) == gudhi_loops_freudenthal(field)


def test_loops_3d_and_single_basin():
    from saddles.topology import loop_metrics, loops_diagram

    field = np.random.default_rng(3).random((6, 7, 8))
    assert nonzero_pairs(loops_diagram(field, "full")) == gudhi_loops_cubical(field, True)
    g = np.linspace(-1, 1, 41)
    bowl = g[:, None] ** 2 + g[None, :] ** 2
    assert len(loops_diagram(bowl, "full")) == 0
    assert loop_metrics(loops_diagram(bowl))["n_loops"] == 0
    # A ring-shaped valley around a central peak holds exactly one persistent loop.
    r = np.sqrt(g[:, None] ** 2 + g[None, :] ** 2)
    ring = (r - 0.5) ** 2
    loops = loops_diagram(ring, "full")
    assert len(loops) == 1
    assert loops[0, 1] == pytest.approx(0.25) and loops[0, 0] < 0.01  # dies at the peak
    with pytest.raises(ValueError, match="2D and 3D"):
        loops_diagram(np.zeros(5))
