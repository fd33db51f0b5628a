"""saddles.runs.relate: correlations with CIs and p-values, and power-law fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from saddles.runs.relate import (
    adjust_pvalues,
    correlate,
    fit_power_law,
    power_laws,
    relations_from_rows,
    relations_table,
    trend,
)


def test_perfectly_monotone_pair():
    x = np.arange(1, 11, dtype=float)
    c = correlate(x, np.exp(x), "beta", "error")
    assert c.spearman == pytest.approx(1.0)
    # Every resample of a monotone pair is monotone: a percentile interval would be [1, 1].
    # The Fisher-z interval at the bound is one-sided: [lower, 1], holding the estimate.
    lo, hi = c.spearman_ci
    assert 0.5 < lo < 0.99 and hi == 1.0 and c.note == ""
    assert c.pearson < 1.0  # exp is monotone but not linear
    assert c.pearson_ci[0] < c.pearson < c.pearson_ci[1] <= 1.0
    assert c.spearman_p < 0.01 and c.p_min == 1 / 5001  # Monte Carlo: 1 / (n_perm + 1)
    neg = correlate(x, -(x**3))
    assert neg.spearman == pytest.approx(-1.0) and neg.spearman_ci == (-1.0, -lo)
    near = correlate(x, np.r_[1:9, 10, 9])  # one swapped pair
    assert near.spearman < 1 and 0.5 < near.spearman_ci[0] < near.spearman_ci[1] <= 1.0


def test_small_n_intervals_are_nan_with_a_reason():
    c = correlate([1, 2, 3], [1, 3, 2])
    assert c.n == 3 and c.spearman == pytest.approx(0.5) and c.spearman_p == pytest.approx(1.0)
    assert math.isnan(c.spearman_ci[0]) and math.isnan(c.pearson_ci[1])
    assert "fewer than 4" in c.note
    four = correlate([1, 2, 3, 4], [1, 3, 2, 4])
    assert np.isfinite(four.spearman_ci).all() and four.note == ""
    assert "note" in four.as_row()


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
    assert "constant" in c.note
    c = correlate([1, 2, np.nan, 4], [1, 2, 3, np.nan])
    assert c.n == 2 and math.isnan(c.spearman)
    assert "2 of 4 pairs dropped" in c.note and "2 usable pairs" in c.note
    with pytest.raises(ValueError, match=r"equal length.*\(3,\) and \(2,\)"):
        correlate([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="n_boot must be an integer >= 0"):
        correlate([1, 2, 3], [1, 2, 3], n_boot=-1)


def test_relations_table_rows():
    rows = [{"beta": b, "saddles": 2 * b + 1, "error": b**2, "name": "m"} for b in range(1, 7)]
    table = relations_table(rows, ["saddles"], ["beta", "error", "name"])
    assert [(c.x, c.y) for c in table] == [("saddles", "beta"), ("saddles", "error"),
                                           ("saddles", "name")]  # fmt: skip
    assert table[0].spearman == pytest.approx(1) and table[1].spearman == pytest.approx(1)
    assert math.isnan(table[2].spearman)  # non-numeric column
    row = table[0].as_row()
    assert {"spearman_ci_low", "pearson_ci_high", "n"} <= set(row)
    with pytest.raises(ValueError, match="x_keys must be a list of column names"):
        relations_table(rows, "saddles", ["beta"])


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
    with pytest.raises(ValueError, match=r"positive sizes N; n\[0\] = 0"):
        fit_power_law([0, 1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 3 distinct sizes N, got 2"):
        fit_power_law([1, 2], [1, 2])


def test_power_law_counts_distinct_sizes_and_refuses_non_finite_input():
    # Two seeds at each of two sizes: 4 points but only 2 sizes for 3 parameters.
    with pytest.raises(ValueError, match=r"3 distinct sizes N, got 2 \(50, 500\) in 4 points"):
        fit_power_law([50, 50, 500, 500], [2, 2.1, 1, 1.1])
    with pytest.raises(ValueError, match="n must be finite: NaN at index 1"):
        fit_power_law([50, np.nan, 500, 5000], [2, 2.1, 1, 1.1])
    with pytest.raises(ValueError, match="n must be finite: inf at index 2"):
        fit_power_law([50, 100, np.inf, 5000], [2, 2.1, 1, 1.1])
    with pytest.raises(ValueError, match="loss must be finite: NaN at index 3"):
        fit_power_law([50, 100, 500, 5000], [2, 2.1, 1, np.nan])
    with pytest.raises(ValueError, match=r"equal length, not shapes \(3,\) and \(4,\)"):
        fit_power_law([10, 100, 500], [2, 2.1, 1, 1.1])
    # Repeated sizes are fine once there are enough distinct ones.
    n = np.repeat([1e3, 1e4, 1e5, 1e6], 2)
    fit = fit_power_law(n, 5 * n**-0.5 + 1 + np.tile([0, 1e-4], 4), n_boot=100)
    assert fit.alpha == pytest.approx(0.5, rel=0.05) and fit.n == 8


def test_power_law_exact_fit_has_no_interval():
    fit = fit_power_law([10, 100, 1000], [3, 2, 1.5], n_boot=50)
    assert np.allclose(fit.residuals, 0, atol=1e-9)
    assert all(math.isnan(v) for v in (*fit.alpha_ci, *fit.a_ci, *fit.c_ci))
    assert "exact" in fit.note
    no_c = fit_power_law([10, 100, 1000], [3, 2, 1.5], offset=False, n_boot=50)
    assert math.isnan(no_c.alpha_ci[0]) and no_c.c_ci == (0.0, 0.0)
    assert "3 distinct sizes: no interval (fewer than 4)" in no_c.note


def test_trend_detects_a_fall_over_log_steps():
    from saddles.runs.relate import trend

    steps = np.array([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
    rng = np.random.default_rng(0)
    t = trend(steps, 40 - 3 * np.log(steps) + 0.3 * rng.normal(size=10))
    assert t.spearman < -0.9 and t.slope_ci[0] <= -3 <= t.slope_ci[1]
    flat = trend(steps, rng.normal(size=10))
    assert flat.slope_ci[0] < 0 < flat.slope_ci[1]


def test_trend_input_checks_and_dropped_points():
    from saddles.runs.relate import trend

    with pytest.raises(ValueError, match=r"steps and values .* \(3,\) and \(2,\)"):
        trend([1, 2, 3], [1.0, 2.0])
    t = trend([0, 1, 2, 5, 10, 20], [9, 8, np.nan, 6, 5, 4])
    assert t.n == 4 and t.spearman == pytest.approx(-1)
    assert "NaN or inf: 1" in t.note and "step <= 0: 1" in t.note
    short = trend([1, 2, 3, 4], [1, np.nan, 2, np.inf])
    assert short.n == 2 and math.isnan(short.slope_per_log_step) and "no trend" in short.note


def test_change_points_find_a_planted_turn():
    from saddles.runs.relate import change_points

    x = np.arange(30, dtype=float)
    y = np.where(x < 12, 2.0 * x, 24.0 - 1.5 * (x - 12))
    y = y + 0.2 * np.random.default_rng(1).normal(size=30)
    cp = change_points(x, y)
    assert len(cp.breaks) == 1 and abs(cp.breaks[0] - 12) <= 1
    assert not cp.monotone and cp.slopes[0] > 0 > cp.slopes[1]
    line = change_points(x, 3 * x + 0.2 * np.random.default_rng(2).normal(size=30))
    assert line.breaks == [] and line.monotone


def test_loo_errors_prefer_the_predictive_feature():
    from saddles.runs.relate import loo_errors

    rng = np.random.default_rng(0)
    good = rng.normal(size=12)
    noise = rng.normal(size=12)
    target = 2 * good + 0.05 * rng.normal(size=12)
    assert loo_errors(good, target).mean() < 0.2 * loo_errors(noise, target).mean()
    # Exact on a noiseless line.
    np.testing.assert_allclose(loo_errors(good, 3 * good + 1), 0, atol=1e-10)
    with pytest.raises(ValueError, match="at least"):
        loo_errors([1.0, 2.0], [1.0, 2.0])


def _kinked(at: float, seed: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Samples at 0..12 of a tent peaking at ``at`` (slopes +1, -1) plus seeded noise."""
    x = np.arange(13, dtype=float)
    y = np.where(x < at, x - at, at - x) + noise * np.random.default_rng(seed).normal(size=13)
    return x, y


def test_change_points_find_a_kink_between_samples():
    from saddles.runs.relate import change_points

    x, y = _kinked(6.2, seed=0, noise=0.0)
    exact = change_points(x, y)
    assert len(exact.breaks) == 1 and exact.breaks[0] == pytest.approx(6.2, abs=1e-4)
    assert exact.slopes == pytest.approx([1, -1], abs=1e-6) and not exact.monotone
    for at, n_series, need in ((6.2, 40, 0.9), (4.7, 20, 0.85), (8.5, 20, 0.85)):
        found = 0
        for seed in range(n_series):
            cp = change_points(*_kinked(at, seed))
            found += len(cp.breaks) == 1 and abs(cp.breaks[0] - at) < 0.3
        assert found / n_series >= need, (at, found)


def test_change_points_straight_lines_have_no_breaks():
    from saddles.runs.relate import change_points

    x = np.arange(13, dtype=float)
    assert change_points(x, 2 * x - 1).breaks == []
    assert change_points(x, np.full(13, 4.0)).breaks == []  # constant: one flat segment
    none = sum(
        change_points(x, 0.5 * x + 0.2 * np.random.default_rng(seed).normal(size=13)).breaks == []
        for seed in range(20)
    )
    assert none >= 18


def test_change_points_refuse_bad_input():
    from saddles.runs.relate import change_points

    x = np.arange(13, dtype=float)
    with pytest.raises(ValueError, match="y must be finite: NaN at index 4"):
        change_points(x, np.where(x == 4, np.nan, x))
    with pytest.raises(ValueError, match="x must be finite: NaN at index 0"):
        change_points(np.r_[np.nan, x[1:]], x)
    with pytest.raises(ValueError, match=r"equal length, not shapes \(13,\) and \(14,\)"):
        change_points(x, np.arange(14.0))
    with pytest.raises(ValueError, match=r"equal length, not shapes \(14,\) and \(13,\)"):
        change_points(np.arange(14.0), x)
    with pytest.raises(ValueError, match="two distinct x values, got 1"):
        change_points(np.ones(5), x[:5])
    with pytest.raises(ValueError, match="max_changes must be an integer >= 0"):
        change_points(x, x, max_changes=-1)
    short = change_points(x[:5], x[:5] ** 2)  # too short for a break with min_size 3
    assert short.breaks == [] and "at most 0 break(s)" in short.note


def test_loo_errors_leave_a_whole_group_out_as_a_plain_loop_does():
    """Oracle: numpy.polyfit on the rows of the other groups, one group at a time."""
    from saddles.runs.relate import loo_errors

    rng = np.random.default_rng(1)
    x = rng.normal(size=8)
    y = 2 * x + rng.normal(size=8)
    groups = ["a", "a", "b", "b", "c", "c", "d", "d"]
    expected = np.empty(8)
    for g in set(groups):
        out = np.array([h == g for h in groups])
        slope, intercept = np.polyfit(x[~out], y[~out], 1)
        expected[out] = np.abs(slope * x[out] + intercept - y[out])
    np.testing.assert_allclose(loo_errors(x, y, groups=groups), expected, rtol=1e-10)
    assert not np.allclose(loo_errors(x, y), expected)  # one row at a time differs
    with pytest.raises(ValueError, match="at least 3 groups"):
        loo_errors(x, y, groups=["a"] * 4 + ["b"] * 4)
    with pytest.raises(ValueError, match="one label per row"):
        loo_errors(x, y, groups=["a", "b"])


def test_loo_errors_refuse_bad_input():
    from saddles.runs.relate import loo_errors

    with pytest.raises(ValueError, match="features has 5 rows but target has 4 values"):
        loo_errors([1.0, 2, 3, 4, 5], [1.0, 2, 3, 4])
    with pytest.raises(ValueError, match="features must be finite: NaN at index 2"):
        loo_errors([1.0, 2, np.nan, 4, 5], [1.0, 2, 3, 4, 5])
    with pytest.raises(ValueError, match=r"features must be finite: inf at index \(1, 1\)"):
        loo_errors([[1.0, 2], [2, np.inf], [3, 1], [4, 0], [5, 2]], [1.0, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="target must be finite: NaN at index 0"):
        loo_errors([1.0, 2, 3, 4, 5], [np.nan, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="features must be 1-D or 2-D"):
        loo_errors(np.ones((2, 2, 2)), [1.0, 2])
    # A constant feature carries nothing: the intercept-only prediction, no error.
    y = np.array([1.0, 2, 4, 8, 16])
    expected = [abs(np.delete(y, i).mean() - y[i]) for i in range(5)]
    np.testing.assert_allclose(loo_errors(np.ones(5), y), expected)


def _holm_step_down(p: np.ndarray, alpha: float) -> np.ndarray:
    """Which hypotheses Holm's procedure rejects at level alpha (brute force, no adjusting):
    walk the p-values in ascending order, rejecting while p_(i) <= alpha / (m - i + 1)."""
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(sorted(range(m), key=lambda j: p[j])):
        if p[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject


def _bh_step_up(p: np.ndarray, q: float) -> np.ndarray:
    """Which hypotheses Benjamini-Hochberg rejects at FDR level q: the k smallest, for the
    largest k with p_(k) <= k q / m."""
    m = len(p)
    s = np.sort(p)
    passing = [k for k in range(1, m + 1) if s[k - 1] <= k * q / m]
    return p <= s[max(passing) - 1] if passing else np.zeros(m, dtype=bool)


def _holm_statsmodels(p: np.ndarray) -> np.ndarray:
    """statsmodels' ``multipletests(method="holm")`` written out: cumulative max of
    (m - i) p_(i) (0-based i), clipped at 1, put back in input order."""
    order = np.argsort(p)
    m = len(p)
    adj = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def test_adjust_pvalues_matches_the_procedures():
    from saddles.runs.relate import adjust_pvalues

    rng = np.random.default_rng(3)
    for trial in range(30):
        m = int(rng.integers(1, 25))
        p = rng.uniform(size=m) ** 3  # many small ones
        if trial % 3 == 0:
            p[: m // 2] = p[0]  # ties
        holm, bh = adjust_pvalues(p, "holm"), adjust_pvalues(p, "bh")
        np.testing.assert_allclose(bh, stats.false_discovery_control(p, method="bh"))
        np.testing.assert_allclose(holm, _holm_statsmodels(p))
        for alpha in (0.001, 0.01, 0.05, 0.1, 0.2, 0.5):
            np.testing.assert_array_equal(holm <= alpha, _holm_step_down(p, alpha))
            np.testing.assert_array_equal(bh <= alpha, _bh_step_up(p, alpha))
        order = np.argsort(p, kind="stable")
        for adj in (holm, bh):
            assert (adj >= p - 1e-15).all() and (adj <= 1).all()
            assert (np.diff(adj[order]) >= -1e-15).all()  # monotone in p
        assert (bh <= holm + 1e-15).all()  # FDR control is never stricter than FWER


def test_adjust_pvalues_nan_shape_and_bad_input():
    from saddles.runs.relate import adjust_pvalues

    p = np.array([[0.01, np.nan], [0.04, 0.03]])
    holm = adjust_pvalues(p, "holm")
    assert holm.shape == (2, 2) and math.isnan(holm[0, 1])
    # m = 3, not 4: the NaN is no test.
    np.testing.assert_allclose(holm[[0, 1, 1], [0, 0, 1]], [0.03, 0.06, 0.06])
    np.testing.assert_allclose(adjust_pvalues(p, "bh")[[0, 1, 1], [0, 0, 1]], [0.03, 0.04, 0.04])
    assert adjust_pvalues([], "bh").shape == (0,)
    assert np.isnan(adjust_pvalues([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match="method must be 'holm' or 'bh', not 'bonferroni'"):
        adjust_pvalues([0.1], "bonferroni")
    with pytest.raises(ValueError, match=r"in \[0, 1\] \(or be NaN\): p\[1\] = 1.5"):
        adjust_pvalues([0.1, 1.5])
    with pytest.raises(ValueError, match=r"p\[0\] = inf"):
        adjust_pvalues([np.inf, 0.2])


def test_bootstrap_ci_matches_scipy_and_refuses_nothing_quietly():
    from saddles.runs.relate import bootstrap_ci

    v = np.random.default_rng(5).normal(2.0, 1.0, size=40)
    for stat in (np.mean, np.median):
        b = bootstrap_ci(v, stat, n_boot=4000, seed=1)
        ref = stats.bootstrap((v,), stat, method="percentile", n_resamples=4000, rng=2)
        assert b.estimate == pytest.approx(stat(v)) and b.n == 40 and b.note == ""
        assert b.ci == pytest.approx(tuple(ref.confidence_interval), abs=0.08)
    # A statistic without an axis argument is applied per resample.
    spread = bootstrap_ci(v, lambda a: float(np.ptp(a)), n_boot=200)
    assert spread.ci[0] < spread.estimate == pytest.approx(np.ptp(v)) and spread.ci[1] <= np.ptp(v)
    assert bootstrap_ci(v, n_boot=300, seed=4) == bootstrap_ci(v, n_boot=300, seed=4)
    one = bootstrap_ci([3.0, np.nan])
    assert one.estimate == 3.0 and math.isnan(one.ci[0])
    assert "1 of 2 values dropped" in one.note and "1 value: no interval" in one.note
    same = bootstrap_ci([0.5, 0.5, 0.5])
    assert same.estimate == 0.5 and math.isnan(same.ci[1]) and "all 3 values equal" in same.note
    assert math.isnan(bootstrap_ci([np.nan]).estimate)
    with pytest.raises(ValueError, match=r"values must be 1-D, not shape \(2, 2\)"):
        bootstrap_ci(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"ci must be a confidence level in \(0, 1\), not 95"):
        bootstrap_ci(v, ci=95)


def test_correlate_ensemble_estimate_and_p_are_those_of_the_per_model_means():
    from saddles.runs.relate import correlate_ensemble

    rng = np.random.default_rng(7)
    x = np.array([0.1, 0.4, 0.5, 0.9, 1.3, 2.0])
    ys = [b + 0.3 * rng.normal(size=k) for b, k in zip(x, [3, 4, 2, 5, 3, 3], strict=True)]
    means = np.array([g.mean() for g in ys])
    plain = correlate(x, means)  # 6 models: exact permutation p, independent of the rng
    for method in ("spearman", "pearson"):
        e = correlate_ensemble(x, ys, method=method, n_boot=500)
        assert e.estimate == pytest.approx(getattr(plain, method))
        assert e.p == pytest.approx(getattr(plain, f"{method}_p"))
        assert e.n_models == 6 and (e.n_seeds_min, e.n_seeds_max) == (2, 5)
        assert e.ci[0] < e.estimate <= e.ci[1] and e.note == ""
    med = correlate_ensemble(x, ys, summary="median", n_boot=200)
    assert med.estimate == pytest.approx(stats.spearmanr(x, [np.median(g) for g in ys])[0])
    assert {"ci_low", "ci_high", "n_seeds_max", "note"} <= set(med.as_row())
    assert correlate_ensemble(x, ys, n_boot=300) == correlate_ensemble(x, ys, n_boot=300)


def test_correlate_ensemble_carries_seed_spread_into_the_interval():
    from saddles.runs.relate import correlate_ensemble

    x = np.arange(8.0)
    spread = [[v - 3, v, v + 3] for v in x]  # per-model means exactly x
    collapsed = [[v, v, v] for v in x]
    wide = correlate_ensemble(x, spread, n_boot=1000)
    flat = correlate_ensemble(x, collapsed, n_boot=1000)
    # Both estimates sit at the bound; both intervals hold it; the seed spread widens one.
    assert wide.estimate == flat.estimate == pytest.approx(1.0)
    assert wide.ci[1] == flat.ci[1] == 1.0 and wide.ci[0] < flat.ci[0] - 0.02
    assert flat.ci == correlate(x, x).spearman_ci  # no seed spread: the plain interval
    single = correlate_ensemble(x, [[v + 0.1 * (-1) ** i] for i, v in enumerate(x)])
    assert "one seed per model" in single.note


def test_correlate_ensemble_small_n_and_bad_input():
    from saddles.runs.relate import correlate_ensemble

    three = correlate_ensemble([1, 2, 3], [[1, 2], [2, 3], [4, 4]])
    assert three.estimate == pytest.approx(1) and math.isnan(three.ci[0])
    assert "3 models: no interval (fewer than 4)" in three.note
    const = correlate_ensemble([1, 2, 3, 4], [[1, 3], [2], [2, 2], [0, 4]])
    assert math.isnan(const.estimate) and "per-model mean is constant" in const.note
    dropped = correlate_ensemble(
        [1, 2, np.nan, 4, 5], [[1, np.nan], [2, 3], [3], [np.nan], [5, 6]], n_boot=200
    )
    assert dropped.n_models == 3 and dropped.n_seeds_min == 1
    assert "2 seed values dropped" in dropped.note and "2 of 5 models dropped" in dropped.note
    with pytest.raises(ValueError, match="x has 3 models but y_per_model has 2"):
        correlate_ensemble([1, 2, 3], [[1], [2]])
    with pytest.raises(ValueError, match=r"y_per_model\[0\] must be a 1-D .* not a scalar"):
        correlate_ensemble([1, 2, 3], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"y_per_model\[1\] .* not shape \(2, 2\)"):
        correlate_ensemble([1, 2], [[1.0], [[1, 2], [3, 4]]])
    with pytest.raises(ValueError, match="method must be 'spearman' or 'pearson', not 'kendall'"):
        correlate_ensemble([1, 2, 3], [[1], [2], [3]], method="kendall")
    with pytest.raises(ValueError, match="summary must be 'mean' or 'median', not 'max'"):
        correlate_ensemble([1, 2, 3], [[1], [2], [3]], summary="max")
    with pytest.raises(ValueError, match=r"ci must be a confidence level in \(0, 1\)"):
        correlate_ensemble([1, 2, 3], [[1], [2], [3]], ci=1.0)


def test_power_laws_of_rows_are_fit_power_law_of_the_per_run_means():
    rng = np.random.default_rng(3)
    sizes = [100, 400, 1600, 6400, 25600]
    rows = []
    for run, n in enumerate(sizes):
        for _seed in range(3):  # three planes per run: the fit sees their mean
            for kind in ("random", "hessian"):
                loss = 5 * n**-0.4 + 0.2 + 0.01 * rng.standard_normal()
                rows.append({"run": f"r{run}", "n_params": n, "subspace": "2d",
                             "direction": kind, "representation": "knn", "loss": loss,
                             "flag": True})  # fmt: skip
    fits = {}
    laws = power_laws(rows, ["loss", "flag"], n_boot=50, seed=7, fits=fits)
    assert [(r["direction"], r["metric"]) for r in laws] == [("random", "loss"),
                                                             ("hessian", "loss")]  # fmt: skip
    for law in laws:
        own = [r for r in rows if r["direction"] == law["direction"]]
        y = [np.mean([r["loss"] for r in own if r["run"] == f"r{i}"]) for i in range(5)]
        direct = fit_power_law(np.array(sizes, dtype=float), np.array(y), n_boot=50, seed=7)
        assert law["alpha"] == direct.alpha and law["c"] == direct.c
        assert law["alpha_ci_low"] == direct.alpha_ci[0] and law["sizes"] == str(sizes)
        assert fits[("2d", law["direction"], "knn", "loss")].a == direct.a
    # One series over all rows; fewer than four sizes fix c; one size cannot be fitted.
    (three,) = power_laws([r for r in rows if r["n_params"] <= 1600], ["loss"], by=(),
                          n_boot=0)  # fmt: skip
    assert three["c"] == 0 and "c fixed at 0" in three["note"] and "direction" not in three
    (one,) = power_laws([r for r in rows if r["n_params"] == 100], ["loss"], by=())
    assert math.isnan(one["alpha"]) and "distinct" in one["note"]


def test_relations_from_rows_single_planes_are_correlate_and_holm_adjusted():
    rng = np.random.default_rng(0)
    beta = np.arange(8, dtype=float)
    rows = [{"model": f"m{i}", "direction": "random", "representation": "knn", "beta": b,
             "rises": b + 2 * rng.standard_normal(), "noise": rng.standard_normal(),
             "name": "text"} for i, b in enumerate(beta)]  # fmt: skip
    table = relations_from_rows(rows, ["rises", "noise", "name", "beta"], ["beta"], n_boot=300,
                                n_perm=500, seed=2)  # fmt: skip
    assert [r["x"] for r in table] == ["rises", "noise", "name"]  # beta against itself: skipped
    direct = correlate([r["rises"] for r in rows], beta, "rises", "beta", n_boot=300, n_perm=500,
                       seed=2)  # fmt: skip
    first = table[0]
    assert first["spearman"] == direct.spearman and first["pearson_p"] == direct.pearson_p
    assert math.isfinite(direct.spearman_ci[0])
    assert first["spearman_ci_low"] == direct.spearman_ci[0]
    assert first["interval"] == "models" and first["n_seeds"] == 1
    assert math.isnan(table[2]["spearman"])  # text is not a number
    holm = adjust_pvalues([r["spearman_p"] for r in table])  # NaN for text: not counted
    assert [r["spearman_p_holm"] for r in table[:2]] == list(holm[:2])
    assert math.isnan(table[2]["spearman_p_holm"]) and table[2]["significant"] is False
    assert table[0]["significant"] == bool(table[0]["spearman_p_holm"] < 0.05)
    assert table[2]["verdict"].startswith("undefined") and table[0]["family"] == "exploratory"


def test_trend_as_row_flattens_the_intervals():
    steps = np.array([1, 2, 4, 8, 16, 32, 64], dtype=float)
    t = trend(steps, 5 - np.log(steps) + 0.1 * np.sin(steps), n_boot=200)
    row = t.as_row()
    assert row["spearman"] == t.spearman and row["n"] == t.n == 7
    assert (row["slope_ci_low"], row["slope_ci_high"]) == t.slope_ci
    assert (row["spearman_ci_low"], row["spearman_ci_high"]) == t.spearman_ci
    assert row["slope_per_log_step"] < 0
