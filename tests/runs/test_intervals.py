"""Correlation intervals at the boundary, their coverage, the smallest permutation p, and the
verdicts built on them (saddles.runs.relate.intervals, .verdicts, mark_significant)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from saddles.runs.relate import (
    correlate,
    correlate_ensemble,
    fisher_z_interval,
    mark_significant,
    relations_from_rows,
)

#: 400 simulated samples at nominal 95%: the binomial standard error of the coverage is
#: sqrt(0.95 * 0.05 / 400) = 0.011; the tolerance is about three of them.
N_SIM, NOMINAL, TOLERANCE = 400, 0.95, 0.035


def _simulate(rho: float, n: int, ties: bool, rng) -> tuple[np.ndarray, np.ndarray]:
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
    x, y = z[:, 0], z[:, 1]
    if ties:  # five levels of y (and x): many tied ranks
        x, y = np.round(x * 1.2), np.round(y * 1.2)
    return x, y


@pytest.mark.parametrize("rho,n,ties", [(0.5, 20, False), (0.8, 12, False), (0.5, 20, True)])
def test_fisher_z_intervals_cover_the_truth_and_hold_their_estimate(rho, n, ties):
    rng = np.random.default_rng(11)
    # The population values: Pearson's rho; Spearman's from one large sample (its own error
    # is about 0.002), which is how a tied population's rank correlation is known.
    big_x, big_y = _simulate(rho, 200_000, ties, rng)
    truth = {"pearson": stats.pearsonr(big_x, big_y).statistic,
             "spearman": stats.spearmanr(big_x, big_y).statistic}  # fmt: skip
    hits = {"pearson": 0, "spearman": 0}
    for _ in range(N_SIM):
        x, y = _simulate(rho, n, ties, rng)
        c = correlate(x, y, n_perm=1)
        for method in hits:
            r, (lo, hi) = getattr(c, method), getattr(c, f"{method}_ci")
            assert lo <= r <= hi and -1 <= lo and hi <= 1  # never excludes its estimate
            hits[method] += lo <= truth[method] <= hi
    for method, k in hits.items():
        assert abs(k / N_SIM - NOMINAL) <= TOLERANCE, (method, k / N_SIM)


def test_pearson_interval_is_scipys_fisher_interval():
    rng = np.random.default_rng(2)
    x, y = _simulate(0.4, 15, False, rng)
    c = correlate(x, y, n_perm=1)
    ref = stats.pearsonr(x, y).confidence_interval(0.95)
    assert c.pearson_ci == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_intervals_at_the_boundary_hold_the_estimate_and_are_not_degenerate():
    for n in (4, 5, 10, 30):
        x = np.arange(n, dtype=float)
        up, down = correlate(x, x**3, n_perm=1), correlate(x, -np.exp(x), n_perm=1)
        assert up.spearman == 1.0 and up.spearman_ci[1] == 1.0
        assert -1 < up.spearman_ci[0] < 1  # an interval, not the point [1, 1]
        assert down.spearman == -1.0 and down.spearman_ci[0] == -1.0 < down.spearman_ci[1] < 1
    # The demo's case: rho = -1 over 5 models whose seeds scatter. The old two-level percentile
    # bootstrap gave [-0.975, -0.205], excluding -1; the interval now ends at -1.
    rng = np.random.default_rng(0)
    beta = np.arange(1.0, 6.0)
    seeds = [[-b + 0.6 * rng.normal() for _ in range(4)] for b in beta]
    means = [np.mean(s) for s in seeds]
    assert stats.spearmanr(beta, means).statistic == pytest.approx(-1)
    e = correlate_ensemble(beta, seeds, n_boot=500)
    assert e.estimate == pytest.approx(-1) and e.ci[0] == -1.0 and e.ci[0] <= e.estimate


def test_ties_and_small_n():
    c = correlate([0, 0, 0, 1, 1, 1], [1, 2, 2, 3, 3, 4], n_perm=1)
    assert c.spearman_ci[0] <= c.spearman <= c.spearman_ci[1]
    assert all(math.isnan(v) for v in fisher_z_interval(0.5, 3, "spearman"))  # needs n > 3


def test_smallest_permutation_p_is_that_of_the_test_used():
    assert correlate([1, 2, 3], [3, 1, 2]).p_min == pytest.approx(1 / 3)  # 2 of 3! orderings
    assert correlate([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).p_min == pytest.approx(2 / 120)
    # Ties: with x = (0, 0, 1, 1) the largest |rho| is reached by 8 of the 24 orderings.
    assert correlate([0, 0, 1, 1], [1, 2, 3, 4]).p_min == pytest.approx(8 / 24)
    # Brute force over every ordering as the oracle for the tied case.
    x, y = np.array([0, 0, 1, 1, 2.0]), np.array([1.0, 2, 3, 4, 5])
    import itertools

    rhos = [abs(stats.spearmanr(x, y[list(p)]).statistic)
            for p in itertools.permutations(range(5))]  # fmt: skip
    expected = np.mean(np.array(rhos) >= max(rhos) - 1e-12)
    assert correlate(x, y).p_min == pytest.approx(expected)
    # Monte Carlo: (draws reaching the largest |rho| + 1) / (n_perm + 1), as the test's p.
    assert correlate(np.arange(9.0), np.arange(9.0) ** 2, n_perm=999).p_min <= 2 / 1000
    # A 0/1 quantity over 4 + 4 models: 2 of the C(8, 4) = 70 splits reach |rho| max.
    skip = np.repeat([0.0, 1.0], 4)
    mc = correlate(skip, [3.0, 2, 5, 1, 0.5, 0, 1.5, -1], n_perm=20000, seed=1)
    assert mc.p_min == pytest.approx(2 / 70, abs=0.004)


def _rows(values: dict[str, list[float]], beta: list[float]) -> list[dict]:
    return [{"model": f"m{i}", "direction": "random", "representation": "knn", "beta": b,
             **{k: v[i] for k, v in values.items()}} for i, b in enumerate(beta)]  # fmt: skip


def test_three_runs_are_untestable_and_say_so():
    rows = _rows({"n_saddles": [1, 2, 3]}, [1.0, 2.0, 3.0])
    (r,) = relations_from_rows(rows, ["n_saddles"], ["beta"], n_perm=100)
    assert r["spearman"] == pytest.approx(1) and r["p_min"] == pytest.approx(1 / 3)
    assert r["verdict"] == "untestable: the smallest permutation p these 3 runs allow is 0.333"
    assert r["significant"] is False


def test_equal_p_values_get_equal_verdicts_and_primary_is_its_own_family():
    beta = [1.0, 2, 3, 4, 5, 6, 7]
    rising = [1.0, 2, 3, 5, 4, 6, 7]
    rng = np.random.default_rng(4)
    noise = {f"noise{i}": list(rng.normal(size=7)) for i in range(30)}
    rows = _rows({"a": rising, "b": [2 * v for v in rising], **noise}, beta)
    metrics = ["a", "b", *noise]
    table = relations_from_rows(rows, metrics, ["beta"], n_perm=5000)
    a, b = table[0], table[1]
    assert a["spearman_p"] == b["spearman_p"] and a["spearman_p_holm"] == b["spearman_p_holm"]
    assert a["significant"] == b["significant"] and a["verdict"] == b["verdict"]
    # Over 32 relations a raw p of 2/7!-ish cannot survive; as the one pre-stated pair it can.
    assert a["family"] == "exploratory" and not a["significant"]
    assert "not significant after correction" in a["verdict"] or "untestable" in a["verdict"]
    mark_significant(table, primary=[("a", "beta")])
    assert a["family"] == "primary" and b["family"] == "exploratory"
    assert a["spearman_p_holm"] == a["spearman_p"] < 0.05 and a["significant"]
    assert a["verdict"] == "significant after correction"
    others = [r for r in table if r["family"] == "exploratory"]
    assert len(others) == 31 and all(r["spearman_p_holm"] >= r["spearman_p"] for r in others)


def test_undefined_relations_are_summarised_in_one_line():
    from saddles.runs.relate import undefined_summary

    rows = _rows({"n_saddles": [0, 0, 0, 0], "persistence": [1, 2, 3, 5]}, [1.0, 2, 3, 4])
    table = relations_from_rows(rows, ["n_saddles", "persistence"], ["beta"], n_perm=100)
    line = undefined_summary(table)
    assert line == ("1 of 2 relations are undefined (NaN): 1 because an input is constant "
                    "(n_saddles).")  # fmt: skip
    assert table[0]["verdict"].startswith("undefined: ") and math.isnan(table[0]["spearman"])
    assert undefined_summary(table[1:]) == ""
