"""Stage 6: relations between metrics across models, reported as numbers with uncertainty.

- :func:`correlate`: Spearman's rho and Pearson's r of two metrics over models, each with a
  percentile-bootstrap 95% confidence interval (resampling models with replacement; Efron &
  Tibshirani 1993) and a two-sided permutation p-value (exact over all permutations when there
  are few models, Monte Carlo otherwise).
- :func:`relations_table`: every metric of one group against every metric of another.
- :func:`fit_power_law`: L(N) = a N^-alpha + c by least squares, with bootstrap CIs and the
  fit's residuals (as in scaling-law work, e.g. Kaplan et al. 2020, Hoffmann et al. 2022).
- :func:`trend`: does a series rise or fall over time (Spearman against time, and the slope
  against log time, each with a bootstrap CI).
- :func:`change_points`: the best continuous piecewise-linear fit of a series (exhaustive
  search over breakpoints, a BIC penalty on their number); says whether the fitted segments
  change direction (non-monotone).
- :func:`loo_errors`: leave-one-out prediction error of a least-squares line, to compare how
  well different features predict a target across models (sizes).

Plain numpy/scipy; this module never imports torch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats


@dataclass(frozen=True)
class Correlation:
    """Correlation of ``x`` against ``y`` over ``n`` models (pairs with a NaN are dropped)."""

    x: str
    y: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    spearman_p: float
    pearson: float
    pearson_ci: tuple[float, float]
    pearson_p: float

    def as_row(self) -> dict:
        """A flat dict for tables and CSV files."""
        row = asdict(self)
        for name in ("spearman", "pearson"):
            lo, hi = row.pop(f"{name}_ci")
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = lo, hi
        return row


def correlate(
    x, y, x_name: str = "x", y_name: str = "y", n_boot: int = 2000, n_perm: int = 5000,
    seed: int = 0,
) -> Correlation:  # fmt: skip
    """Spearman and Pearson correlation with bootstrap CIs and permutation p-values.

    With fewer than 3 usable pairs, or a constant metric, every number is NaN: a correlation
    is not defined there, and saying so beats reporting 0.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of equal length, not {x.shape}, {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    nan2 = (math.nan, math.nan)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(x_name, y_name, n, math.nan, nan2, math.nan, math.nan, nan2, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    out = {}
    for name, fn in (("spearman", _spearman), ("pearson", _pearson)):
        r = float(fn(x[None], y[None])[0])
        boot = fn(x[idx], y[idx])
        boot = boot[np.isfinite(boot)]
        ci = tuple(np.percentile(boot, [2.5, 97.5])) if len(boot) else nan2
        out[name] = (r, (float(ci[0]), float(ci[1])), _permutation_p(fn, x, y, r, n_perm, rng))
    return Correlation(x_name, y_name, n, *out["spearman"][:1], out["spearman"][1],
                       out["spearman"][2], out["pearson"][0], out["pearson"][1],
                       out["pearson"][2])  # fmt: skip


def relations_table(
    rows: list[dict], x_keys: list[str], y_keys: list[str], **kwargs
) -> list[Correlation]:
    """Correlate every ``x_keys`` metric with every ``y_keys`` metric over ``rows`` (one row
    per model; a missing or non-numeric value counts as NaN)."""

    def column(key):
        return np.array([_number(r.get(key)) for r in rows], dtype=float)

    return [
        correlate(column(a), column(b), a, b, **kwargs) for a in x_keys for b in y_keys if a != b
    ]


@dataclass(frozen=True)
class PowerLawFit:
    """L(N) = a * N^(-alpha) + c fitted to (N, L), with bootstrap 95% CIs."""

    a: float
    alpha: float
    c: float
    a_ci: tuple[float, float]
    alpha_ci: tuple[float, float]
    c_ci: tuple[float, float]
    residuals: np.ndarray
    n: int

    def predict(self, n) -> np.ndarray:
        return self.a * np.asarray(n, dtype=float) ** (-self.alpha) + self.c


def fit_power_law(n, loss, offset: bool = True, n_boot: int = 1000, seed: int = 0) -> PowerLawFit:
    """Least-squares fit of L = a N^-alpha + c (``offset=False`` fixes c = 0).

    Starts from the log-log line fit; the bootstrap resamples points (refits that fail to
    converge are dropped). With as many points as parameters the fit is exact and the CIs
    are not informative.
    """
    n, loss = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    if n.shape != loss.shape or n.ndim != 1:
        raise ValueError("n and loss must be 1-D arrays of equal length")
    if (n <= 0).any() or not np.isfinite(loss).all():
        raise ValueError("power-law fit needs positive sizes N and finite losses")
    k = 3 if offset else 2
    if len(n) < k:
        raise ValueError(f"a power law with {k} parameters needs at least {k} points")
    params = _fit_once(n, loss, offset)
    if params is None:
        raise RuntimeError("the power-law fit did not converge")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(n), len(n))
        if len(np.unique(n[i])) < k:
            continue
        p = _fit_once(n[i], loss[i], offset)
        if p is not None:
            boots.append(p)
    boots = np.array(boots) if boots else np.full((1, 3), np.nan)
    cis = [tuple(float(v) for v in np.nanpercentile(boots[:, j], [2.5, 97.5])) for j in range(3)]
    a, alpha, c = params
    residuals = loss - (a * n ** (-alpha) + c)
    return PowerLawFit(a, alpha, c, cis[0], cis[1], cis[2], residuals, len(n))


@dataclass(frozen=True)
class Trend:
    """Direction of a series over time: Spearman against time and the least-squares slope of
    the values against log(time), each with a percentile-bootstrap 95% CI."""

    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    slope_per_log_step: float
    slope_ci: tuple[float, float]


def trend(steps, values, n_boot: int = 2000, seed: int = 0) -> Trend:
    """How ``values`` move with ``steps`` (> 0): rank correlation and slope per e-fold of steps."""
    t, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    ok = np.isfinite(t) & np.isfinite(y) & (t > 0)
    t, y = np.log(t[ok]), y[ok]
    n = len(t)
    nan2 = (math.nan, math.nan)
    if n < 3 or np.ptp(t) == 0:
        return Trend(n, math.nan, nan2, math.nan, nan2)
    c = correlate(t, y, n_boot=n_boot, n_perm=10, seed=seed)
    slope = float(np.polyfit(t, y, 1)[0])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        if np.ptp(t[i]) > 0:
            boots.append(np.polyfit(t[i], y[i], 1)[0])
    ci = tuple(float(v) for v in np.percentile(boots, [2.5, 97.5])) if boots else nan2
    return Trend(n, c.spearman, c.spearman_ci, slope, ci)


@dataclass(frozen=True)
class ChangePoints:
    """A continuous piecewise-linear fit: ``breaks`` (x values where the slope changes), the
    slope of each segment, and whether the slopes change sign (a non-monotone series)."""

    breaks: list[float]
    slopes: list[float]
    monotone: bool
    bic: float


def change_points(x, y, max_changes: int = 2, min_size: int = 3) -> ChangePoints:
    """Best continuous piecewise-linear fit with 0..``max_changes`` slope changes, by BIC.

    Breakpoints are searched exhaustively among the sample x values (every segment holding at
    least ``min_size`` points), each candidate fitted by least squares on the hinge basis
    ``1, x, (x - b_1)_+, ...``; the number of breaks minimizes n log(RSS / n) + (2 + 3 k) log n:
    each break adds a slope, and its location, chosen by search among n candidates, is charged
    twice (as the modified BIC of Zhang & Siegmund 2007 charges locations extra; with the plain
    2 k, exhaustive search over locations finds spurious breaks near the ends of noisy lines).
    ``monotone`` is True when all fitted slopes share a sign (|slope| < 1e-12 ignored).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        raise ValueError("change_points needs at least two distinct x values")

    def fit(breaks):
        A = np.column_stack([np.ones(n), x, *[np.maximum(x - b, 0) for b in breaks]])
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        return float(np.sum((y - A @ coef) ** 2)), coef

    best = None
    candidates = range(min_size, n - min_size + 1)
    for k in range(0, max_changes + 1):
        for idx in itertools.combinations(candidates, k):
            if any(b - a < min_size for a, b in zip(idx[:-1], idx[1:], strict=True)):
                continue
            breaks = [x[i] for i in idx]
            rss, coef = fit(breaks)
            bic = n * math.log(max(rss, 1e-300) / n) + (2 + 3 * k) * math.log(n)
            if best is None or bic < best[0] - 1e-9:
                best = (bic, breaks, coef)
    bic, breaks, coef = best
    slopes = list(np.cumsum(coef[1:]).astype(float))
    signs = {np.sign(s) for s in slopes if abs(s) > 1e-12}
    return ChangePoints([float(b) for b in breaks], slopes, len(signs) <= 1, float(bic))


def loo_errors(features, target) -> np.ndarray:
    """Leave-one-out absolute errors of predicting ``target`` from ``features`` by least
    squares with an intercept: row i is predicted by the line fitted to the other rows."""
    X = np.asarray(features, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(target, dtype=float)
    n = len(y)
    if X.shape[0] != n or n < X.shape[1] + 2:
        raise ValueError(f"need at least {X.shape[1] + 2} rows to leave one out, have {n}")
    A = np.column_stack([np.ones(n), X])
    errors = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        coef, *_ = np.linalg.lstsq(A[keep], y[keep], rcond=None)
        errors[i] = abs(A[i] @ coef - y[i])
    return errors


# --- internals ---------------------------------------------------------------------------


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of (k, n) arrays; NaN for a constant row."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / den
    r[den <= 1e-300] = np.nan
    return np.clip(r, -1.0, 1.0)


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Spearman correlation: Pearson of the (average-tie) ranks."""
    return _pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))


def _permutation_p(fn, x, y, observed: float, n_perm: int, rng) -> float:
    """Two-sided p-value of |r| under random pairing: exact when n! <= n_perm."""
    n = len(x)
    if math.factorial(n) <= n_perm:
        perms = np.array(list(itertools.permutations(range(n))))
        null = fn(np.broadcast_to(x, perms.shape), y[perms])
        return float(np.mean(np.abs(null) >= abs(observed) - 1e-12))
    perms = rng.permuted(np.broadcast_to(np.arange(n), (n_perm, n)), axis=1)
    null = fn(np.broadcast_to(x, perms.shape), y[perms])
    return float((np.sum(np.abs(null) >= abs(observed) - 1e-12) + 1) / (n_perm + 1))


def _fit_once(n, loss, offset: bool):
    logn = np.log(n)
    c0 = 0.9 * loss.min() if offset else 0.0
    shifted = np.maximum(loss - c0, 1e-12)
    slope, intercept = np.polyfit(logn, np.log(shifted), 1)
    try:
        if offset:
            fn = lambda n_, a, alpha, c: a * n_ ** (-alpha) + c  # noqa: E731
            p0 = (math.exp(intercept), -slope, c0)
        else:
            fn = lambda n_, a, alpha: a * n_ ** (-alpha)  # noqa: E731
            p0 = (math.exp(intercept), -slope)
        p, _ = optimize.curve_fit(fn, n, loss, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    if not np.isfinite(p).all():
        return None
    return (float(p[0]), float(p[1]), float(p[2]) if offset else 0.0)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
