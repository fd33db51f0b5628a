"""Trends over training: Spearman against the step and the slope per e-fold of steps, with
bootstrap intervals; the best continuous piecewise-linear fit (change points, a BIC penalty)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from saddles.runs.relate._common import (
    MIN_CI_POINTS,
    _check_int,
    _pair,
    _percentile_ci,
    _require_finite,
)
from saddles.runs.relate.correlation import correlate


@dataclass(frozen=True)
class Trend:
    """Direction of a series over time: Spearman against time and the least-squares slope of
    the values against log(time): rho with its Fisher-z 95% interval (Bonett & Wright's se)
    and permutation p (``p_min``: the smallest p the test can give), the slope with a
    percentile-bootstrap 95% interval."""

    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    slope_per_log_step: float
    slope_ci: tuple[float, float]
    note: str = ""
    p: float = math.nan
    p_min: float = math.nan

    def as_row(self) -> dict:
        """A flat dict for tables and CSV files (intervals as ``_ci_low``/``_ci_high``)."""
        return {"n": self.n, "spearman": self.spearman, "spearman_ci_low": self.spearman_ci[0],
                "spearman_ci_high": self.spearman_ci[1],
                "slope_per_log_step": self.slope_per_log_step, "slope_ci_low": self.slope_ci[0],
                "slope_ci_high": self.slope_ci[1], "p": self.p, "p_min": self.p_min,
                "note": self.note}  # fmt: skip


def trend(steps, values, n_boot: int = 2000, seed: int = 0) -> Trend:
    """How ``values`` move with ``steps``: rank correlation and slope per e-fold of steps.

    Points with a NaN/inf value or a step <= 0 (no logarithm; e.g. the initial checkpoint)
    are dropped and counted in ``note``. With fewer than 3 points left, or a single step,
    everything is NaN; intervals follow the module's small-n rule.
    """
    t, y = _pair(steps, values, "steps", "values")
    _check_int(n_boot, "n_boot", 0)
    finite = np.isfinite(t) & np.isfinite(y)
    ok = finite & (t > 0)
    notes = []
    if not finite.all():
        notes.append(f"points dropped for NaN or inf: {int((~finite).sum())}")
    if (finite & ~ok).any():
        notes.append(f"points dropped for step <= 0: {int((finite & ~ok).sum())}")
    t, y = np.log(t[ok]), y[ok]
    n = len(t)
    nan2 = (math.nan, math.nan)
    if n < 3 or np.ptp(t) == 0:
        notes.append(f"{n} points at {len(np.unique(t))} distinct steps: no trend")
        return Trend(n, math.nan, nan2, math.nan, nan2, "; ".join(notes))
    c = correlate(t, y, n_perm=2000, seed=seed)
    if c.note:
        notes.append(c.note)
    slope = float(np.polyfit(t, y, 1)[0])
    ci = nan2
    if n >= MIN_CI_POINTS:
        rng = np.random.default_rng(seed)
        boots = np.full(n_boot, np.nan)
        for b in range(n_boot):
            i = rng.integers(0, n, n)
            if np.ptp(t[i]) > 0:
                boots[b] = np.polyfit(t[i], y[i], 1)[0]
        ci, why = _percentile_ci(boots, 0.95)
        if why:
            notes.append(f"slope interval: {why}")
    return Trend(n, c.spearman, c.spearman_ci, slope, ci, "; ".join(notes), c.spearman_p,
                 c.p_min)  # fmt: skip


@dataclass(frozen=True)
class ChangePoints:
    """A continuous piecewise-linear fit: ``breaks`` (x values where the slope changes), the
    slope of each segment, and whether the slopes change sign (a non-monotone series)."""

    breaks: list[float]
    slopes: list[float]
    monotone: bool
    bic: float
    note: str = ""


def change_points(x, y, max_changes: int = 2, min_size: int = 3) -> ChangePoints:
    """Best continuous piecewise-linear fit with 0..``max_changes`` slope changes, by BIC.

    A fit with breaks b_1 < ... < b_k is least squares on the hinge basis
    ``1, x, (x - b_1)_+, ...``. Breaks can lie anywhere in the x range, not only at samples;
    each segment must span at least ``min_size`` + 1 samples, a sample on a break counting
    for both segments it joins (``min_size`` samples beyond the break). For each k the search
    is exhaustive over a grid of the samples and the midpoints between them (O(n^k) fits);
    the two best grid fits are then refined by a bounded Brent search of each break between
    its neighbouring grid points (the residual is smooth in a break between samples).

    The number of breaks minimizes n log(RSS / n) + (2 + 3 k) log n: each break adds a slope
    and a location, the location charged twice, as the modified BIC of Zhang & Siegmund 2007
    charges locations extra (with the plain 2 k, searching over locations finds spurious
    breaks near the ends of noisy lines). RSS is floored at 1e-12 of the total sum of
    squares, so round-off on noiseless data buys no breaks. ``monotone`` is True when all
    fitted slopes share a sign (|slope| below 1e-9 of the overall rise over run counts as 0).
    A series too short for one break gets the straight line, with a ``note``.
    """
    x, y = _pair(x, y, "x", "y")
    _require_finite(x, "x")
    _require_finite(y, "y")
    _check_int(max_changes, "max_changes", 0)
    _check_int(min_size, "min_size", 1)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    n = len(x)
    ux = np.unique(x)
    if len(ux) < 2:
        raise ValueError(f"change_points needs at least two distinct x values, got {len(ux)}")
    tss = float(np.sum((y - y.mean()) ** 2))
    floor = max(1e-12 * tss, 1e-300)

    def feasible(breaks: np.ndarray) -> np.ndarray:
        """(P, k) sorted breaks -> (P,) whether every segment holds min_size samples."""
        below = np.searchsorted(x, breaks, side="left")  # samples < b
        upto = np.searchsorted(x, breaks, side="right")  # samples <= b
        m = min_size + 1
        ok = (upto[:, 0] >= m) & (n - below[:, -1] >= m)
        ok &= (breaks[:, 0] > x[0]) & (breaks[:, -1] < x[-1])
        if breaks.shape[1] > 1:
            ok &= (upto[:, 1:] - below[:, :-1] >= m).all(axis=1)
            ok &= (np.diff(breaks, axis=1) > 0).all(axis=1)
        return ok

    def fit(breaks) -> tuple[float, np.ndarray]:
        A = np.column_stack([np.ones(n), x, *[np.maximum(x - b, 0) for b in breaks]])
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        return float(np.sum((y - A @ coef) ** 2)), coef

    grid = np.sort(np.concatenate([ux, (ux[:-1] + ux[1:]) / 2]))
    best = (n * math.log(max(fit([])[0], floor) / n) + 2 * math.log(n), [])
    tried = 0
    for k in range(1, max_changes + 1):
        combos = np.array(list(itertools.combinations(range(len(grid)), k)), dtype=int)
        if len(combos) == 0:
            break
        combos = combos[feasible(grid[combos])]
        if len(combos) == 0:
            break
        tried = k
        rss = _hinge_rss(x, y, grid[combos])
        top = combos[np.argsort(rss, kind="stable")[:2]]
        for idx in top:
            brackets = [(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]) for i in idx]
            breaks = _refine_breaks(x, y, grid[idx], brackets, min_size + 1)
            bic = n * math.log(max(fit(breaks)[0], floor) / n) + (2 + 3 * k) * math.log(n)
            if bic < best[0] - 1e-9:
                best = (bic, [float(b) for b in breaks])
    bic, breaks = best
    coef = fit(breaks)[1]
    slopes = [float(v) for v in np.cumsum(coef[1:])]
    tol = 1e-9 * np.ptp(y) / np.ptp(x)
    signs = sorted({float(np.sign(v)) for v in slopes if abs(v) > tol})
    note = ""
    if tried < max_changes:
        note = (f"{n} samples allow at most {tried} break(s) with min_size {min_size} "
                f"(asked for up to {max_changes})")  # fmt: skip
    return ChangePoints(breaks, slopes, len(signs) <= 1, float(bic), note)


def _refine_breaks(x: np.ndarray, y: np.ndarray, start, brackets, m: int) -> np.ndarray:
    """Coordinate-wise bounded Brent search (two sweeps) of the break locations, each within
    its bracket of neighbouring grid points and the range where every segment still spans
    ``m`` samples (``x`` sorted)."""
    n, k = len(x), len(start)
    breaks = np.array(start, dtype=float)
    A = np.column_stack([np.ones(n), x, *[np.maximum(x - b, 0) for b in breaks]])

    def rss(v: float, j: int) -> float:
        A[:, 2 + j] = np.maximum(x - v, 0)
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        return float(np.sum((y - A @ coef) ** 2))

    best = rss(breaks[0], 0)
    for _ in range(1 if k == 1 else 2):
        for j, (lo, hi) in enumerate(brackets):
            # Samples in [b_{j-1}, v] and in [v, b_{j+1}] must number at least m each.
            first = 0 if j == 0 else int(np.searchsorted(x, breaks[j - 1], side="left"))
            last = n if j == k - 1 else int(np.searchsorted(x, breaks[j + 1], side="right"))
            lo, hi = max(lo, x[first + m - 1]), min(hi, x[last - m])
            if lo < hi:
                res = optimize.minimize_scalar(rss, bounds=(lo, hi), args=(j,), method="bounded",
                                               options={"xatol": 1e-6 * np.ptp(x)})  # fmt: skip
                if res.fun < best:
                    best, breaks[j] = float(res.fun), float(res.x)
            A[:, 2 + j] = np.maximum(x - breaks[j], 0)
    return breaks


def _hinge_rss(x: np.ndarray, y: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    """Residual sums of squares of the hinge fits for each row of ``breaks`` (P, k), batched
    through a rank-revealing SVD; x and y are centred and x scaled, which leaves the fit's
    column space unchanged and keeps round-off small (good enough to rank candidates)."""
    n, k = len(x), breaks.shape[1]
    span = np.ptp(x)
    xs, bs = (x - x.mean()) / span, (breaks - x.mean()) / span
    yc = y - y.mean()
    out = np.empty(len(breaks))
    chunk = max(1, 2**20 // (n * (k + 2)))
    for start in range(0, len(breaks), chunk):
        b = bs[start : start + chunk]
        A = np.empty((len(b), n, k + 2))
        A[:, :, 0], A[:, :, 1] = 1.0, xs
        A[:, :, 2:] = np.maximum(xs[None, :, None] - b[:, None, :], 0.0)
        u, sv, _ = np.linalg.svd(A, full_matrices=False)
        proj = np.einsum("pnj,n->pj", u, yc)
        proj[sv <= sv[:, :1] * max(n, k + 2) * np.finfo(float).eps] = 0.0
        out[start : start + chunk] = np.maximum(yc @ yc - (proj**2).sum(axis=1), 0.0)
    return out
