"""Correlations of two metrics over models, with Fisher-z intervals (Fisher 1921; Bonett &
Wright 2000 for Spearman; :mod:`saddles.runs.relate.intervals` says why and what happens at the
boundary) and permutation p-values with the smallest p the test can give; over seed ensembles
with the seed spread added to the interval; p-values adjusted for many comparisons (Holm 1979;
Benjamini & Hochberg 1995). :func:`bootstrap_ci` (a statistic over seeds) stays a percentile
bootstrap (Efron & Tibshirani 1993)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from saddles.runs.relate._common import (
    MIN_CI_POINTS,
    _check_int,
    _check_level,
    _pair,
    _percentile_ci,
)
from saddles.runs.relate.intervals import (
    fisher_z_interval,
    largest_abs,
    smallest_p,
    z_variance,
)


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
    note: str = ""
    #: The smallest two-sided permutation p these x values allow (Spearman's test).
    p_min: float = math.nan

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
    """Spearman and Pearson correlation with Fisher-z intervals and permutation p-values.

    Pairs where either value is NaN or inf are dropped (and counted in ``note``). With fewer
    than 3 usable pairs, or a constant metric, every number is NaN: a correlation is not
    defined there, and saying so beats reporting 0. Intervals are Fisher-z (Pearson: se
    1/sqrt(n-3); Spearman: Bonett & Wright's se; capped at the boundary, see
    :mod:`saddles.runs.relate.intervals`), NaN with a note below :data:`MIN_CI_POINTS` pairs;
    they always hold the estimate. ``p_min`` is the smallest p the permutation test can give
    with these values (2/n! for distinct ones). ``n_boot`` is kept for callers and unused.
    """
    x, y = _pair(x, y, "x", "y")
    _check_int(n_boot, "n_boot", 0)
    _check_int(n_perm, "n_perm", 1)
    ok = np.isfinite(x) & np.isfinite(y)
    notes = [f"{int((~ok).sum())} of {len(x)} pairs dropped (NaN or inf)"] if not ok.all() else []
    x, y = x[ok], y[ok]
    n = len(x)
    nan2 = (math.nan, math.nan)
    undefined = _undefined_correlation(x, y, n, "x", "y")
    if undefined:
        note = "; ".join([*notes, undefined])
        return Correlation(x_name, y_name, n, math.nan, nan2, math.nan, math.nan, nan2, math.nan,
                           note)  # fmt: skip
    rng = np.random.default_rng(seed)
    if n < MIN_CI_POINTS:
        notes.append(f"{n} pairs: no interval (fewer than {MIN_CI_POINTS})")
    out, p_min = {}, math.nan
    for name, fn in (("spearman", _spearman), ("pearson", _pearson)):
        r = float(fn(x[None], y[None])[0])
        p, low = _permutation_p(fn, x, y, r, n_perm, rng)
        if name == "spearman":
            p_min = low
        out[name] = (r, fisher_z_interval(r, n, name), p)
    return Correlation(x_name, y_name, n, *out["spearman"], *out["pearson"], "; ".join(notes),
                       p_min)  # fmt: skip


@dataclass(frozen=True)
class BootstrapCI:
    """A statistic of ``n`` values with its percentile-bootstrap interval at ``level``."""

    estimate: float
    ci: tuple[float, float]
    n: int
    level: float
    note: str = ""


def bootstrap_ci(
    values, statistic: Callable = np.mean, n_boot: int = 2000, seed: int = 0, ci: float = 0.95
) -> BootstrapCI:
    """``statistic`` of ``values`` (e.g. one model's metric over its direction seeds) with a
    percentile-bootstrap interval (resampling values with replacement; Efron & Tibshirani
    1993, ch. 13).

    ``statistic`` is called as ``statistic(a, axis=-1)`` on the stacked resamples when it
    accepts ``axis`` (np.mean, np.median do), else once per resample. NaN/inf values are
    dropped and counted in ``note``. The interval is NaN, with a note, for fewer than 2
    values, when all values are equal, or under the module's small-n rules (b) and (c).
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, not shape {v.shape}")
    _check_int(n_boot, "n_boot", 0)
    level = _check_level(ci)
    ok = np.isfinite(v)
    notes = [f"{int((~ok).sum())} of {len(v)} values dropped (NaN or inf)"] if not ok.all() else []
    v = v[ok]
    n = len(v)
    nan2 = (math.nan, math.nan)
    if n == 0:
        return BootstrapCI(math.nan, nan2, 0, level, "; ".join([*notes, "no finite values"]))
    estimate = float(statistic(v))
    if n < 2 or np.ptp(v) == 0:
        why = "1 value: no interval" if n < 2 else f"all {n} values equal: no interval"
        return BootstrapCI(estimate, nan2, n, level, "; ".join([*notes, why]))
    rng = np.random.default_rng(seed)
    samples = v[rng.integers(0, n, size=(n_boot, n))]
    try:
        boot = np.asarray(statistic(samples, axis=-1), dtype=float).reshape(n_boot)
    except TypeError:
        boot = np.array([statistic(row) for row in samples], dtype=float).reshape(n_boot)
    interval, why = _percentile_ci(boot, level)
    return BootstrapCI(estimate, interval, n, level, "; ".join([*notes, why] if why else notes))


@dataclass(frozen=True)
class EnsembleCorrelation:
    """Correlation of a per-model ``x`` with the per-model ``summary`` (mean or median over
    direction seeds) of ``y``, with a Fisher-z interval at ``level`` widened by the seed
    spread (:func:`correlate_ensemble`)."""

    x: str
    y: str
    method: str
    summary: str
    estimate: float
    p: float
    ci: tuple[float, float]
    level: float
    n_models: int
    n_seeds_min: int
    n_seeds_max: int
    note: str = ""
    #: The smallest two-sided permutation p these x values allow.
    p_min: float = math.nan

    def as_row(self) -> dict:
        """A flat dict for tables and CSV files."""
        row = asdict(self)
        row["ci_low"], row["ci_high"] = row.pop("ci")
        return row


def correlate_ensemble(
    x, y_per_model: Sequence[Sequence[float]], method: str = "spearman", summary: str = "mean",
    n_boot: int = 2000, n_perm: int = 5000, seed: int = 0, ci: float = 0.95,
    x_name: str = "x", y_name: str = "y",
) -> EnsembleCorrelation:  # fmt: skip
    """Correlate a per-model ``x`` (beta, size, step) with a metric measured on several
    direction seeds per model (``y_per_model[i]``: model i's values, one per seed; models
    may have different numbers of seeds).

    The estimate is Spearman's rho or Pearson's r of x against the per-model means (or
    medians), and ``p`` its two-sided permutation p-value, as :func:`correlate` computes them.
    The interval is the Fisher-z interval of that estimate over the models
    (:func:`saddles.runs.relate.intervals.fisher_z_interval`), its z-scale variance increased
    by the variance of atanh(r) when each model's seeds are resampled with replacement and the
    models held fixed: a metric from one random plane is one sample, and this is how its
    seed-to-seed spread reaches the interval. Centred on the estimate, the interval always
    holds it (a two-level percentile bootstrap, resampling models and then seeds, did not:
    at rho = -1 it could give [-0.975, -0.205]).

    A NaN/inf seed value is dropped; a model with a non-finite x or no finite seed values is
    dropped; both are counted in ``note``. With fewer than 3 models, or a constant x or
    constant summaries, the estimate is NaN; the interval is NaN with a note below
    :data:`MIN_CI_POINTS` models. ``p_min``: the smallest p the permutation test can give.
    """
    fns = {"spearman": _spearman, "pearson": _pearson}
    if method not in fns:
        raise ValueError(f"method must be 'spearman' or 'pearson', not {method!r}")
    if summary not in ("mean", "median"):
        raise ValueError(f"summary must be 'mean' or 'median', not {summary!r}")
    _check_int(n_boot, "n_boot", 0)
    _check_int(n_perm, "n_perm", 1)
    level = _check_level(ci)
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D (one value per model), not shape {x.shape}")
    groups = []
    for i, seeds in enumerate(y_per_model):
        g = np.asarray(seeds, dtype=float)
        if g.ndim != 1:
            what = "a scalar (for one value per model use correlate)" if g.ndim == 0 else (
                f"shape {g.shape}")  # fmt: skip
            raise ValueError(f"y_per_model[{i}] must be a 1-D sequence of per-seed values, "
                             f"not {what}")  # fmt: skip
        groups.append(g)
    if len(groups) != len(x):
        raise ValueError(f"x has {len(x)} models but y_per_model has {len(groups)}")
    notes = []
    n_bad_seeds = sum(int((~np.isfinite(g)).sum()) for g in groups)
    if n_bad_seeds:
        notes.append(f"{n_bad_seeds} seed values dropped (NaN or inf)")
    groups = [g[np.isfinite(g)] for g in groups]
    keep = [i for i in range(len(x)) if np.isfinite(x[i]) and len(groups[i])]
    if len(keep) < len(x):
        notes.append(f"{len(x) - len(keep)} of {len(x)} models dropped (non-finite x or no "
                     f"finite seed values)")  # fmt: skip
    xs, groups = x[keep], [groups[i] for i in keep]
    m = len(xs)
    counts = np.array([len(g) for g in groups], dtype=int)
    s_min, s_max = (int(counts.min()), int(counts.max())) if m else (0, 0)
    reduce = np.mean if summary == "mean" else np.median
    ybar = np.array([reduce(g) for g in groups])
    nan2 = (math.nan, math.nan)

    def result(estimate, p, interval, extra=""):
        note = "; ".join([*notes, extra] if extra else notes)
        return EnsembleCorrelation(x_name, y_name, method, summary, estimate, p, interval, level,
                                   m, s_min, s_max, note, p_min)  # fmt: skip

    p_min = math.nan

    undefined = _undefined_correlation(xs, ybar, m, "x", f"the per-model {summary}")
    if undefined:
        return result(math.nan, math.nan, nan2, undefined.replace("pairs", "models"))
    fn = fns[method]
    r = float(fn(xs[None], ybar[None])[0])
    rng = np.random.default_rng(seed)
    interval = nan2
    if m < MIN_CI_POINTS:
        notes.append(f"{m} models: no interval (fewer than {MIN_CI_POINTS})")
    else:
        extra = 0.0
        if s_max > 1:
            extra = z_variance(_seed_boot(fn, xs, groups, counts, summary, n_boot, rng), m)
        else:
            notes.append("one seed per model: the interval holds no seed-to-seed spread")
        interval = fisher_z_interval(r, m, method, level, extra)
    p, p_min = _permutation_p(fn, xs, ybar, r, n_perm, rng)
    return result(r, p, interval)


def adjust_pvalues(p, method: str = "holm") -> np.ndarray:
    """p-values adjusted for multiple comparisons, in the input's order and shape.

    ``"holm"``: Holm's (1979) step-down procedure, controlling the family-wise error rate
    under any dependence: with p sorted ascending, p~_(i) = max_{j <= i} min(1, (m - j + 1)
    p_(j)). ``"bh"``: Benjamini & Hochberg's (1995) step-up procedure, controlling the false
    discovery rate for independent or positively dependent tests (``scipy.stats.
    false_discovery_control``). Rejecting where the adjusted value is <= alpha is the
    procedure at level alpha. NaN p-values (undefined tests) stay NaN and are not counted
    in m; anything else outside [0, 1] is refused.
    """
    if method not in ("holm", "bh"):
        raise ValueError(f"method must be 'holm' or 'bh', not {method!r}")
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    bad = np.isinf(flat) | (flat < 0) | (flat > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"p-values must lie in [0, 1] (or be NaN): p[{i}] = {flat[i]:g} "
            f"({int(bad.sum())} outside)"
        )
    out = np.full(flat.shape, np.nan)
    ok = ~np.isnan(flat)
    q = flat[ok]
    m = len(q)
    if m:
        if method == "bh":
            out[ok] = stats.false_discovery_control(q, method="bh")
        else:
            order = np.argsort(q, kind="stable")
            adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * q[order]), 1.0)
            res = np.empty(m)
            res[order] = adjusted
            out[ok] = res
    return out.reshape(p.shape)


def _undefined_correlation(x, y, n: int, x_label: str, y_label: str) -> str:
    """Why a correlation over ``n`` pairs is undefined, or "" when it is defined."""
    if n < 3:
        return f"{n} usable pairs: no correlation (fewer than 3)"
    for label, v in ((x_label, x), (y_label, y)):
        if np.ptp(v) == 0:
            return f"{label} is constant over the {n} usable pairs: no correlation"
    return ""


def _seed_boot(fn, x, groups, counts, summary: str, n_boot: int, rng) -> np.ndarray:
    """``fn`` on ``n_boot`` resamples of each model's seeds with replacement (the models held
    fixed), summarized per model (NaN where ``fn`` is undefined)."""
    m, s_max = len(x), int(counts.max())
    table = np.full((m, s_max), np.nan)
    for j, g in enumerate(groups):
        table[j, : len(g)] = g
    out = np.empty(n_boot)
    chunk = max(1, 2**21 // (m * s_max))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = np.broadcast_to(np.arange(m), (b, m))
        c = counts[idx][..., None]
        draw = rng.integers(0, c, size=(b, m, s_max))
        vals = table[idx[..., None], draw]
        used = np.arange(s_max) < c
        if summary == "mean":
            y = np.where(used, vals, 0.0).sum(axis=2) / c[..., 0]
        else:
            y = np.nanmedian(np.where(used, vals, np.nan), axis=2)
        out[start : start + b] = fn(x[idx], y)
    return out


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


def _permutation_p(fn, x, y, observed: float, n_perm: int, rng) -> tuple[float, float]:
    """Two-sided p-value of |r| under random pairing (exact when n! <= n_perm), and the
    smallest p this test can give (:func:`saddles.runs.relate.intervals.smallest_p`)."""
    n = len(x)
    if math.factorial(n) <= n_perm:
        perms = np.array(list(itertools.permutations(range(n))))
        null = fn(np.broadcast_to(x, perms.shape), y[perms])
        p = float(np.mean(np.abs(null) >= abs(observed) - 1e-12))
        return p, smallest_p(null, True, n_perm, largest_abs(fn, x, y))
    perms = rng.permuted(np.broadcast_to(np.arange(n), (n_perm, n)), axis=1)
    null = fn(np.broadcast_to(x, perms.shape), y[perms])
    p = float((np.sum(np.abs(null) >= abs(observed) - 1e-12) + 1) / (n_perm + 1))
    return p, smallest_p(null, False, n_perm, largest_abs(fn, x, y))
