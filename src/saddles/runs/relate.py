"""Stage 6: relations between metrics across models, reported as numbers with uncertainty.

- :func:`correlate`: Spearman's rho and Pearson's r of two metrics over models, each with a
  percentile-bootstrap 95% confidence interval (resampling models with replacement; Efron &
  Tibshirani 1993) and a two-sided permutation p-value (exact over all permutations when there
  are few models, Monte Carlo otherwise).
- :func:`relations_table`: every metric of one group against every metric of another.
- :func:`relations_from_rows`: the relations table of rows (one per model x direction seed x
  direction kind x representation): every metric against every model-level quantity, over
  seed ensembles or single planes, Holm-adjusted (:func:`mark_significant`). The summary of an
  experiment and the comparison of finished runs both build their tables with it.
- :func:`correlate_ensemble`: the same for a metric measured on several direction seeds
  per model; a two-level bootstrap (models, then seeds within each model) carries the seed
  spread into the interval. :func:`bootstrap_ci`: a per-model summary over its seeds.
- :func:`fit_power_law`: L(N) = a N^-alpha + c by least squares, with bootstrap CIs and the
  fit's residuals (as in scaling-law work, e.g. Kaplan et al. 2020, Hoffmann et al. 2022);
  :func:`power_laws`: such fits of metrics in rows against their parameter count, per series
  (used by the comparison of runs and the language-model experiment).
- :func:`trend`: does a series rise or fall over time (Spearman against time, and the slope
  against log time, each with a bootstrap CI).
- :func:`change_points`: the best continuous piecewise-linear fit of a series (breakpoints
  anywhere in the x range: a grid search refined between samples, a BIC penalty on their
  number); says whether the fitted segments change direction (non-monotone).
- :func:`adjust_pvalues`: p-values adjusted for many comparisons (a relations table tests
  every metric pair): Holm's step-down family-wise control or Benjamini-Hochberg's FDR.
- :func:`loo_errors`: leave-one-out prediction error of a least-squares line, to compare how
  well different features predict a target across models (sizes).

Bad inputs are refused with a one-line ``ValueError`` that names the argument and the
problem (mismatched lengths, NaN or inf where a fit needs numbers, too few points or distinct
sizes). Where a result is defined but says little, it is returned with NaN and a ``note``.

Small-n rule for intervals. A bootstrap interval is reported as (NaN, NaN), with ``note``
saying why, when (a) there are fewer than :data:`MIN_CI_POINTS` models (points), (b) the
statistic is undefined (e.g. a constant resample) on more than half of the resamples, or (c)
the interval has zero width, e.g. [1, 1] for a perfectly monotone pair: a percentile interval
at the bound of a bounded statistic, or from a handful of distinct resamples, expresses no
uncertainty even though there is some.

Plain numpy/scipy; this module never imports torch.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

#: Fewest models (or points) for which a bootstrap interval is reported (rule (a) above). With
#: 3 models, 3 of the 10 distinct resamples are constant and 6 hold only two distinct values,
#: so a correlation's bootstrap distribution sits on {-1, NaN, 1} plus the estimate itself.
MIN_CI_POINTS = 4
#: Level of the Holm-adjusted p below which (with an interval excluding 0) a relation is
#: marked ``significant``.
ALPHA = 0.05
#: The columns that split rows into series: one relation or fit per value of them.
SERIES = ("subspace", "direction", "representation")


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

    Pairs where either value is NaN or inf are dropped (and counted in ``note``). With fewer
    than 3 usable pairs, or a constant metric, every number is NaN: a correlation is not
    defined there, and saying so beats reporting 0. Intervals follow the module's small-n
    rule (NaN with a note below :data:`MIN_CI_POINTS` pairs or when degenerate).
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
    idx = rng.integers(0, n, size=(n_boot, n)) if n >= MIN_CI_POINTS else None
    if idx is None:
        notes.append(f"{n} pairs: no interval (fewer than {MIN_CI_POINTS})")
    out = {}
    for name, fn in (("spearman", _spearman), ("pearson", _pearson)):
        r = float(fn(x[None], y[None])[0])
        ci = nan2
        if idx is not None:
            ci, why = _percentile_ci(fn(x[idx], y[idx]), 0.95)
            if why:
                notes.append(f"{name} interval: {why}")
        out[name] = (r, ci, _permutation_p(fn, x, y, r, n_perm, rng))
    return Correlation(x_name, y_name, n, *out["spearman"], *out["pearson"], "; ".join(notes))


def relations_table(
    rows: list[dict], x_keys: list[str], y_keys: list[str], **kwargs
) -> list[Correlation]:
    """Correlate every ``x_keys`` metric with every ``y_keys`` metric over ``rows`` (one row
    per model; a missing or non-numeric value counts as NaN)."""

    for name, keys in (("x_keys", x_keys), ("y_keys", y_keys)):
        if isinstance(keys, str):
            raise ValueError(f"{name} must be a list of column names, not the string {keys!r}")

    def column(key):
        return np.array([_number(r.get(key)) for r in rows], dtype=float)

    return [
        correlate(column(a), column(b), a, b, **kwargs) for a in x_keys for b in y_keys if a != b
    ]


def relations_from_rows(
    rows: list[dict[str, Any]],
    metrics: list[str],
    against: list[str],
    *,
    n_boot: int = 1000,
    n_perm: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every metric against every model-level quantity, per direction kind x representation.

    ``rows``: one per model x direction seed x direction kind x representation (``model``,
    ``direction``, ``representation`` columns); a quantity of ``against`` is read from each
    model's first row. Where a model has several seeds, :func:`correlate_ensemble` (two-level
    bootstrap; ``interval`` "seeds and models"), else :func:`correlate` (``interval``
    "models"). Columns as :meth:`Correlation.as_row` (``x`` the metric, ``y`` the quantity,
    ``n`` the number of models), plus ``n_seeds`` (the fewest seeds of a model) and the
    columns of :func:`mark_significant` (Holm over this table).
    """
    out: list[dict[str, Any]] = []
    pairs = list(dict.fromkeys((r["direction"], r["representation"]) for r in rows))
    for kind, rep in pairs:
        sub = [r for r in rows if r["direction"] == kind and r["representation"] == rep]
        models = list(dict.fromkeys(r["model"] for r in sub))
        per_model = {m: [r for r in sub if r["model"] == m] for m in models}
        n_seeds = min(len(v) for v in per_model.values())
        for x in metrics:
            for y in against:
                if x == y:
                    continue
                yv = np.array([_numeric(per_model[m][0].get(y)) for m in models])
                xs = [[_numeric(r.get(x)) for r in per_model[m]] for m in models]
                row: dict[str, Any] = {"direction": kind, "representation": rep}
                if max(len(v) for v in xs) > 1:
                    s, p = (correlate_ensemble(yv, xs, method=method, n_boot=n_boot,
                                               n_perm=n_perm, seed=seed, x_name=y, y_name=x)
                            for method in ("spearman", "pearson"))  # fmt: skip
                    row.update({"x": x, "y": y, "n": s.n_models,
                                "spearman": s.estimate, "spearman_ci_low": s.ci[0],
                                "spearman_ci_high": s.ci[1], "spearman_p": s.p,
                                "pearson": p.estimate, "pearson_ci_low": p.ci[0],
                                "pearson_ci_high": p.ci[1], "pearson_p": p.p,
                                "note": "; ".join(dict.fromkeys(n for n in (s.note, p.note) if n)),
                                "interval": "seeds and models"})  # fmt: skip
                else:
                    c = correlate(np.array([v[0] for v in xs]), yv, x, y, n_boot=n_boot,
                                  n_perm=n_perm, seed=seed)  # fmt: skip
                    row.update(c.as_row())
                    row["interval"] = "models"
                row["n_seeds"] = n_seeds
                out.append(row)
    mark_significant(out)
    return out


def mark_significant(table: list[dict[str, Any]], alpha: float = ALPHA) -> None:
    """Give every row of a relations table ``spearman_p_holm`` and ``pearson_p_holm`` (Holm
    1979 over the whole table, :func:`adjust_pvalues`) and ``significant``: an adjusted
    Spearman p below ``alpha`` and a Spearman interval that excludes 0. In place."""
    for method in ("spearman", "pearson"):
        adjusted = adjust_pvalues(np.array([r[f"{method}_p"] for r in table], dtype=float))
        for r, p in zip(table, adjusted, strict=True):
            r[f"{method}_p_holm"] = float(p)
    for r in table:
        lo, hi = r["spearman_ci_low"], r["spearman_ci_high"]
        excludes = bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
        r["significant"] = bool(r["spearman_p_holm"] < alpha and excludes)


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
    direction seeds) of ``y``, with a two-level bootstrap interval at ``level``."""

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
    The interval is a two-level percentile bootstrap: resample models with replacement, then
    each drawn model's seeds with replacement, and recompute the statistic on the resampled
    per-model summaries (the hierarchical bootstrap of Davison & Hinkley 1997, sec. 3.8, and
    Ren et al. 2010). Resampling at both levels counts the seed spread once more than one
    level would, so the interval errs on the wide side. A metric from one random plane is
    one sample; this is how its seed-to-seed spread reaches the interval.

    A NaN/inf seed value is dropped; a model with a non-finite x or no finite seed values is
    dropped; both are counted in ``note``. With fewer than 3 models, or a constant x or
    constant summaries, the estimate is NaN; the interval follows the module's small-n rule
    (NaN with a note below :data:`MIN_CI_POINTS` models or when degenerate).
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
                                   m, s_min, s_max, note)  # fmt: skip

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
        boot = _two_level_boot(fn, xs, groups, counts, summary, n_boot, rng)
        interval, why = _percentile_ci(boot, level)
        if why:
            notes.append(f"interval: {why}")
        if s_max == 1:
            notes.append("one seed per model: the interval holds no seed-to-seed spread")
    return result(r, _permutation_p(fn, xs, ybar, r, n_perm, rng), interval)


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
    note: str = ""

    def predict(self, n) -> np.ndarray:
        return self.a * np.asarray(n, dtype=float) ** (-self.alpha) + self.c


def fit_power_law(n, loss, offset: bool = True, n_boot: int = 1000, seed: int = 0) -> PowerLawFit:
    """Least-squares fit of L = a N^-alpha + c (``offset=False`` fixes c = 0).

    Starts from the log-log line fit; the bootstrap resamples points (resamples with fewer
    distinct sizes than parameters, and refits that fail to converge, are dropped). Needs at
    least as many distinct sizes as parameters (repeated sizes, e.g. several seeds of one
    model, count once). Intervals follow the module's small-n rule, counting distinct sizes:
    below :data:`MIN_CI_POINTS` (which includes the exact fit, as many sizes as parameters)
    they are NaN with a note. With ``offset=False`` the fixed c has the interval (0, 0).
    """
    n, loss = _pair(n, loss, "n", "loss")
    _require_finite(n, "n")
    _require_finite(loss, "loss")
    if (n <= 0).any():
        i = int(np.flatnonzero(n <= 0)[0])
        raise ValueError(f"power-law fit needs positive sizes N; n[{i}] = {n[i]:g}")
    _check_int(n_boot, "n_boot", 0)
    k = 3 if offset else 2
    sizes = np.unique(n)
    if len(sizes) < k:
        raise ValueError(
            f"a power law with {k} parameters needs at least {k} distinct sizes N, got "
            f"{len(sizes)} ({', '.join(f'{v:g}' for v in sizes)}) in {len(n)} points"
        )
    params = _fit_once(n, loss, offset)
    if params is None:
        raise RuntimeError("the power-law fit did not converge")
    a, alpha, c = params
    residuals = loss - (a * n ** (-alpha) + c)
    nan2 = (math.nan, math.nan)
    if len(sizes) < MIN_CI_POINTS:
        note = f"{len(sizes)} distinct sizes: no interval (fewer than {MIN_CI_POINTS})"
        if len(sizes) == k:
            note = f"{k} distinct sizes for {k} parameters: the fit is exact, no interval"
        c_ci = nan2 if offset else (0.0, 0.0)
        return PowerLawFit(a, alpha, c, nan2, nan2, c_ci, residuals, len(n), note)
    rng = np.random.default_rng(seed)
    boots = np.full((n_boot, 3), np.nan)
    for b in range(n_boot):
        i = rng.integers(0, len(n), len(n))
        if len(np.unique(n[i])) < k:
            continue
        p = _fit_once(n[i], loss[i], offset)
        if p is not None:
            boots[b] = p
    cis, notes = [], []
    for j, name in enumerate(("a", "alpha", "c")):
        if j == 2 and not offset:
            cis.append((0.0, 0.0))
            continue
        ci, why = _percentile_ci(boots[:, j], 0.95)
        cis.append(ci)
        if why:
            notes.append(f"{name} interval: {why}")
    return PowerLawFit(a, alpha, c, *cis, residuals, len(n), "; ".join(notes))


def power_laws(
    rows: list[dict[str, Any]],
    metrics: list[str],
    by: Sequence[str] = SERIES,
    *,
    size: str = "n_params",
    unit: str = "run",
    n_boot: int = 1000,
    seed: int = 0,
    fits: dict[tuple, PowerLawFit] | None = None,
) -> list[dict[str, Any]]:
    """Per series (a value of the ``by`` columns) and metric, L(N) = a N^-alpha (+ c) of the
    per-``unit`` mean over its rows (e.g. a run's direction seeds) against ``size``.

    ``c`` is fitted from four distinct sizes on, else fixed at 0 (said in ``note``). A fit that
    cannot be made is a row with NaN and a note saying why. ``fits``, when given, receives each
    :class:`PowerLawFit` made, keyed by the series' values and the metric.
    """
    out = []
    for key in dict.fromkeys(tuple(r[k] for k in by) for r in rows):
        own = [r for r in rows if tuple(r[k] for k in by) == key]
        for metric in metrics:
            per_unit: dict[Any, tuple[float, list[float]]] = {}
            for r in own:
                n, v = _not_bool(r.get(size)), _not_bool(r.get(metric))
                if math.isfinite(n) and math.isfinite(v):
                    per_unit.setdefault(r[unit], (n, []))[1].append(v)
            if not per_unit:
                continue
            n = np.array([p[0] for p in per_unit.values()])
            y = np.array([float(np.mean(p[1])) for p in per_unit.values()])
            row: dict[str, Any] = {**dict(zip(by, key, strict=True)), "metric": metric,
                                   "n": len(n)}  # fmt: skip
            offset = len(np.unique(n)) >= 4
            try:
                f = fit_power_law(n, y, offset=offset, n_boot=n_boot, seed=seed)
            except (ValueError, RuntimeError) as exc:
                row.update({"a": math.nan, "alpha": math.nan, "c": math.nan, "note": str(exc)})
            else:
                if fits is not None:
                    fits[(*key, metric)] = f
                row.update({"a": f.a, "a_ci_low": f.a_ci[0], "a_ci_high": f.a_ci[1],
                            "alpha": f.alpha, "alpha_ci_low": f.alpha_ci[0],
                            "alpha_ci_high": f.alpha_ci[1], "c": f.c, "c_ci_low": f.c_ci[0],
                            "c_ci_high": f.c_ci[1],
                            "rms_residual": float(np.sqrt(np.mean(f.residuals**2))),
                            "note": "; ".join(x for x in (
                                "" if offset else "c fixed at 0 (fewer than 4 sizes)",
                                f.note) if x)})  # fmt: skip
            row["sizes"] = json.dumps([int(v) for v in n])
            out.append(row)
    return out


@dataclass(frozen=True)
class Trend:
    """Direction of a series over time: Spearman against time and the least-squares slope of
    the values against log(time), each with a percentile-bootstrap 95% CI."""

    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    slope_per_log_step: float
    slope_ci: tuple[float, float]
    note: str = ""

    def as_row(self) -> dict:
        """A flat dict for tables and CSV files (intervals as ``_ci_low``/``_ci_high``)."""
        return {"n": self.n, "spearman": self.spearman, "spearman_ci_low": self.spearman_ci[0],
                "spearman_ci_high": self.spearman_ci[1],
                "slope_per_log_step": self.slope_per_log_step, "slope_ci_low": self.slope_ci[0],
                "slope_ci_high": self.slope_ci[1], "note": self.note}  # fmt: skip


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
    c = correlate(t, y, n_boot=n_boot, n_perm=10, seed=seed)
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
    return Trend(n, c.spearman, c.spearman_ci, slope, ci, "; ".join(notes))


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


def loo_errors(features, target) -> np.ndarray:
    """Leave-one-out absolute errors of predicting ``target`` from ``features`` by least
    squares with an intercept: row i is predicted by the line fitted to the other rows.

    ``features`` is one value per row or a (rows, features) array; every value must be
    finite. A rank-deficient fit (e.g. a constant feature) uses the minimum-norm solution, so
    such a feature adds nothing rather than failing.
    """
    X = np.asarray(features, dtype=float)
    y = np.asarray(target, dtype=float)
    if X.ndim not in (1, 2):
        raise ValueError(f"features must be 1-D or 2-D (rows, features), not shape {X.shape}")
    if y.ndim != 1:
        raise ValueError(f"target must be 1-D, not shape {y.shape}")
    n = len(y)
    if X.shape[0] != n:
        raise ValueError(f"features has {X.shape[0]} rows but target has {n} values")
    _require_finite(X, "features")
    _require_finite(y, "target")
    X = X[:, None] if X.ndim == 1 else X
    if n < X.shape[1] + 2:
        raise ValueError(
            f"need at least {X.shape[1] + 2} rows to leave one out with {X.shape[1]} "
            f"feature(s), have {n}"
        )
    A = np.column_stack([np.ones(n), X])
    errors = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        coef, *_ = np.linalg.lstsq(A[keep], y[keep], rcond=None)
        errors[i] = abs(A[i] @ coef - y[i])
    return errors


# --- internals ---------------------------------------------------------------------------


def _pair(x, y, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float arrays, refused unless both are 1-D of one length."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"{x_name} and {y_name} must be 1-D arrays of equal length, not shapes "
            f"{x.shape} and {y.shape}"
        )
    return x, y


def _require_finite(a: np.ndarray, name: str) -> None:
    """Refuse NaN or inf in ``a``, naming where the first ones are."""
    bad = ~np.isfinite(a)
    if bad.any():
        where = np.argwhere(bad)
        first = [tuple(int(v) for v in w) if a.ndim > 1 else int(w[0]) for w in where[:3]]
        kind = "NaN" if np.isnan(a[tuple(where[0])]) else "inf"
        more = f" and {len(where) - 3} more" if len(where) > 3 else ""
        raise ValueError(
            f"{name} must be finite: {kind} at index {', '.join(map(str, first))}{more}"
        )


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")


def _check_level(ci) -> float:
    if not isinstance(ci, (float, int, np.floating)) or not 0 < ci < 1:
        raise ValueError(f"ci must be a confidence level in (0, 1), not {ci!r}")
    return float(ci)


def _undefined_correlation(x, y, n: int, x_label: str, y_label: str) -> str:
    """Why a correlation over ``n`` pairs is undefined, or "" when it is defined."""
    if n < 3:
        return f"{n} usable pairs: no correlation (fewer than 3)"
    for label, v in ((x_label, x), (y_label, y)):
        if np.ptp(v) == 0:
            return f"{label} is constant over the {n} usable pairs: no correlation"
    return ""


def _percentile_ci(boot: np.ndarray, level: float) -> tuple[tuple[float, float], str]:
    """Percentile interval of bootstrap replicates (NaN = undefined on that resample), and
    "" or the reason it is NaN under the module's small-n rules (b) and (c)."""
    nan2 = (math.nan, math.nan)
    boot = np.asarray(boot, dtype=float).ravel()
    if len(boot) == 0:
        return nan2, "no bootstrap resamples (n_boot = 0)"
    finite = boot[np.isfinite(boot)]
    if len(finite) < 0.5 * len(boot):
        return nan2, f"undefined on {len(boot) - len(finite)} of {len(boot)} resamples"
    tail = 50 * (1 - level)
    lo, hi = (float(v) for v in np.percentile(finite, [tail, 100 - tail]))
    if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):
        return nan2, f"degenerate bootstrap distribution (the central resamples all give {lo:.4g})"
    return (lo, hi), ""


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


def _two_level_boot(fn, x, groups, counts, summary: str, n_boot: int, rng) -> np.ndarray:
    """``fn`` on ``n_boot`` two-level resamples: models with replacement, then each drawn
    model's seeds with replacement, summarized per model (NaN where ``fn`` is undefined)."""
    m, s_max = len(x), int(counts.max())
    table = np.full((m, s_max), np.nan)
    for j, g in enumerate(groups):
        table[j, : len(g)] = g
    out = np.empty(n_boot)
    chunk = max(1, 2**21 // (m * s_max))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, m, size=(b, m))
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
    if offset:
        fn = lambda n_, a, alpha, c: a * n_ ** (-alpha) + c  # noqa: E731
        p0 = (math.exp(intercept), -slope, c0)
    else:
        fn = lambda n_, a, alpha: a * n_ ** (-alpha)  # noqa: E731
        p0 = (math.exp(intercept), -slope)
    try:
        with warnings.catch_warnings():  # an exact fit has no covariance; only p is used
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            p, _ = optimize.curve_fit(fn, n, loss, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    if not np.isfinite(p).all():
        return None
    return (float(p[0]), float(p[1]), float(p[2]) if offset else 0.0)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _numeric(value) -> float:
    """A number-typed value (not a bool) as float; anything else (text, a flag) is NaN."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return float(value) if ok else math.nan


def _not_bool(value) -> float:
    """:func:`_number`, with a bool (a flag, not a quantity) as NaN."""
    return math.nan if isinstance(value, bool) else _number(value)
