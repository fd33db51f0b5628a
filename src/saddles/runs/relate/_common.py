"""Checks and small helpers the relations share: argument checks with one-line messages,
percentile intervals with the small-n rule (see :mod:`saddles.runs.relate`), number parsing."""

from __future__ import annotations

import math

import numpy as np

#: Fewest models (or points) for which a bootstrap interval is reported (rule (a) above). With
#: 3 models, 3 of the 10 distinct resamples are constant and 6 hold only two distinct values,
#: so a correlation's bootstrap distribution sits on {-1, NaN, 1} plus the estimate itself.
MIN_CI_POINTS = 4
#: Level of the Holm-adjusted p below which (with an interval excluding 0) a relation is
#: marked ``significant``.
ALPHA = 0.05
#: The columns that split rows into series: one relation or fit per value of them.
SERIES = ("subspace", "direction", "representation")


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


def _pair(x, y, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float arrays, refused unless both are 1-D of one length."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"{x_name} and {y_name} must be 1-D arrays of equal length, not shapes "
            f"{x.shape} and {y.shape}"
        )
    return x, y
