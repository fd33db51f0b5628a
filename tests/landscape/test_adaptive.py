"""Adaptive refinement (saddles.landscape.adaptive) on analytic fields: Himmelblau's critical
points, the stated bound against the measured sup-norm error and bottleneck distance (gudhi,
through saddles.topology.bottleneck_distance) on generated smooth fields, interpolation,
budget and determinism."""

import numpy as np
import pytest

from saddles import analytic
from saddles.analytic import smooth_field
from saddles.landscape.adaptive import (
    SAFETY,
    Refiner,
    fill,
    kuhn_radius_squared,
    points_of,
    refine,
)
from saddles.topology import bottleneck_distance, merge_tree_grid, ttk_diagram


def himmelblau(p: np.ndarray) -> np.ndarray:
    return analytic.himmelblau(p[:, 0], p[:, 1])


#: Himmelblau's minima (value 0) and the three saddles where its basins merge.
MINIMA = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]
SADDLES = [(3.385154, 0.073852), (0.086677, 2.884254), (-3.073025, -0.081353)]


def dense(f, axes) -> np.ndarray:
    n = int(np.prod([len(a) for a in axes]))
    return f(points_of(np.arange(n), axes))


def diagram(values: np.ndarray, shape, connectivity: str) -> np.ndarray:
    return ttk_diagram(merge_tree_grid(values.reshape(shape), connectivity))


def test_himmelblau_minima_and_saddles_found_within_the_stated_error():
    axes = [np.linspace(-5, 5, 201)] * 2
    r = refine(himmelblau, axes, rel_target=0.005)  # 4.45: below half the lowest saddle
    truth = dense(himmelblau, axes)
    bound = r.info["bottleneck_bound"]
    assert r.info["stop_reason"] == "target reached"
    assert r.n_evaluations < truth.size / 2
    assert np.abs(r.filled - truth).max() <= bound
    tree = merge_tree_grid(r.filled.reshape(201, 201), "freudenthal")
    v = tree.values
    pers = v[tree.pairs[:, 1]] - v[tree.pairs[:, 0]]
    big = tree.pairs[pers > 2 * bound]  # pairs the error cannot remove
    births = np.concatenate([big[:, 0], tree.essential[:, 0]])
    spacing = 10 / 200
    for points, vertices in ((MINIMA, births), (SADDLES, big[:, 1])):
        assert len(vertices) == len(points)
        where = points_of(vertices, axes)
        for p in points:
            nearest = int(np.argmin(np.abs(where - p).max(axis=1)))
            assert np.abs(where[nearest] - p).max() <= 1.5 * spacing
            vertex = vertices[nearest]
            assert r.measured[vertex]  # the critical point lies on a measured point
            assert abs(r.filled[vertex] - truth[vertex]) <= bound
            # ... and its value is the analytic critical value up to the grid's own error
            assert abs(r.filled[vertex] - himmelblau(np.array([p]))[0]) <= bound + 2.0


@pytest.mark.parametrize(("dims", "n", "seeds"), [(2, 129, range(6)), (3, 33, range(3))])
def test_stated_bound_never_below_the_measured_error_on_smooth_fields(dims, n, seeds):
    axes = [np.linspace(-2, 2, n)] * dims
    for seed in seeds:
        f = smooth_field(seed, dims)
        r = refine(f, axes)
        truth = dense(f, axes)
        bound = r.info["bottleneck_bound"]
        span = truth.max() - truth.min()
        assert np.abs(r.filled - truth).max() <= bound
        for connectivity in ("freudenthal", "full", "faces"):
            a = diagram(truth, r.shape, connectivity)
            b = diagram(r.filled, r.shape, connectivity)
            assert bottleneck_distance(a, b) <= bound + 1e-12 * span
        if dims == 2:
            assert r.n_evaluations < truth.size / 2


def test_stated_bound_holds_on_wells_the_first_estimate_aliased():
    """Wells at the integers on a bowl, 5 x 5 on [-2.5, 2.5]^2 (1.6 coarse spacings apart) and
    3 x 3 on [-1.5, 1.5]^2: with the parent's stencil alone the sup-norm error exceeded the
    stated bound on the first; with the neighbours' stencils it stays below, and so does the
    bottleneck distance."""

    def wells(p):
        return (p**2 - 0.25 * np.cos(2 * np.pi * p) + 0.25).sum(axis=1)

    for half in (2.5, 1.5):
        axes = [np.linspace(-half, half, 201)] * 2
        r = refine(wells, axes)
        truth = dense(wells, axes)
        bound = r.info["bottleneck_bound"]
        assert np.abs(r.filled - truth).max() <= bound
        a, b = diagram(truth, r.shape, "freudenthal"), diagram(r.filled, r.shape, "freudenthal")
        assert bottleneck_distance(a, b) <= bound
        assert r.n_evaluations < truth.size / 10


def test_fill_keeps_measured_values_and_is_exact_on_affine_fields():
    shape = (17, 13)
    axes = [np.arange(s, dtype=float) for s in shape]
    affine = dense(lambda p: 0.3 * p[:, 0] - 1.7 * p[:, 1] + 2.0, axes)
    cells = np.array([[0, 0, 16, 12]])
    values = np.full(affine.size, np.nan)
    corners = np.ravel_multi_index(([0, 0, 16, 16], [0, 12, 0, 12]), shape)
    values[corners] = affine[corners]
    assert np.allclose(fill(values, shape, cells), affine, rtol=0, atol=1e-12)
    values[5] = 123.0  # a measured value is never replaced
    assert fill(values, shape, cells)[5] == 123.0


def test_fill_is_linear_on_the_grid_ttk_triangles():
    """On one cell, the interpolant of a corner's hat function is linear along grid-ttk's
    diagonal (x+1, y-1): the value at the cell centre is the mean of the diagonal's ends."""
    shape = (3, 3)
    cells = np.array([[0, 0, 2, 2]])
    for corner in range(4):
        values = np.full(9, np.nan)
        corners = np.ravel_multi_index(([0, 0, 2, 2], [0, 2, 0, 2]), shape)
        values[corners] = 0.0
        values[corners[corner]] = 1.0
        field = fill(values, shape, cells).reshape(shape)
        assert field[1, 1] == pytest.approx((field[0, 2] + field[2, 0]) / 2)


def test_budget_caps_the_evaluations():
    axes = [np.linspace(-5, 5, 101)] * 2
    r = refine(himmelblau, axes, budget=500)
    assert r.n_evaluations <= 500
    assert r.info["stop_reason"] == "budget"
    assert np.isfinite(r.filled).all()


def test_deterministic_and_replayable():
    """Two runs give the same bits; a refiner fed stored values in the same rounds (what a
    resumed run does) proposes the same points."""
    f = smooth_field(3, 2)
    axes = [np.linspace(-2, 2, 65)] * 2
    a, b = refine(f, axes), refine(f, axes)
    assert np.array_equal(a.measured, b.measured)
    assert np.array_equal(a.filled, b.filled, equal_nan=True)
    assert np.array_equal(a.cells, b.cells)
    stored = a.values
    replay = Refiner((65, 65))
    while (idx := replay.propose()).size:
        assert a.measured[idx].all()
        replay.record(idx, stored[idx])
    assert np.array_equal(replay.result().measured, a.measured)


def test_a_noise_floor_target_stops_earlier():
    axes = [np.linspace(-5, 5, 101)] * 2
    fine = refine(himmelblau, axes)
    coarse = refine(himmelblau, axes, target=40.0)
    assert coarse.n_evaluations < fine.n_evaluations
    assert coarse.info["target"] == 40.0
    assert coarse.info["bottleneck_bound"] <= 40.0
    # a noise floor raises the target to what the estimate certifies: safety x d^2 x floor / 2
    noisy = refine(himmelblau, axes, noise=40.0 / (SAFETY * 2**2 / 2))
    assert noisy.info["target"] == pytest.approx(40.0)
    assert noisy.info["target_source"] == "noise floor"
    np.testing.assert_array_equal(noisy.measured, coarse.measured)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"coarse": 1}, "coarse must be"),
        ({"budget": 0}, "budget must be"),
        ({"target": -1.0}, "target must be"),
        ({"representation": "knn"}, "representation must be"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        Refiner((9, 9), **options)


def test_pairs_near_the_simplification_threshold_are_resolved():
    """Himmelblau's least persistent pair (13.31, 1.5% of the range) is below a 2% target,
    so only the threshold rule puts its minimum and saddle on evaluated points."""
    axes = [np.linspace(-5, 5, 201)] * 2
    truth = dense(himmelblau, axes)
    r = refine(himmelblau, axes, rel_target=0.02, threshold=13.31 / 890)
    tree = merge_tree_grid(truth.reshape(201, 201), "freudenthal")
    pers = tree.values[tree.pairs[:, 1]] - tree.values[tree.pairs[:, 0]]
    birth, death = tree.pairs[np.argmin(np.abs(pers - 13.31))]
    assert r.measured[birth] and r.measured[death]
    plain = refine(himmelblau, axes, rel_target=0.02)
    assert r.n_evaluations > plain.n_evaluations


def test_diverged_values_are_kept_and_their_cells_left_out_of_the_bound():
    def diverging(p: np.ndarray) -> np.ndarray:
        return np.where(p[:, 0] > 3.3, np.inf, himmelblau(p))

    axes = [np.linspace(-5, 5, 101)] * 2
    r = refine(diverging, axes)
    truth = dense(diverging, axes)
    info = r.info
    assert info["stop_reason"] == "target reached" and info["n_nonfinite_cells"] > 0
    assert np.isfinite(info["bottleneck_bound"])
    np.testing.assert_array_equal(r.filled[r.measured], truth[r.measured])
    ok = np.isfinite(r.filled)
    assert np.abs(r.filled[ok] - truth[ok]).max() <= info["bottleneck_bound"]
    assert np.isfinite(truth[~ok]).mean() < 0.5  # what is left unknown is mostly diverged


def test_kuhn_simplices_hold_the_flipped_diagonal_and_the_ball_on_it():
    """Every grid-ttk simplex has the last-axis-flipped main diagonal of its box as an edge,
    so the smallest ball holding it has radius half that diagonal (kuhn_radius_squared)."""
    from saddles.landscape.adaptive import _kuhn_weights

    rng = np.random.default_rng(0)
    for d in (2, 3, 4):
        weights, corners = _kuhn_weights(rng.uniform(0, 1, (500, d)))
        ends = {(0,) * (d - 1) + (1,), (1,) * (d - 1) + (0,)}
        for w in weights:
            support = {tuple(int(x) for x in corners[k]) for k in np.flatnonzero(w > 0)}
            assert len(support) == d + 1 and ends <= support
        width = rng.uniform(1, 5, d)
        centre = width / 2
        radius2 = ((corners * width - centre) ** 2).sum(axis=1)
        np.testing.assert_allclose(radius2, kuhn_radius_squared(width[None])[0])


def test_waldron_bound_holds_and_is_nearly_attained_on_quadratics():
    """On f = x'Ax/2 (constant Hessian A) the interpolant's error on one cell is at most
    ||A|| r^2 / 2 (Waldron 1998), and the estimate at safety 1, which sees A exactly, is
    within a factor 2 of the true error for a definite A."""
    rng = np.random.default_rng(1)
    for d in (2, 3):
        q = np.linalg.qr(rng.normal(size=(d, d)))[0]
        a = q @ np.diag(rng.uniform(0.5, 2.0, d)) @ q.T
        n = 9
        axes = [np.arange(n, dtype=float)] * d

        def f(p, a=a):
            return 0.5 * np.einsum("ij,jk,ik->i", p, a, p)

        r = refine(f, axes, coarse=3, safety=1.0, neighbours=False, rel_target=10.0)
        truth = dense(f, axes)
        width = np.full((1, d), (n - 1) / 2)
        waldron = np.linalg.norm(a, 2) * kuhn_radius_squared(width)[0] / 2
        err = np.abs(r.filled - truth).max()
        assert err <= waldron + 1e-12
        assert err <= r.info["bottleneck_bound"] + 1e-12
        assert r.info["bottleneck_bound"] <= 2 * d * err


def test_the_estimate_is_checked_where_it_predicted_and_misses_are_counted():
    """Every round's new points test the interpolant against the local error estimated before
    they were measured: on smooth fields it holds up to the safety factor's margin; on wells
    of twice the coarse spacing (the coarse grid samples each at its crest and trough) it is
    exceeded many times over."""
    axes = [np.linspace(-2, 2, 129)] * 2
    for seed in range(4):
        smooth = refine(smooth_field(seed, 2), axes).info["estimate_check"]
        assert smooth["n_checked"] > 0 and smooth["max_ratio"] <= SAFETY

    def wells(p):  # period 1 on [-2, 2]: the 9-point coarse grid's spacing is half of it
        return np.cos(2 * np.pi * p).sum(axis=1) + 0.1 * (p**2).sum(axis=1)

    aliased = refine(wells, axes, rel_target=0.05).info["estimate_check"]
    assert aliased["n_exceeded"] > 0 and aliased["max_ratio"] > 10
