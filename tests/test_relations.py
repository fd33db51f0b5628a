"""saddles.relations: correlations with CIs and p-values, and power-law fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from saddles.relations import correlate, fit_power_law, relations_table


def test_perfectly_monotone_pair():
    x = np.arange(1, 11, dtype=float)
    c = correlate(x, np.exp(x), "beta", "error")
    assert c.spearman == pytest.approx(1.0)
    assert 0.9 <= c.spearman_ci[0] <= c.spearman_ci[1] <= 1.0
    assert c.pearson < 1.0  # exp is monotone but not linear
    assert c.spearman_p < 0.01
    neg = correlate(x, -(x**3))
    assert neg.spearman == pytest.approx(-1.0) and neg.spearman_ci[1] <= -0.9


def test_matches_scipy_and_independent_noise_is_not_significant():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.normal(size=40)
    c = correlate(x, y)
    assert c.spearman == pytest.approx(stats.spearmanr(x, y).statistic)
    assert c.pearson == pytest.approx(stats.pearsonr(x, y).statistic)
    assert c.pearson_p == pytest.approx(stats.pearsonr(x, y).pvalue, abs=0.05)
    assert c.spearman_ci[0] < 0 < c.spearman_ci[1]


def test_exact_permutation_p_for_few_models():
    # n = 5, perfectly monotone: only 2 of 120 orderings reach |rho| = 1.
    c = correlate([1, 2, 3, 4, 5], [2, 4, 5, 9, 10])
    assert c.spearman_p == pytest.approx(2 / 120)


def test_undefined_cases_are_nan_not_zero():
    c = correlate([1, 2, 3, 4], [5, 5, 5, 5])
    assert math.isnan(c.spearman) and math.isnan(c.pearson_p)
    c = correlate([1, 2, np.nan, 4], [1, 2, 3, np.nan])
    assert c.n == 2 and math.isnan(c.spearman)
    with pytest.raises(ValueError, match="equal length"):
        correlate([1, 2, 3], [1, 2])


def test_relations_table_rows():
    rows = [{"beta": b, "saddles": 2 * b + 1, "error": b**2, "name": "m"} for b in range(1, 7)]
    table = relations_table(rows, ["saddles"], ["beta", "error", "name"])
    assert [(c.x, c.y) for c in table] == [("saddles", "beta"), ("saddles", "error"),
                                           ("saddles", "name")]  # fmt: skip
    assert table[0].spearman == pytest.approx(1) and table[1].spearman == pytest.approx(1)
    assert math.isnan(table[2].spearman)  # non-numeric column
    row = table[0].as_row()
    assert {"spearman_ci_low", "pearson_ci_high", "n"} <= set(row)


def test_power_law_recovers_a_known_exponent():
    rng = np.random.default_rng(0)
    n = np.logspace(4, 7, 12)
    truth = dict(a=40.0, alpha=0.3, c=1.7)
    loss = truth["a"] * n ** (-truth["alpha"]) + truth["c"]
    loss = loss * (1 + 0.005 * rng.normal(size=n.shape))
    fit = fit_power_law(n, loss, n_boot=300)
    assert fit.alpha_ci[0] <= truth["alpha"] <= fit.alpha_ci[1]
    assert fit.c_ci[0] <= truth["c"] <= fit.c_ci[1]
    assert fit.alpha == pytest.approx(truth["alpha"], rel=0.2)
    assert np.abs(fit.residuals).max() < 0.05
    assert fit.predict([1e5])[0] == pytest.approx(40 * 1e5**-0.3 + 1.7, rel=0.02)


def test_power_law_without_offset_and_bad_input():
    n = np.array([1e3, 1e4, 1e5, 1e6])
    fit = fit_power_law(n, 5 * n**-0.5, offset=False, n_boot=50)
    assert fit.alpha == pytest.approx(0.5, rel=1e-6) and fit.c == 0.0
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([0, 1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law([1, 2], [1, 2])


def test_trend_detects_a_fall_over_log_steps():
    from saddles.relations import trend

    steps = np.array([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
    rng = np.random.default_rng(0)
    t = trend(steps, 40 - 3 * np.log(steps) + 0.3 * rng.normal(size=10))
    assert t.spearman < -0.9 and t.slope_ci[0] <= -3 <= t.slope_ci[1]
    flat = trend(steps, rng.normal(size=10))
    assert flat.slope_ci[0] < 0 < flat.slope_ci[1]


def test_change_points_find_a_planted_turn():
    from saddles.relations import change_points

    x = np.arange(30, dtype=float)
    y = np.where(x < 12, 2.0 * x, 24.0 - 1.5 * (x - 12))
    y = y + 0.2 * np.random.default_rng(1).normal(size=30)
    cp = change_points(x, y)
    assert len(cp.breaks) == 1 and abs(cp.breaks[0] - 12) <= 1
    assert not cp.monotone and cp.slopes[0] > 0 > cp.slopes[1]
    line = change_points(x, 3 * x + 0.2 * np.random.default_rng(2).normal(size=30))
    assert line.breaks == [] and line.monotone


def test_loo_errors_prefer_the_predictive_feature():
    from saddles.relations import loo_errors

    rng = np.random.default_rng(0)
    good = rng.normal(size=12)
    noise = rng.normal(size=12)
    target = 2 * good + 0.05 * rng.normal(size=12)
    assert loo_errors(good, target).mean() < 0.2 * loo_errors(noise, target).mean()
    # Exact on a noiseless line.
    np.testing.assert_allclose(loo_errors(good, 3 * good + 1), 0, atol=1e-10)
    with pytest.raises(ValueError, match="at least"):
        loo_errors([1.0, 2.0], [1.0, 2.0])
