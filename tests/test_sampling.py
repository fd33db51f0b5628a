"""Tests of saddles.sampling: grids in C order, scattered samples, coordinate validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saddles import sampling as S


def test_grid_is_in_c_order_with_endpoints():
    g = S.grid(5)
    assert g.shape == (5, 5) and g.points.shape == (25, 2) and g.is_grid
    np.testing.assert_array_equal(g.points[:3], [[-1, -1], [-1, -0.5], [-1, 0]])
    field = g.points[:, 0] * 10 + g.points[:, 1]
    f = field.reshape(g.shape)
    for i, a in enumerate(g.axes[0]):
        for j, b in enumerate(g.axes[1]):
            assert f[i, j] == a * 10 + b  # values.reshape(shape)[i, j] is at (axes0[i], axes1[j])
    assert g.info["contains_origin"] is True
    assert S.grid(4).info["contains_origin"] is False


def test_grid_per_axis_ranges_and_resolutions():
    g = S.grid((3, 5, 2), [(-2, 2), (0, 1), (-1, 0)])
    assert g.shape == (3, 5, 2) and g.dims == 3 and g.n_points == 30
    np.testing.assert_array_equal(g.axes[0], [-2, 0, 2])
    np.testing.assert_array_equal(g.axes[1], np.linspace(0, 1, 5))
    assert g.points.min(axis=0).tolist() == [-2, 0, -1]
    one = S.grid(51, dims=1)
    assert one.points.shape == (51, 1) and one.shape == (51,)
    assert S.grid([7]).shape == (7,)
    assert S.grid(3, [(-1, 1)] * 4).shape == (3, 3, 3, 3)


@settings(max_examples=30, deadline=None)
@given(
    res=st.lists(st.integers(2, 6), min_size=1, max_size=4),
    lo=st.floats(-5, 0, allow_nan=False),
    width=st.floats(0.1, 5, allow_nan=False),
)
def test_grid_matches_meshgrid(res, lo, width):
    g = S.grid(res, (lo, lo + width))
    mesh = np.meshgrid(*[np.linspace(lo, lo + width, r) for r in res], indexing="ij")
    np.testing.assert_array_equal(g.points, np.stack([m.ravel() for m in mesh], axis=1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"resolution": 5, "dims": 5}, "1 to 4 axes"),
        ({"resolution": 1}, "integer >= 2"),
        ({"resolution": 5, "ranges": (1, -1)}, "low < high"),
        ({"resolution": (3, 3), "ranges": [(-1, 1)] * 3}, "conflicting"),
        ({"resolution": 5, "ranges": (0, float("nan"))}, "finite"),
        ({"resolution": 2.5}, "integer"),
    ],
)
def test_grid_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S.grid(**kwargs)


@pytest.mark.parametrize("method", S.METHODS)
def test_scattered_box_is_seeded_and_in_bounds(method):
    a = S.scattered(64, 5, method=method, ranges=[(-1, 1), (0, 2), (-3, 3), (0, 1), (5, 6)], seed=3)
    b = S.scattered(64, 5, method=method, ranges=[(-1, 1), (0, 2), (-3, 3), (0, 1), (5, 6)], seed=3)
    c = S.scattered(64, 5, method=method, ranges=[(-1, 1), (0, 2), (-3, 3), (0, 1), (5, 6)], seed=4)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)
    assert a.points.shape == (64, 5) and not a.is_grid
    lo, hi = np.array([-1, 0, -3, 0, 5]), np.array([1, 2, 3, 1, 6])
    assert (a.points >= lo).all() and (a.points <= hi).all()
    assert a.info["method"] == method and a.info["seed"] == 3


def test_latin_hypercube_has_one_point_per_stratum():
    n = 50
    p = S.scattered(n, 4, method="lhs", ranges=(0, 1), seed=0).points
    for axis in range(4):
        strata = np.floor(p[:, axis] * n).astype(int)
        assert sorted(strata) == list(range(n))


def test_sobol_records_balance_and_spreads_better_than_uniform():
    from scipy.stats import qmc

    sob = S.scattered(256, 3, method="sobol", ranges=(0, 1), seed=0)
    uni = S.scattered(256, 3, method="uniform", ranges=(0, 1), seed=0)
    assert sob.info["balanced"] is True
    assert S.scattered(100, 3, method="sobol").info["balanced"] is False
    assert qmc.discrepancy(sob.points) < qmc.discrepancy(uni.points)


@pytest.mark.parametrize("method", S.METHODS)
def test_ball_is_uniform_and_inside_the_radius(method):
    dims, radius = 3, 2.0
    p = S.scattered(4096, dims, method=method, region="ball", radius=radius, seed=1).points
    r = np.linalg.norm(p, axis=1)
    assert r.max() <= radius
    # uniform in the ball: P(|x| < R/2) = (1/2)^dims, and the mean is the centre
    assert abs((r < radius / 2).mean() - 0.5**dims) < 0.02
    assert np.abs(p.mean(axis=0)).max() < 0.05


def test_include_center_puts_the_model_first():
    c = S.scattered(16, 6, include_center=True, seed=0)
    assert np.all(c.points[0] == 0) and np.all(np.any(c.points[1:] != 0, axis=1))


def test_scattered_rejects_bad_settings():
    with pytest.raises(ValueError, match="dims must be an integer from 1 to 10"):
        S.scattered(10, 11)
    with pytest.raises(ValueError, match="method must be one of"):
        S.scattered(10, 3, method="halton")
    with pytest.raises(ValueError, match="region must be one of"):
        S.scattered(10, 3, region="sphere")
    with pytest.raises(ValueError, match="radius"):
        S.scattered(10, 3, region="ball", radius=-1)
    with pytest.raises(ValueError, match="positive integer"):
        S.scattered(0, 3)


def test_as_coordinates_validates_raw_arrays():
    c = S.as_coordinates([[0.0, 1.0], [2.0, 3.0]])
    assert c.points.dtype == np.float64 and c.info["kind"] == "points" and c.shape is None
    with pytest.raises(ValueError, match="row 1"):
        S.as_coordinates([[0.0, 1.0], [np.nan, 3.0]])
    with pytest.raises(ValueError, match="inf"):
        S.as_coordinates(np.array([[np.inf]]))
    with pytest.raises(ValueError, match="shape \\(n, 1\\)"):
        S.as_coordinates(np.zeros(5))
    with pytest.raises(ValueError, match="non-empty"):
        S.as_coordinates(np.zeros((0, 2)))


def test_adaptive_grid_is_the_grid_with_its_refinement_options():
    a, g = S.adaptive_grid(41, (-2.0, 2.0)), S.grid(41, (-2.0, 2.0))
    assert np.array_equal(a.points, g.points) and a.shape == g.shape and a.is_grid
    assert a.info["kind"] == "adaptive" and a.info["adaptive"]["coarse"] == 9
    assert a.info["adaptive"]["rel_target"] == 0.01 and a.info["contains_origin"]
    with pytest.raises(ValueError, match="coarse must be"):
        S.adaptive_grid(41, coarse=1)
    with pytest.raises(ValueError, match="budget must be"):
        S.adaptive_grid(41, budget=0)
    with pytest.raises(ValueError, match="rel_target must be"):
        S.adaptive_grid(41, rel_target=-0.1)
    with pytest.raises(ValueError, match="a grid has 1 to 4 axes"):
        S.adaptive_grid(9, dims=5)
