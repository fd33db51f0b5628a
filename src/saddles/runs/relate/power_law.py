"""Power laws L(N) = a N^-alpha + c against model size by least squares, with bootstrap
intervals (as in scaling-law work, Kaplan et al. 2020, Hoffmann et al. 2022), and the
leave-one-out error of a least-squares predictor."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from saddles.runs.relate._common import (
    MIN_CI_POINTS,
    SERIES,
    _check_int,
    _not_bool,
    _pair,
    _percentile_ci,
    _require_finite,
)


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
    distinct sizes than parameters, and refits that fail to converge, are dropped). A
    constant ``loss`` is refused (there is nothing to fit). Needs at
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
    if np.ptp(loss) == 0:
        raise ValueError(f"loss is constant ({loss[0]:g} at every size): no power law to fit")
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
    cannot be made is a row with NaN and a note saying why; a metric with one value at every
    size is not fitted (a = -7e-48, alpha = -3e-15 would fit it): ``fit`` says ``constant``,
    ``c`` holds the value. Every other row's ``fit`` is ``power law``. ``fits``, when given,
    receives each :class:`PowerLawFit` made, keyed by the series' values and the metric.
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
            if len(np.unique(n)) >= 2 and np.ptp(y) == 0:
                note = f"constant: {y[0]:g} at every size"
                row.update({"fit": "constant", "a": math.nan, "alpha": math.nan,
                            "c": float(y[0]), "note": note})  # fmt: skip
                row["sizes"] = json.dumps([int(v) for v in n])
                out.append(row)
                continue
            row["fit"] = "power law"
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


def loo_errors(features, target, groups=None) -> np.ndarray:
    """Leave-one-out absolute errors of predicting ``target`` from ``features`` by least
    squares with an intercept: row i is predicted by the line fitted to the other rows, or,
    given ``groups`` (one label per row, e.g. the model size of each training run), to the
    rows of the other groups (leave one group out: several runs of one size go out together).

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
    labels = np.arange(n) if groups is None else np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"groups must give one label per row ({n}), not shape {labels.shape}")
    distinct = list(dict.fromkeys(labels.tolist()))
    if len(distinct) < X.shape[1] + 2:
        raise ValueError(
            f"need at least {X.shape[1] + 2} groups to leave one out with {X.shape[1]} "
            f"feature(s), have {len(distinct)}"
        )
    A = np.column_stack([np.ones(n), X])
    errors = np.empty(n)
    for label in distinct:
        out = labels == label
        coef, *_ = np.linalg.lstsq(A[~out], y[~out], rcond=None)
        errors[out] = np.abs(A[out] @ coef - y[out])
    return errors


# --- internals ---------------------------------------------------------------------------


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
