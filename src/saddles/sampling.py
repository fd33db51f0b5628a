"""Coordinates: where in the directions' span the loss is evaluated.

This module owns stage 2 of the pipeline. A point ``c`` (one row of ``points``) stands for the
parameters ``theta_0 + sum_k c_k d_k``; the origin is the model itself. Two kinds of point sets:

- :func:`grid`: a regular grid in 1 to 4 dimensions with a range and a resolution per axis
  (Li et al. 2018 used 51 x 51 on [-1, 1]^2). Points are listed in C order: the last axis
  varies fastest, so ``values.reshape(coords.shape)[i, j]`` is the value at
  ``(axes[0][i], axes[1][j])``, the vertex numbering the topology package's ``grid_edges``
  uses. Give an odd resolution on a symmetric range so that the origin is a grid point.
- :func:`adaptive_grid`: the points of a grid (the finest level) that an adaptive refinement
  may evaluate (:mod:`saddles.landscape.adaptive`): :func:`saddles.landscape.evaluate`
  evaluates a coarse sub-grid first and refines it round by round, so only some are
  evaluated; the landscape is stored on the whole grid with the rest marked missing.
- :func:`scattered`: quasi-random or random samples in 1 to 10 dimensions, where a grid would
  be too large (21 points per axis in 6-D is 85 million points): Sobol (scrambled, via
  ``scipy.stats.qmc``), Latin hypercube, or uniform random, in a box or in a ball. The topology
  core then joins them by a kNN graph.

Everything here is numpy (and scipy); it must not import torch, so coordinates can be built
and inspected without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_GRID_DIMS = 4
MAX_SCATTERED_DIMS = 10
METHODS = ("sobol", "lhs", "uniform")
REGIONS = ("box", "ball")

Range = tuple[float, float]


@dataclass(frozen=True)
class Coordinates:
    """A set of points in the directions' coordinate space.

    Attributes:
        points: ``(n, dims)`` float64 array, one row per point.
        shape: the grid's shape (resolution per axis) for a grid, ``None`` for scattered points.
        axes: the grid's axis values (one 1-D array per axis), ``None`` for scattered points.
        info: how the points were made (kind, ranges, method, seed...), JSON-serializable.
    """

    points: np.ndarray
    shape: tuple[int, ...] | None = None
    axes: tuple[np.ndarray, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def dims(self) -> int:
        return int(self.points.shape[1])

    @property
    def is_grid(self) -> bool:
        return self.shape is not None


def grid(
    resolution: int | Sequence[int] = 51,
    ranges: Range | Sequence[Range] = (-1.0, 1.0),
    dims: int | None = None,
) -> Coordinates:
    """A regular grid: ``resolution`` points per axis on ``ranges`` (endpoints included).

    ``resolution`` and ``ranges`` are either one value for every axis or one per axis; the
    number of axes (1 to 4) comes from whichever is per-axis, or from ``dims`` (default 2).
    Examples: ``grid(51)`` is 51 x 51 on [-1, 1]^2; ``grid((21, 41), [(-2, 2), (-1, 1)])``.
    """
    res_list, res_per_axis = _per_axis(resolution, "resolution", is_pair=False)
    range_list, range_per_axis = _per_axis(ranges, "ranges", is_pair=True)
    dims = _resolve_dims(dims, [(res_list, res_per_axis), (range_list, range_per_axis)], 2)
    if not 1 <= dims <= MAX_GRID_DIMS:
        raise ValueError(
            f"a grid has 1 to {MAX_GRID_DIMS} axes, not {dims}; use scattered() for more dimensions"
        )
    res = _broadcast(res_list, dims, "resolution")
    rng = _broadcast(range_list, dims, "ranges")
    for i, r in enumerate(res):
        if not isinstance(r, (int, np.integer)) or isinstance(r, bool) or r < 2:
            raise ValueError(f"resolution of axis {i} must be an integer >= 2, not {r!r}")
    bounds = [_check_range(r, f"range of axis {i}") for i, r in enumerate(rng)]
    axes = tuple(np.linspace(lo, hi, int(n)) for (lo, hi), n in zip(bounds, res, strict=True))
    mesh = np.meshgrid(*axes, indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1).astype(np.float64)
    shape = tuple(int(n) for n in res)
    info = {
        "kind": "grid",
        "shape": list(shape),
        "ranges": [list(b) for b in bounds],
        "contains_origin": bool(np.any(np.all(points == 0.0, axis=1))),
    }
    return Coordinates(points, shape, axes, info)


def adaptive_grid(
    resolution: int | Sequence[int] = 201,
    ranges: Range | Sequence[Range] = (-1.0, 1.0),
    dims: int | None = None,
    *,
    coarse: int | None = None,
    rel_target: float | None = None,
    target: float | None = None,
    noise: float | None = None,
    budget: int | None = None,
    threshold: float | None = None,
) -> Coordinates:
    """The finest grid of an adaptive refinement (arguments as :func:`grid`), and its options.

    ``coarse``: points per axis of the first round (default
    :data:`saddles.landscape.adaptive.COARSE`, 9); ``rel_target``: the target error as a
    fraction of the value range (default :data:`~saddles.landscape.adaptive.REL_TARGET`, 1%),
    or ``target``, an absolute one, where that is larger; ``noise``: the values' noise floor,
    which raises the target to what the error estimate can certify above it;
    ``budget``: at most this many evaluations; ``threshold``: the simplification threshold
    (relative to the range) near which pairs are refined. Checked here, so a bad option fails
    before anything is loaded.
    """
    from saddles.landscape import adaptive

    base = grid(resolution, ranges, dims)
    if base.dims > adaptive.MAX_DIMS:
        raise ValueError(f"adaptive sampling takes 1 to {adaptive.MAX_DIMS} axes, not {base.dims}")
    options = {
        "coarse": adaptive.COARSE if coarse is None else coarse,
        "rel_target": adaptive.REL_TARGET if rel_target is None else rel_target,
        "target": target,
        "noise": noise,
        "budget": budget,
        "threshold": threshold,
    }
    adaptive.Refiner(base.shape, **options)  # checks the options
    info = {**base.info, "kind": "adaptive", "adaptive": options}
    return Coordinates(base.points, base.shape, base.axes, info)


def scattered(
    n: int,
    dims: int,
    *,
    method: str = "sobol",
    region: str = "box",
    ranges: Range | Sequence[Range] = (-1.0, 1.0),
    radius: float = 1.0,
    seed: int = 0,
    include_center: bool = False,
) -> Coordinates:
    """``n`` points in ``dims`` (1 to 10) dimensions, reproducible from ``seed``.

    ``method``: ``"sobol"`` (scrambled Sobol; its balance properties need ``n`` to be a power
    of two, which ``info["balanced"]`` records), ``"lhs"`` (Latin hypercube) or ``"uniform"``
    (i.i.d. uniform). ``region``: ``"box"`` (``ranges``, one pair or one per axis) or
    ``"ball"`` (centred at the origin, ``radius``). Ball points map ``dims + 1`` unit-cube
    coordinates to a uniform ball: a direction from ``dims`` inverse-normal coordinates and the
    radius ``radius * u^(1/dims)`` from the last, so low-discrepancy samples stay well spread.
    ``include_center=True`` replaces the first point by the origin (the unperturbed model), so
    the trained weights are always a vertex of the graph.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (the number of points) must be a positive integer, not {n!r}")
    if not isinstance(dims, (int, np.integer)) or not 1 <= dims <= MAX_SCATTERED_DIMS:
        raise ValueError(f"dims must be an integer from 1 to {MAX_SCATTERED_DIMS}, not {dims!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, not {region!r}")
    width = dims + 1 if region == "ball" else dims
    unit = _unit_cube(n, width, method, seed)
    info: dict[str, Any] = {
        "kind": "scattered",
        "method": method,
        "region": region,
        "seed": int(seed),
        "n": int(n),
        "dims": int(dims),
        "include_center": bool(include_center),
    }
    if method == "sobol":
        info["balanced"] = bool(n & (n - 1) == 0)
    if region == "box":
        bounds = [
            _check_range(r, f"range of axis {i}")
            for i, r in enumerate(_broadcast(_per_axis(ranges, "ranges", True)[0], dims, "ranges"))
        ]
        lo = np.array([b[0] for b in bounds])
        hi = np.array([b[1] for b in bounds])
        points = lo + unit * (hi - lo)
        info["ranges"] = [list(b) for b in bounds]
    else:
        if not np.isfinite(radius) or radius <= 0:
            raise ValueError(f"radius must be a positive number, not {radius!r}")
        points = _to_ball(unit, dims) * float(radius)
        info["radius"] = float(radius)
    if include_center:
        points[0] = 0.0
    return Coordinates(np.ascontiguousarray(points, dtype=np.float64), None, None, info)


def as_coordinates(coords: Any) -> Coordinates:
    """Accept a :class:`Coordinates` or an ``(n, dims)`` array of points (kind "points").

    Rejects empty arrays, wrong ranks and NaN/inf entries with a message naming the first bad
    row.
    """
    if isinstance(coords, Coordinates):
        points = coords.points
    else:
        try:
            points = np.asarray(coords, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"coordinates must be an (n, dims) array of numbers: {exc}") from exc
        if points.ndim == 1:
            raise ValueError(
                f"coordinates must be a 2-D (n_points, n_directions) array, got a 1-D array of "
                f"length {len(points)}; for a 1-D landscape use shape (n, 1), e.g. "
                "grid(51, dims=1)"
            )
    if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] == 0:
        raise ValueError(
            f"coordinates must be a non-empty (n_points, n_directions) array, got shape "
            f"{points.shape}"
        )
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"coordinates contain NaN or inf in {int(bad.sum())} row(s); the first is row "
            f"{row}: {points[row].tolist()}"
        )
    if isinstance(coords, Coordinates):
        return coords
    points = np.ascontiguousarray(points)
    return Coordinates(points, None, None, {"kind": "points", "n": int(points.shape[0])})


# --- internals ---------------------------------------------------------------------------------


def _unit_cube(n: int, width: int, method: str, seed: int) -> np.ndarray:
    """``n`` points in ``[0, 1)^width`` from the chosen generator."""
    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    if method == "uniform":
        return rng.random((n, width))
    cls = qmc.Sobol if method == "sobol" else qmc.LatinHypercube
    try:
        sampler = cls(width, rng=rng)
    except TypeError:  # scipy < 1.15 names it `seed`
        sampler = cls(width, seed=rng)
    with warnings.catch_warnings():
        # Sobol warns when n is not a power of two; the info records it instead.
        warnings.filterwarnings("ignore", message=".*balance properties.*")
        return sampler.random(n)


def _to_ball(unit: np.ndarray, dims: int) -> np.ndarray:
    """Map ``(n, dims + 1)`` unit-cube points to the uniform unit ball in ``dims`` dimensions."""
    from scipy.special import ndtri

    eps = 1e-12
    gauss = ndtri(np.clip(unit[:, :dims], eps, 1 - eps))
    norms = np.linalg.norm(gauss, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return gauss / norms * unit[:, dims : dims + 1] ** (1.0 / dims)


def _per_axis(value: Any, name: str, is_pair: bool) -> tuple[list, bool]:
    """Return ``(settings, per_axis)``: one setting for every axis, or a per-axis list."""
    if is_pair:
        arr = np.asarray(value, dtype=object)
        if arr.ndim == 1 and len(arr) == 2 and all(np.isscalar(v) for v in arr):
            return [tuple(value)], False
        if arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= 1:
            return [tuple(r) for r in value], True
        raise ValueError(f"{name} must be one (low, high) pair or one pair per axis, not {value!r}")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [value], False
    if isinstance(value, (list, tuple)) and value:
        return list(value), True
    raise ValueError(f"{name} must be an integer or a list of integers, not {value!r}")


def _resolve_dims(dims: int | None, settings: list[tuple[list, bool]], default: int) -> int:
    """The number of axes implied by per-axis settings and ``dims``; conflicts are errors."""
    implied = {len(values) for values, per_axis in settings if per_axis}
    if dims is not None:
        implied.add(int(dims))
    if len(implied) > 1:
        raise ValueError(
            f"conflicting numbers of axes: the per-axis settings and dims imply {sorted(implied)}"
        )
    return implied.pop() if implied else default


def _broadcast(values: list, dims: int, name: str) -> list:
    """Repeat a single setting over ``dims`` axes; check a per-axis list has ``dims`` items."""
    if len(values) == 1:
        return values * dims
    if len(values) != dims:
        raise ValueError(f"{name} has {len(values)} entries but there are {dims} axes")
    return values


def _check_range(r: tuple, name: str) -> tuple[float, float]:
    """A finite (low, high) pair with low < high."""
    lo, hi = float(r[0]), float(r[1])
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo >= hi:
        raise ValueError(f"{name} must be finite with low < high, not ({lo}, {hi})")
    return lo, hi
