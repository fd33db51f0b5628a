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
