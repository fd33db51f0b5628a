"""Stage 6: relations between metrics across models, reported as numbers with uncertainty.

- :func:`correlate`: Spearman's rho and Pearson's r of two metrics over models, each with a
  Fisher-z 95% interval (Fisher 1921; Bonett & Wright 2000's standard error for Spearman;
  capped at the boundary so it always holds its estimate: :mod:`~saddles.runs.relate.intervals`
  says which interval is used where) and a two-sided permutation p-value (exact over all
  permutations when there are few models, Monte Carlo otherwise) with the smallest p the
  test can give (``p_min``: 2/n! for n distinct values, 1/3 with 3 runs).
- :func:`relations_table`: every metric of one group against every metric of another.
- :func:`relations_from_rows`: the relations table of rows (one per model x direction seed x
  direction kind x representation): every metric against every model-level quantity, over
  seed ensembles or single planes, Holm-adjusted within its family (the experiment's
  pre-stated primary relations, :class:`Claim`, or the exploratory rest) and worded by
  :func:`verdict` (:func:`mark_significant`); :func:`undefined_summary` says in one line why
  relations are NaN. The summary of an experiment and the comparison of finished runs both
  build their tables with it; :func:`claim_verdict` gives a claim one word.
- :func:`correlate_ensemble`: the same for a metric measured on several direction seeds
  per model; the seed spread (seeds resampled within each model) widens the Fisher-z
  interval. :func:`bootstrap_ci`: a per-model summary over its seeds (percentile bootstrap).
- :func:`hierarchical_bootstrap`: the grand mean of a metric measured on several training runs
  and several direction seeds within each, with a two-stage bootstrap interval (runs, then
  seeds within runs) and each level's share of the variance (random-effects ANOVA).
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

Small-n rule for intervals. A correlation's interval is NaN below :data:`MIN_CI_POINTS` pairs
(Fisher's z needs n > 3). A bootstrap interval is reported as (NaN, NaN), with ``note``
saying why, when (a) there are fewer than :data:`MIN_CI_POINTS` models (points), (b) the
statistic is undefined (e.g. a constant resample) on more than half of the resamples, or (c)
the interval has zero width, e.g. [1, 1] for a perfectly monotone pair: a percentile interval
at the bound of a bounded statistic, or from a handful of distinct resamples, expresses no
uncertainty even though there is some.

The package's modules: :mod:`~saddles.runs.relate.correlation` (correlations, ensembles,
adjusted p-values), :mod:`~saddles.runs.relate.intervals` (Fisher-z intervals, the smallest
permutation p), :mod:`~saddles.runs.relate.verdicts` (claims and verdicts),
:mod:`~saddles.runs.relate.table` (the relations table of rows),
:mod:`~saddles.runs.relate.power_law` (power laws, leave-one-out errors),
:mod:`~saddles.runs.relate.trends` (trends and change points), and the checks they share.
Plain numpy/scipy; never imports torch.
"""

from saddles.runs.relate._common import ALPHA, MIN_CI_POINTS, SERIES
from saddles.runs.relate.correlation import (
    BootstrapCI,
    Correlation,
    EnsembleCorrelation,
    adjust_pvalues,
    bootstrap_ci,
    correlate,
    correlate_ensemble,
)
from saddles.runs.relate.hierarchical import (
    HierarchicalSummary,
    hierarchical_bootstrap,
    variance_components,
)
from saddles.runs.relate.intervals import fisher_z_interval, smallest_p
from saddles.runs.relate.power_law import PowerLawFit, fit_power_law, loo_errors, power_laws
from saddles.runs.relate.table import (
    mark_significant,
    relations_from_rows,
    relations_table,
    undefined_summary,
)
from saddles.runs.relate.trends import ChangePoints, Trend, change_points, trend
from saddles.runs.relate.verdicts import Claim, claim_verdict, claims_table, verdict

__all__ = [
    "ALPHA",
    "MIN_CI_POINTS",
    "SERIES",
    "BootstrapCI",
    "ChangePoints",
    "Claim",
    "Correlation",
    "EnsembleCorrelation",
    "HierarchicalSummary",
    "PowerLawFit",
    "Trend",
    "adjust_pvalues",
    "bootstrap_ci",
    "change_points",
    "claim_verdict",
    "claims_table",
    "correlate",
    "correlate_ensemble",
    "fisher_z_interval",
    "fit_power_law",
    "hierarchical_bootstrap",
    "loo_errors",
    "mark_significant",
    "power_laws",
    "relations_from_rows",
    "relations_table",
    "smallest_p",
    "trend",
    "undefined_summary",
    "variance_components",
    "verdict",
]
