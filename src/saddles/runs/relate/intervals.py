"""Correlation intervals that behave at the boundary, and what a permutation test can show.

Which interval is used where (the package's rule):

- Spearman's rho and Pearson's r (:func:`saddles.runs.relate.correlate`, the relations tables,
  trends): a **Fisher-z interval**, tanh(atanh(r) +- z_{1-a/2} se), with se = 1/sqrt(n - 3)
  for Pearson (Fisher 1921) and the Bonett & Wright (2000) standard error
  sqrt((1 + rho^2 / 2) / (n - 3)) for Spearman (which is the better-behaved choice with ties
  and large |rho| than Fieller, Hartley & Pearson's 1957 sqrt(1.06 / (n - 3))). It is a
  monotone map of a symmetric interval, so it always holds its own estimate, and it never
  leaves [-1, 1]. Percentile bootstraps of a bounded statistic do neither reliably: at
  rho = 1 every resample of a monotone pair gives 1, and a two-level bootstrap centred on
  resampled seeds can exclude the estimate made on the per-model means.
- At the boundary (|r| = 1, where atanh is infinite) the estimate is moved, for the interval
  only, one step inwards: a Spearman coefficient of n distinct ranks takes no value between
  1 and 1 - 12 / (n (n^2 - 1)) (one adjacent swap), so |r| is capped at that nearest
  interior value (in the spirit of Haldane and Anscombe's 1/2 added to an empty cell), and
  the bound-side end of the interval is the bound itself: [tanh(atanh(cap) - z se), 1]. The
  same cap serves Pearson's r. (Half a step gave 90% coverage at rho_s = 0.97, n = 10.)
- Seed ensembles (:func:`saddles.runs.relate.correlate_ensemble`): the same interval on the
  per-model summaries, its z-scale variance increased by the variance of atanh(r) over
  resamples of the direction seeds within each model (models held fixed), so the seed spread
  widens the interval without moving its centre.
- Means over seeds and slopes (:func:`saddles.runs.relate.bootstrap_ci`,
  :func:`saddles.runs.relate.trend`'s slope, power-law parameters): percentile bootstrap, as
  before; they are unbounded statistics.

A permutation test of n pairs cannot give a p-value below the share of orderings that reach
the largest |r| (:func:`largest_abs`): 2 / n! for distinct values (1/3 with 3 runs), more
with ties (2 / 70 for a 0/1 quantity over 4 + 4 models). :func:`smallest_p` computes it from
the same null distribution the p-value is taken from;
where it is above the level, the relation is **untestable** with these runs, and the tables
and reports say so instead of reporting "no detectable change".

Plain numpy; never imports torch.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

#: Standard-error formulas of the Fisher-z interval, by correlation.
SE_FORMULA = {
    "pearson": "Fisher-z, se = 1/sqrt(n-3) (Fisher 1921)",
    "spearman": "Fisher-z, se = sqrt((1 + rho^2/2)/(n-3)) (Bonett & Wright 2000)",
}


def boundary_cap(n: int) -> float:
    """Largest |r| the interval transforms: the largest value below 1 that a Spearman
    coefficient of ``n`` distinct ranks can take (see the module docstring)."""
    return 1.0 - 12.0 / (n * (n * n - 1))


def fisher_se(r: float, n: int, method: str) -> float:
    """Standard error of atanh(r) over ``n`` pairs: Fisher's 1/sqrt(n - 3) for Pearson,
    Bonett & Wright's sqrt((1 + r^2/2)/(n - 3)) for Spearman; NaN below 4 pairs."""
    if method not in SE_FORMULA:
        raise ValueError(f"method must be 'spearman' or 'pearson', not {method!r}")
    if n < 4 or not math.isfinite(r):
        return math.nan
    return math.sqrt((1 + r * r / 2) / (n - 3)) if method == "spearman" else 1 / math.sqrt(n - 3)


def fisher_z_interval(
    r: float, n: int, method: str, level: float = 0.95, extra_var: float = 0.0
) -> tuple[float, float]:
    """The ``level`` interval of a correlation ``r`` over ``n`` pairs on Fisher's z scale
    (see the module docstring), its z variance increased by ``extra_var``; (NaN, NaN) below 4
    pairs or for a NaN ``r``. Always holds ``r``; an end at a bound is the bound itself."""
    se = fisher_se(r, n, method)
    if not math.isfinite(se):
        return (math.nan, math.nan)
    se = math.sqrt(se * se + max(float(extra_var), 0.0))
    cap = boundary_cap(n)
    z = math.atanh(max(-cap, min(cap, r)))
    half = float(stats.norm.ppf(0.5 + level / 2)) * se
    lo, hi = math.tanh(z - half), math.tanh(z + half)
    if r >= cap:
        hi = 1.0
    if r <= -cap:
        lo = -1.0
    return (min(lo, r), max(hi, r))


def z_variance(boot: np.ndarray, n: int) -> float:
    """Variance of atanh of bootstrap correlations (capped as the interval caps them; NaN
    resamples left out); 0 when fewer than two are finite."""
    b = np.asarray(boot, dtype=float)
    b = b[np.isfinite(b)]
    if len(b) < 2:
        return 0.0
    cap = boundary_cap(n)
    return float(np.var(np.arctanh(np.clip(b, -cap, cap)), ddof=1))


def smallest_p(null: np.ndarray, exact: bool, n_perm: int, largest: float | None = None) -> float:
    """The smallest p-value a permutation test with this null distribution can return: the
    p of the most extreme pairing, whose |r| is ``largest`` (default: the largest in
    ``null``). Exact enumeration (``null`` holds every ordering): the share of orderings that
    reach it, 2/n! for distinct values and more with ties. Monte Carlo over ``n_perm`` draws:
    (draws that reach it + 1) / (n_perm + 1), as the test computes its p."""
    a = np.abs(np.asarray(null, dtype=float))
    a = a[np.isfinite(a)]
    if len(a) == 0:
        return math.nan
    top = a.max() if largest is None else float(largest)
    hits = int(np.sum(a >= top - 1e-12))
    return hits / len(a) if exact else (hits + 1) / (n_perm + 1)


def largest_abs(fn, x: np.ndarray, y: np.ndarray) -> float:
    """The largest |r| any pairing of ``x`` with ``y`` reaches: r is affine in sum x_i y_pi(i)
    for Pearson (of values or ranks), so the extremes are the co-sorted and the counter-sorted
    pairings (the rearrangement inequality)."""
    xs, ys = np.sort(x), np.sort(y)
    return float(np.nanmax(np.abs(fn(np.stack([xs, xs]), np.stack([ys, ys[::-1]])))))
