"""Adaptive refinement of a landscape on a grid hierarchy, with a stated error (issue 19).

A dense grid spends one evaluation (a forward pass) per point, uniformly. Persistence is
stable: the bottleneck distance between the 0-dimensional diagrams of two functions on the
same graph is at most their sup-norm distance (Cohen-Steiner, Edelsbrunner & Harer 2007). So
a point set whose interpolation error on the dense grid is bounded gives a diagram within
that bound of the dense grid's, for the evaluations it spent.

The algorithm (numpy only; :class:`Refiner` is driven by :func:`refine` on a plain callable,
and by :func:`saddles.landscape.evaluate` through the chunk loop):

1. Start from a coarse grid (:data:`COARSE` points per axis) that is a sub-grid of the finest
   grid (the landscape's resolution): the coarse indices are ``round(linspace(0, n - 1,
   coarse))``. Its cells are boxes with integer corners on the finest grid.
2. Fill the finest grid: every measured point keeps its value; every other point gets the
   piecewise-linear interpolant of the smallest leaf cell holding it, on the cell's
   Kuhn/Freudenthal triangulation (the same triangulation as ``grid-ttk``: the last axis is
   flipped, as TTK does), from the cell's 2^d corners (:func:`fill`).
3. Estimate each leaf cell's interpolation error. The linear interpolant on a simplex errs
   by at most ``M r^2 / 2``, with ``M`` a bound on the Hessian's spectral norm on the simplex
   and ``r`` the radius of the smallest ball holding it (Waldron, "The error in linear
   interpolation at the vertices of a simplex", SIAM J. Numer. Anal. 35(3), 1998). Every
   simplex of the Kuhn triangulation of a box with sides ``h_1..h_d`` has the box's main
   diagonal as an edge, so ``r^2 = sum h_i^2 / 4`` (:func:`kuhn_radius_squared`; ``d h^2 / 4``
   for a cube, ``M d h^2 / 8``). ``M`` is estimated from second divided differences: on each
   parent's 3^d stencil (its own points, measured when it was split; for a coarse cell, the
   coarse grid around it) the largest ``|f_ii|`` (pure) and ``|f_ij|`` (mixed, four-corner)
   form a non-negative matrix ``m``, and ``||H|| <= || |H| || <= rho(m)``, its Perron root
   (:func:`_spectral_bound`; at most ``d max m``). A stencil's differences sit in the middle
   of its box and miss curvature growing towards the border, so a leaf's ``M`` is the largest
   of its own and of every leaf touching it (:meth:`Refiner._neighbourhood_curvature`). The
   estimate is ``SAFETY * M * sum h_i^2 / 8``: ``M`` is estimated, not bounded (a second
   difference at spacing ``h`` averages the curvature over ``2 h``), hence :data:`SAFETY`
   (1.5, chosen by measurement; see its comment).
4. Split (halve every side of length >= 2 at its integer midpoint) the cells that (a) hold or
   border a critical point of the filled field's merge tree (the birth and death vertex of
   every pair more persistent than the target error, and each component's minimum and
   maximum), (b) whose estimated error exceeds the target, or (c) hold a vertex of a pair
   whose persistence is within twice the local error (of the cells holding its vertices) of
   the simplification threshold, so that whether it survives simplification is settled.
   Evaluate the new corners (one round: a batch of points, sorted by grid index) and repeat.
5. Stop when no cell is selected (every error below the target, every critical point on a
   cell of the finest spacing), or when the budget of evaluations would be exceeded (the
   round is then cut, in priority order: critical cells first, then by decreasing error).

The target error is the largest of :data:`REL_TARGET` (1%) of the measured value range, an
absolute ``target`` if given, and, when the values' noise floor is known (``noise=``, e.g.
:func:`saddles.landscape.noise.noise_floor`), what the estimate itself cannot go below: a
second difference of values each off by up to the floor is off by up to ``4 floor / h^2``,
and the spectral bound into ``4 d floor / h^2``, which the estimate turns into
``SAFETY * d^2 * floor / 2`` (:func:`noise_target`). Below that
the estimate measures the noise, and refining buys nothing.

What is reported and what the bound is a bound for. The metrics of an adaptive landscape are
those of the *filled* field on the finest grid, under the graph its representation names
(``grid-ttk``, ``grid-full``, ``grid-faces``): the measured values where measured, the
interpolant elsewhere. Measured vertices are those the refinement put there, so the diagram's
critical points sit on measured points wherever their pair is more persistent than the
target. The dense run's diagram is the same graph with the true values at every vertex, so
the stability theorem bounds the bottleneck distance between the two by the sup-norm of the
interpolation error over the missing vertices: ``bound = max`` over leaf cells of the
estimated error (the same for each grid representation, and for TTK's diagram with the
essential classes capped at the component maximum, since the minimum and maximum move by at
most as much). The bound is as good as the estimate of ``M``: a feature narrower than the
coarse spacing, invisible to every second difference, escapes it (aliasing). Each round
checks for that where it can: the points it adds were predicted by the interpolant within the
estimated error of their cells, and ``info["estimate_check"]`` counts the misses and the
worst ratio (a miss raises the estimates around it through the children's stencils and the
neighbours' maximum; cells never split are not checked). Cells with a
non-finite (diverged) value in their stencil have no estimate: they are refined while a
corner is finite (down to the finest spacing along the divergence's border, where no point is
missing); cells whose corners all diverged are left so and carry NaN or inf, swept last as
diverged points of dense grids, counted in ``n_nonfinite_cells`` and left out of the bound.

Determinism: every step is a function of the values measured so far (cells kept in
lexicographic order, ties broken by grid index, no set order), so an interrupted run that
replays its rounds from stored values proposes the same points.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Coarse grid: points per axis (a sub-grid of the finest grid).
COARSE = 9
#: Default target error: this fraction of the measured value range.
REL_TARGET = 0.01
#: Factor on the estimated interpolation error (second differences average the curvature).
#: Measured: over every leaf cell of Himmelblau, the Rastrigin-like fields and the narrow well
#: (201^2) and of 12 random 2-D and 4 random 3-D smooth fields (the tests' ``smooth_field``),
#: refined with this factor, the cell's largest true error was at most 1.21 times its
#: estimate without it (1.96 in a cell of the 5 x 5 wells the coarse grid aliases, whose
#: sup-norm error still stays below the stated bound); 1.5 covers the first with a margin
#: (benchmarks/adaptive_safety.py prints the table).
SAFETY = 1.5
#: The error estimate's version, in a run directory's configuration hash: the rounds (which
#: points, in which order) follow from it, so a run made with another estimate is not resumed
#: with this one. 2: Waldron's radius, the spectral bound and the neighbours' stencils.
ESTIMATE = 2
#: Most axes of an adaptive grid (a cell has 2^d corners and 3^d stencil points).
MAX_DIMS = 4
#: Why an adaptive run has no batch noise floor: each part of the data would refine its own
#: point set, so the distance between the parts' diagrams would add two interpolation errors
#: (each up to its bound) to the data's noise. The arithmetic floor (noise_points) and
#: eval_tokens (a number or "auto") work with adaptive sampling.
BATCH_FLOOR_REFUSED = (
    "batch_floor needs grid or scattered sampling: with sampling 'adaptive' each part of the "
    "data would refine its own points and the floor would include their interpolation errors"
)
#: The representation whose merge tree locates the critical points (the paper's "image").
REPRESENTATION = "grid-ttk"


@dataclass
class Refinement:
    """An adaptive landscape on its finest grid.

    Attributes:
        shape: the finest grid's shape.
        values: measured values in the finest grid's C order, NaN where not measured.
        measured: which points were measured (a measured value may itself be NaN: diverged).
        cells: ``(m, 2 d)`` int, the leaf cells as ``(lo..., hi...)`` grid indices.
        filled: the field the metrics use: measured values, the interpolant elsewhere.
        info: evaluations spent, estimated error, bound, target, rounds (:meth:`Refiner.result`).
    """

    shape: tuple[int, ...]
    values: np.ndarray
    measured: np.ndarray
    cells: np.ndarray
    filled: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_evaluations(self) -> int:
        return int(self.measured.sum())


class Refiner:
    """The refinement as a state machine: :meth:`propose` the next round's points (flat
    indices into the finest grid, sorted), :meth:`record` their values, until :meth:`propose`
    returns none. See the module docstring."""

    def __init__(
        self,
        shape: Sequence[int],
        *,
        coarse: int = COARSE,
        target: float | None = None,
        rel_target: float = REL_TARGET,
        noise: float | None = None,
        budget: int | None = None,
        threshold: float | None = None,
        representation: str = REPRESENTATION,
        safety: float = SAFETY,
        neighbours: bool = True,
    ):
        self.shape = tuple(int(n) for n in shape)
        d = len(self.shape)
        if not 1 <= d <= MAX_DIMS:
            raise ValueError(f"adaptive refinement takes 1 to {MAX_DIMS} axes, not {d}")
        if any(n < 2 for n in self.shape):
            raise ValueError(f"every axis needs at least 2 points, not {self.shape}")
        if not isinstance(coarse, (int, np.integer)) or coarse < 2:
            raise ValueError(f"coarse must be an integer >= 2, not {coarse!r}")
        if target is not None and not (np.isfinite(target) and target >= 0):
            raise ValueError(f"target must be a non-negative number, not {target!r}")
        if noise is not None and not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise (a noise floor) must be a non-negative number, not {noise!r}")
        if isinstance(rel_target, bool) or not (np.isfinite(rel_target) and rel_target > 0):
            raise ValueError(
                "rel_target must be a positive number (a fraction of the value range), "
                f"not {rel_target!r}"
            )
        if threshold is not None and not (np.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"threshold must be a non-negative number, not {threshold!r}")
        if budget is not None and (
            not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1
        ):
            raise ValueError(f"budget must be a positive integer, not {budget!r}")
        from saddles.topology.representations import GRID_REPRESENTATIONS

        if representation not in GRID_REPRESENTATIONS:
            raise ValueError(f"representation must be one of {tuple(GRID_REPRESENTATIONS)}")
        self.d = d
        self.coarse = int(coarse)
        self.target = target
        self.rel_target = float(rel_target)
        self.noise = noise
        self.budget = budget
        self.threshold = threshold
        self.representation = representation
        self.safety = float(safety)
        self.neighbours = bool(neighbours)
        n = int(np.prod(self.shape))
        self.values = np.full(n, np.nan)
        self.measured = np.zeros(n, dtype=bool)
        self.axes_coarse = [
            np.unique(np.round(np.linspace(0, s - 1, min(self.coarse, s))).astype(np.int64))
            for s in self.shape
        ]
        self.lo = np.zeros((0, d), np.int64)  # leaf cells
        self.hi = np.zeros((0, d), np.int64)
        self.plo = np.zeros((0, d), np.int64)  # each leaf's parent box (-1: a coarse cell)
        self.phi = np.zeros((0, d), np.int64)
        self.curv = np.zeros(0)  # M per leaf, NaN until its stencil is measured
        self.rounds: list[dict[str, Any]] = []
        self.stop_reason = ""
        self.started = False
        self.pending = np.zeros(0, np.int64)
        self._predicted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        #: The estimate checked where it made a prediction (:meth:`_check_estimate`).
        self.check = {"n_checked": 0, "n_exceeded": 0, "max_ratio": 0.0}

    @classmethod
    def from_coordinates(cls, coords: Any) -> Refiner:
        """The refiner of :func:`saddles.sampling.adaptive_grid`'s points."""
        if coords.info.get("kind") != "adaptive":
            raise ValueError("these coordinates are not an adaptive grid (sampling.adaptive_grid)")
        return cls(coords.shape, **coords.info["adaptive"])

    # --- the two steps ---------------------------------------------------------------------

    def propose(self) -> np.ndarray:
        """The next round's points (sorted flat indices of the finest grid); empty when done."""
        if self.pending.size and not self.measured[self.pending].all():
            raise RuntimeError("record the proposed points' values before proposing more")
        if not self.started:
            self.started = True
            self._coarse_cells()
            self.pending = self._corners(self.lo, self.hi)
            self.rounds.append({"new_points": int(self.pending.size), "reason": "coarse grid"})
            return self.pending.copy()
        err, tol = self._errors()
        self._check_estimate()
        filled = fill(self.values, self.shape, self._cells())
        critical = self._critical_vertices(filled, tol, err)
        holds = self._cells_holding(critical)
        splittable = (self.hi - self.lo).max(axis=1) >= 2
        crit_cells = holds & splittable
        # A cell whose stencil diverged has no error estimate: refined while a corner is
        # finite (the divergence's border), left as diverged when every corner is not.
        unknown = ~crit_cells & np.isnan(err) & splittable & self._any_finite_corner()
        err_cells = ~crit_cells & ~unknown & (err > tol) & splittable
        # Priority: critical cells, cells without an estimate, then by decreasing error
        # (ties: cell order).
        by_error = np.flatnonzero(err_cells)[np.argsort(-err[err_cells], kind="stable")]
        order = np.concatenate([np.flatnonzero(crit_cells), np.flatnonzero(unknown), by_error])
        self.rounds[-1].update(
            error=_nanmax(err), target=float(tol), n_critical_cells=int(crit_cells.sum()),
            n_error_cells=int(err_cells.sum()), n_unknown_cells=int(unknown.sum()),
        )  # fmt: skip
        if order.size == 0:
            self.stop_reason = "target reached"
            return np.zeros(0, np.int64)
        chosen, new = self._within_budget(order)
        if chosen.size == 0:
            self.stop_reason = "budget"
            return np.zeros(0, np.int64)
        self._predicted = (new, filled[new], self._painted(err)[np.unravel_index(new, self.shape)])
        self._split(chosen)
        self.pending = new
        n_crit, n_unknown = int(crit_cells.sum()), int(unknown.sum())
        split_by = {"critical": min(chosen.size, n_crit),  # the order's three parts
                    "unknown": min(max(chosen.size - n_crit, 0), n_unknown),
                    "error": max(chosen.size - n_crit - n_unknown, 0)}  # fmt: skip
        self.rounds.append({"new_points": int(new.size), "split_cells": int(chosen.size),
                            "split_by": split_by})  # fmt: skip
        if new.size == 0:  # the split cells' points were all measured: split again
            return self.propose()
        return new.copy()

    def record(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Store measured values at flat indices of the finest grid."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self.values[indices] = np.asarray(values, dtype=np.float64).reshape(-1)
        self.measured[indices] = True

    def result(self) -> Refinement:
        """The refinement so far, with its estimated error and bound."""
        err, tol = self._errors()
        cells = self._cells()
        finite = np.isfinite(err)
        bound = float(err[finite].max()) if finite.any() else 0.0
        vals = self.values[self.measured & np.isfinite(self.values)]
        span = float(vals.max() - vals.min()) if vals.size else 0.0
        n = int(np.prod(self.shape))
        info = {
            "kind": "adaptive",
            "shape": list(self.shape),
            "coarse": self.coarse,
            "representation": self.representation,
            "safety": self.safety,
            "estimate": ESTIMATE,
            "neighbours": self.neighbours,
            "n_evaluations": int(self.measured.sum()),
            "n_dense": n,
            "fraction_of_dense": float(self.measured.sum()) / n,
            "error": bound,
            "bottleneck_bound": bound,
            "value_range": span,
            "bound_relative": bound / span if span > 0 else 0.0,
            "target": float(tol),
            "target_source": self._target_source(span),
            "noise_floor": self.noise,
            "budget": self.budget,
            "stop_reason": self.stop_reason or "not finished",
            "n_rounds": len(self.rounds),
            "rounds": self.rounds,
            "n_cells": int(len(cells)),
            "n_nonfinite_cells": int((~finite).sum()),
            "estimate_check": dict(self.check),
        }
        filled = fill(self.values, self.shape, cells)
        return Refinement(self.shape, self.values.copy(), self.measured.copy(), cells, filled,
                          info)  # fmt: skip

    # --- internals ------------------------------------------------------------------------

    def _targets(self, span: float) -> dict[str, float]:
        """The candidates for the target error (the largest is used), by source."""
        out = {f"{self.rel_target:g} of range": self.rel_target * span}
        if self.target is not None:
            out["given"] = float(self.target)
        if self.noise is not None:
            out["noise floor"] = noise_target(self.noise, self.d, self.safety)
        return out

    def _target_source(self, span: float) -> str:
        targets = self._targets(span)
        return max(targets, key=lambda k: targets[k])

    def _cells(self) -> np.ndarray:
        return np.concatenate([self.lo, self.hi], axis=1)

    def _coarse_cells(self) -> None:
        ranges = [range(len(a) - 1) for a in self.axes_coarse]
        k = np.array(list(itertools.product(*ranges)), dtype=np.int64).reshape(-1, self.d)
        self.lo = np.stack([self.axes_coarse[i][k[:, i]] for i in range(self.d)], axis=1)
        self.hi = np.stack([self.axes_coarse[i][k[:, i] + 1] for i in range(self.d)], axis=1)
        self.plo = np.full_like(self.lo, -1)
        self.phi = np.full_like(self.hi, -1)
        self.curv = np.full(len(self.lo), np.nan)

    def _any_finite_corner(self) -> np.ndarray:
        """Which leaf cells have at least one corner with a finite measured value."""
        bits = np.array(list(itertools.product((0, 1), repeat=self.d)), dtype=np.int64)
        pts = self.lo[:, None, :] + bits[None] * (self.hi - self.lo)[:, None, :]
        flat = np.ravel_multi_index(pts.reshape(-1, self.d).T, self.shape)
        return np.isfinite(self.values[flat]).reshape(len(self.lo), -1).any(axis=1)

    def _corners(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Sorted unique flat indices of the corners of boxes ``[lo, hi]``."""
        bits = np.array(list(itertools.product((0, 1), repeat=self.d)), dtype=np.int64)
        pts = lo[:, None, :] + bits[None] * (hi - lo)[:, None, :]
        return np.unique(np.ravel_multi_index(pts.reshape(-1, self.d).T, self.shape))

    def _errors(self) -> tuple[np.ndarray, float]:
        """Each leaf's estimated interpolation error, and the target error."""
        todo = np.flatnonzero(np.isnan(self.curv))
        if todo.size:
            self._estimate_curvature(todo)
        width = (self.hi - self.lo).astype(np.float64)
        curv = self._neighbourhood_curvature() if self.neighbours else self.curv
        err = self.safety * curv * kuhn_radius_squared(width) / 2
        err[width.max(axis=1) <= 1] = 0.0  # every point of the cell is a measured corner
        vals = self.values[self.measured & np.isfinite(self.values)]
        span = float(vals.max() - vals.min()) if vals.size else 0.0
        tol = max(self._targets(span).values())
        return err, float(tol)

    def _painted(self, per_cell: np.ndarray) -> np.ndarray:
        """The finest grid with each point the largest of ``per_cell`` over the leaves whose
        closed box holds it (NaN ignored; 0 where none is finite)."""
        painted = np.zeros(self.shape)
        for lo, hi, m in zip(self.lo, self.hi, per_cell, strict=True):
            box = tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))
            painted[box] = np.fmax(painted[box], m)
        return painted

    def _check_estimate(self) -> None:
        """Aliasing detection: every point a round adds was predicted by the interpolant
        within the estimated error of the cells holding it. Counts the points where the
        measured value left that interval (``n_exceeded``) and the largest ratio of the
        deviation to the estimate (``max_ratio``; above 1: the estimate of ``M`` missed a
        feature there, and may elsewhere). Reported in ``info["estimate_check"]``."""
        if self._predicted is None:
            return
        idx, predicted, allowed = self._predicted
        self._predicted = None
        with np.errstate(invalid="ignore", over="ignore"):
            dev = np.abs(self.values[idx] - predicted)
        ok = np.isfinite(dev) & np.isfinite(allowed)
        dev, allowed = dev[ok], allowed[ok]
        ratio = np.where(
            allowed > 0, dev / np.where(allowed > 0, allowed, 1), np.where(dev > 0, np.inf, 0)
        )
        self.check["n_checked"] += int(ok.sum())
        self.check["n_exceeded"] += int((ratio > 1).sum())
        if ratio.size:
            self.check["max_ratio"] = max(self.check["max_ratio"], float(ratio.max()))

    def _neighbourhood_curvature(self) -> np.ndarray:
        """Each leaf's ``M``: the largest of its own and of every leaf touching it (sharing a
        corner, edge or face), so that curvature growing towards a cell's border, which the
        parent's one stencil in the middle misses, is seen from the neighbour's side. NaN
        where the leaf's own is."""
        painted = self._painted(self.curv)
        out = np.array([painted[tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))].max()
                        for lo, hi in zip(self.lo, self.hi, strict=True)])  # fmt: skip
        out[np.isnan(self.curv)] = np.nan
        return out

    def _estimate_curvature(self, todo: np.ndarray) -> None:
        """``M`` of the leaves ``todo``: coarse cells from the coarse grid, others from their
        parent's measured 3^d stencil (shared by siblings)."""
        coarse = todo[self.plo[todo, 0] < 0]
        if coarse.size:
            self.curv[coarse] = self._coarse_curvature(coarse)
        rest = todo[self.plo[todo, 0] >= 0]
        if rest.size == 0:
            return
        boxes = np.concatenate([self.plo[rest], self.phi[rest]], axis=1)
        uniq, inverse = np.unique(boxes, axis=0, return_inverse=True)
        per_parent = np.array([self._stencil_curvature(b[: self.d], b[self.d :]) for b in uniq])
        self.curv[rest] = per_parent[inverse.reshape(-1)]

    def _stencil_curvature(self, lo: np.ndarray, hi: np.ndarray) -> float:
        """Largest |second divided difference| on the points {lo, mid, hi}^d of a split box."""
        axes = [np.unique([a, (a + b) // 2, b]) for a, b in zip(lo, hi, strict=True)]
        return _max_second_difference(self._tensor(axes), axes)

    def _coarse_curvature(self, cells: np.ndarray) -> np.ndarray:
        """For coarse cells: the largest |second difference| of the coarse grid at the cell's
        corners (pure, along each axis, one-sided at the border) and on the cell (mixed)."""
        axes = self.axes_coarse
        grid = self._tensor(axes)
        per_point = [np.zeros(grid.shape) for _ in range(self.d)]  # |f_ii| per axis
        for i in range(self.d):
            if len(axes[i]) < 3:
                continue
            dd = np.abs(_second_divided(grid, axes[i], i))
            # NaN where a stencil value is not finite
            per_point[i] = np.concatenate([_take(dd, [0], i), dd, _take(dd, [-1], i)], axis=i)
        out = np.empty(len(cells))
        for n, c in enumerate(cells):
            k = [int(np.searchsorted(axes[i], self.lo[c, i])) for i in range(self.d)]
            box = tuple(slice(j, j + 2) for j in k)
            sub_axes = [axes[i][k[i] : k[i] + 2] for i in range(self.d)]
            m = _mixed_differences(grid[box], sub_axes)
            for i in range(self.d):
                m[i, i] = per_point[i][box].max()
            out[n] = _spectral_bound(m)  # NaN if an entry is
        return out

    def _tensor(self, axes: list[np.ndarray]) -> np.ndarray:
        """Measured values on the tensor product of per-axis grid indices."""
        mesh = np.meshgrid(*axes, indexing="ij")
        flat = np.ravel_multi_index([m.ravel() for m in mesh], self.shape)
        if not self.measured[flat].all():
            raise RuntimeError("a stencil point has not been measured")
        return self.values[flat].reshape(mesh[0].shape)

    def _critical_vertices(self, filled: np.ndarray, tol: float, err: np.ndarray) -> np.ndarray:
        """Vertices of the pairs that matter (see the module docstring), sorted: pairs more
        persistent than the target, each component's minimum and maximum, and pairs whose
        persistence is within twice the local error (the largest estimated error of the
        cells holding the pair's vertices) of the simplification threshold."""
        from saddles.topology.representations import representation_tree

        tree = representation_tree(self.representation, filled, shape=self.shape,
                                   nan_policy="max")  # fmt: skip
        v = tree.values
        pers = v[tree.pairs[:, 1]] - v[tree.pairs[:, 0]]
        keep = pers > tol
        if self.threshold is not None:
            finite = filled[np.isfinite(filled)]
            span = float(finite.max() - finite.min()) if finite.size else 0.0
            gap = np.abs(pers - self.threshold * span)
            for p in np.flatnonzero(~keep & (gap <= 2 * _nanmax(err))):
                local = _nanmax(err[self._cells_holding(tree.pairs[p])])
                keep[p] = gap[p] <= 2 * local
        chosen = [tree.pairs[keep].reshape(-1), tree.essential.reshape(-1)]
        return np.unique(np.concatenate(chosen).astype(np.int64))

    def _cells_holding(self, vertices: np.ndarray) -> np.ndarray:
        """Which leaf cells hold a vertex in their closed box."""
        out = np.zeros(len(self.lo), dtype=bool)
        if vertices.size == 0:
            return out
        pts = np.stack(np.unravel_index(vertices, self.shape), axis=1)
        for p in pts:  # a few dozen critical vertices
            out |= ((self.lo <= p) & (p <= self.hi)).all(axis=1)
        return out

    def _within_budget(self, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cells of ``order`` to split, cut where the budget would be exceeded, and the
        new points (sorted flat indices) they add."""
        lo, hi = self.lo[order], self.hi[order]
        mid = (lo + hi) // 2
        per_cell = []
        for a, m, b in zip(lo, mid, hi, strict=True):
            axes = [np.unique([x, y, z]) for x, y, z in zip(a, m, b, strict=True)]
            mesh = np.meshgrid(*axes, indexing="ij")
            flat = np.ravel_multi_index([g.ravel() for g in mesh], self.shape)
            per_cell.append(flat[~self.measured[flat]])
        if self.budget is None:
            return order, np.unique(np.concatenate(per_cell))
        left = self.budget - int(self.measured.sum())
        seen: set[int] = set()  # membership only; the points are returned sorted
        n_cells = 0
        for pts in per_cell:
            extra = {int(p) for p in pts} - seen
            if len(seen) + len(extra) > left:
                break
            seen |= extra
            n_cells += 1
        if n_cells == 0:
            return order[:0], np.zeros(0, np.int64)
        return order[:n_cells], np.array(sorted(seen), dtype=np.int64)

    def _split(self, chosen: np.ndarray) -> None:
        """Replace the cells ``chosen`` by their children; children remember the parent."""
        keep = np.ones(len(self.lo), dtype=bool)
        keep[chosen] = False
        new_lo, new_hi, new_plo, new_phi = [], [], [], []
        for c in chosen:
            a, b = self.lo[c], self.hi[c]
            m = (a + b) // 2
            halves = [[(a[i], b[i])] if b[i] - a[i] < 2 else [(a[i], m[i]), (m[i], b[i])]
                      for i in range(self.d)]  # fmt: skip
            for combo in itertools.product(*halves):
                new_lo.append([x for x, _ in combo])
                new_hi.append([y for _, y in combo])
                new_plo.append(a)
                new_phi.append(b)
        lo = np.concatenate([self.lo[keep], np.array(new_lo, np.int64)])
        hi = np.concatenate([self.hi[keep], np.array(new_hi, np.int64)])
        plo = np.concatenate([self.plo[keep], np.array(new_plo, np.int64)])
        phi = np.concatenate([self.phi[keep], np.array(new_phi, np.int64)])
        curv = np.concatenate([self.curv[keep], np.full(len(new_lo), np.nan)])
        order = np.lexsort(np.concatenate([lo, hi], axis=1).T[::-1])
        self.lo, self.hi, self.plo, self.phi = lo[order], hi[order], plo[order], phi[order]
        self.curv = curv[order]


def noise_target(noise: float, dims: int, safety: float = SAFETY) -> float:
    """The smallest error the estimate can certify on values with noise floor ``noise``:
    ``safety * dims^2 * noise / 2`` (see the module docstring)."""
    return float(safety * dims**2 * noise / 2)


def refine(
    f: Callable[[np.ndarray], np.ndarray],
    axes: Sequence[np.ndarray],
    **options: Any,
) -> Refinement:
    """Refine ``f`` (``(m, d)`` points -> ``(m,)`` values) on the finest grid ``axes`` (one
    1-D array of coordinates per axis); ``options`` as :class:`Refiner`."""
    axes = [np.asarray(a, dtype=np.float64) for a in axes]
    refiner = Refiner([len(a) for a in axes], **options)
    while (idx := refiner.propose()).size:
        refiner.record(idx, np.asarray(f(points_of(idx, axes)), dtype=np.float64))
    return refiner.result()


def points_of(indices: np.ndarray, axes: Sequence[np.ndarray]) -> np.ndarray:
    """Coordinates ``(m, d)`` of flat grid indices on the grid ``axes``."""
    multi = np.unravel_index(np.asarray(indices, dtype=np.int64), [len(a) for a in axes])
    return np.stack([np.asarray(a)[i] for a, i in zip(axes, multi, strict=True)], axis=1)


def fill(values: np.ndarray, shape: Sequence[int], cells: np.ndarray) -> np.ndarray:
    """The finest grid's field: measured values (non-NaN entries of ``values``) kept, every
    other point the piecewise-linear interpolant of the smallest leaf cell that holds it,
    on the Kuhn triangulation of ``grid-ttk`` (last axis flipped)."""
    shape = tuple(int(n) for n in shape)
    d = len(shape)
    out = np.asarray(values, dtype=np.float64).reshape(-1).copy()
    known = ~np.isnan(out)
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2 * d)
    lo, hi = cells[:, :d], cells[:, d:]
    width = hi - lo
    interp = np.full(out.shape, np.nan)
    # Largest cells first, so that a point on the border of a smaller cell takes its value.
    groups, inverse = np.unique(width, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    size = np.prod(groups, axis=1)
    for g in np.lexsort((np.arange(len(groups)), -size)):
        w = groups[g]
        if (w <= 1).all():
            continue
        offsets = np.array(list(itertools.product(*[range(x + 1) for x in w])), np.int64)
        weights, corners = _kuhn_weights(offsets / w)
        members = lo[inverse == g]
        corner_idx = np.ravel_multi_index(
            (members[:, None, :] + corners[None] * w).reshape(-1, d).T, shape
        ).reshape(len(members), -1)
        with np.errstate(invalid="ignore", over="ignore"):  # diverged corners give NaN
            block = out[corner_idx] @ weights.T  # (cells, offsets)
        at = np.ravel_multi_index((members[:, None, :] + offsets[None]).reshape(-1, d).T, shape)
        interp[at] = block.reshape(-1)
    out[~known] = interp[~known]
    return out


def _kuhn_weights(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric weights ``(k, 2^d)`` of points ``t`` (``(k, d)`` in [0, 1]^d) on the Kuhn
    triangulation whose simplices share the diagonal of the last-axis-flipped cube, and the
    ``(2^d, d)`` corners they weight."""
    k, d = t.shape
    corners = np.array(list(itertools.product((0, 1), repeat=d)), dtype=np.int64)
    u = t.copy()
    u[:, -1] = 1.0 - u[:, -1]  # flip the last axis: grid-ttk's diagonal
    perm = np.argsort(-u, axis=1, kind="stable")
    us = np.take_along_axis(u, perm, axis=1)
    lam = np.concatenate([1.0 - us[:, :1], us[:, :-1] - us[:, 1:], us[:, -1:]], axis=1)
    weights = np.zeros((k, 2**d))
    vertex = np.zeros((k, d), dtype=np.int64)  # in u-space
    for j in range(d + 1):
        if j:
            vertex[np.arange(k), perm[:, j - 1]] = 1
        tv = vertex.copy()
        tv[:, -1] = 1 - tv[:, -1]
        col = (tv * (1 << np.arange(d - 1, -1, -1))).sum(axis=1)  # row of `corners`
        np.add.at(weights, (np.arange(k), col), lam[:, j])
    return weights, corners


def _second_divided(grid: np.ndarray, axis_idx: np.ndarray, axis: int) -> np.ndarray:
    """Second divided differences ``2 [(f2 - f1)/b - (f1 - f0)/a] / (a + b)`` along ``axis``
    on the non-uniform grid indices ``axis_idx`` (interior points only)."""
    x = np.asarray(axis_idx, dtype=np.float64)
    a, b = np.diff(x)[:-1], np.diff(x)[1:]
    shape = [1] * grid.ndim
    shape[axis] = -1
    a, b = a.reshape(shape), b.reshape(shape)
    f0 = _take(grid, slice(0, -2), axis)
    f1 = _take(grid, slice(1, -1), axis)
    f2 = _take(grid, slice(2, None), axis)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN where a value diverged
        return 2 * ((f2 - f1) / b - (f1 - f0) / a) / (a + b)


def kuhn_radius_squared(width: np.ndarray) -> np.ndarray:
    """Squared radius of the smallest ball holding a Kuhn simplex of boxes with sides
    ``width`` (``(m, d)``): ``sum(width^2) / 4``.

    Every simplex of a box's Kuhn/Freudenthal triangulation has the box's main diagonal as an
    edge (the last-axis-flipped one for ``grid-ttk``: :func:`_kuhn_weights`), and each of its
    vertices is a box corner, at distance half the diagonal from the box's centre. The ball
    on the diagonal holds them all, and no smaller ball holds the diagonal's two ends.
    """
    return (np.asarray(width, dtype=np.float64) ** 2).sum(axis=-1) / 4


def _spectral_bound(m: np.ndarray) -> float:
    """A bound on the spectral norm of every Hessian whose entries are bounded by ``m``
    (``(d, d)``, non-negative, symmetric): ``||H|| <= || |H| || <= rho(m)``, the Perron root
    (the spectral norm is monotone in the entries of non-negative matrices). NaN if an
    entry is."""
    if not np.isfinite(m).all():
        return np.nan
    return float(np.linalg.eigvalsh(m)[-1])


def _max_second_difference(grid: np.ndarray, axes: list[np.ndarray]) -> float:
    """The spectral bound (:func:`_spectral_bound`) of the largest |pure and mixed second
    divided differences| on a small tensor grid; NaN if a value is not finite."""
    if not np.isfinite(grid).all():
        return np.nan
    m = _mixed_differences(grid, axes)
    for i in range(grid.ndim):
        if len(axes[i]) >= 3:
            m[i, i] = float(np.abs(_second_divided(grid, axes[i], i)).max())
    return _spectral_bound(m)


def _mixed_differences(grid: np.ndarray, axes: list[np.ndarray]) -> np.ndarray:
    """``(d, d)``: off the diagonal, the largest |f_ij| by the four-corner divided difference
    over every pair of axes (NaN if a value is not finite); zero on it."""
    d = grid.ndim
    out = np.zeros((d, d))
    for i, j in itertools.combinations(range(d), 2):
        with np.errstate(invalid="ignore", over="ignore"):  # NaN where a value diverged
            di = np.diff(grid, axis=i) / _along(np.diff(np.asarray(axes[i], float)), i, d)
            dij = np.diff(di, axis=j) / _along(np.diff(np.asarray(axes[j], float)), j, d)
        out[i, j] = out[j, i] = np.abs(dij).max() if np.isfinite(dij).all() else np.nan
    return out


def _along(x: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return x.reshape(shape)


def _take(a: np.ndarray, index, axis: int) -> np.ndarray:
    sl = [slice(None)] * a.ndim
    sl[axis] = index
    return a[tuple(sl)]


def _nanmax(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite.max()) if finite.size else 0.0
