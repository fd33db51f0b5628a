"""The two-level (training seeds, then direction seeds) bootstrap and variance shares, on
simulated data with known variance components."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saddles.runs.relate import hierarchical_bootstrap, variance_components


def _two_level(rng, k, n, sd_train, sd_dir, mu=3.0, ragged=False):
    sizes = rng.integers(2, 2 * n, size=k) if ragged else np.full(k, n)
    return [mu + sd_train * rng.normal() + sd_dir * rng.normal(size=s) for s in sizes]


@pytest.mark.parametrize("sd_train,sd_dir", [(2.0, 1.0), (0.5, 2.0), (0.0, 1.0)])
def test_variance_shares_recover_the_known_components(sd_train, sd_dir):
    rng = np.random.default_rng(5)
    groups = _two_level(rng, 400, 8, sd_train, sd_dir, ragged=True)
    h = hierarchical_bootstrap(groups, n_boot=200)
    true_share = sd_train**2 / (sd_train**2 + sd_dir**2)
    assert h.share_training == pytest.approx(true_share, abs=0.05)
    assert h.var_direction == pytest.approx(sd_dir**2, rel=0.06)
    assert h.share_training + h.share_direction == pytest.approx(1)
    # The grand mean's variance: s_b^2 / k against s_w^2 sum(1/n_i) / k^2 (its estimate).
    counts = np.array([len(g) for g in groups])
    mb, mw = h.var_training / 400, h.var_direction * np.sum(1 / counts) / 400**2
    assert h.mean_share_training == pytest.approx(mb / (mb + mw))
    # Three approximate standard errors of the ANOVA estimate (Searle et al. 1992, sec. 3.6).
    se = math.sqrt(2 / 399) * (sd_train**2 + sd_dir**2 / 7)
    assert h.var_training == pytest.approx(sd_train**2, abs=3 * se + 0.02)


def test_components_match_a_plain_anova_on_balanced_data():
    rng = np.random.default_rng(1)
    groups = _two_level(rng, 6, 4, 1.0, 1.0)
    data = np.array(groups)  # balanced: k x n
    k, n = data.shape
    msb = n * np.var(data.mean(axis=1), ddof=1)
    msw = np.mean(np.var(data, axis=1, ddof=1))
    between, within = variance_components(groups)
    assert within == pytest.approx(msw) and between == pytest.approx(max(0, (msb - msw) / n))


def test_interval_covers_the_true_mean_at_about_its_level():
    # 400 simulated studies of 8 training runs x 5 direction seeds, nominal 95%. Resampling
    # both stages errs wide (the module says by how much); resampling runs only errs narrow
    # with 8 runs. The tolerance is three binomial standard errors (0.011) around 95%, plus
    # the known direction of each bias.
    rng = np.random.default_rng(3)
    hits = {True: 0, False: 0}
    for _ in range(400):
        groups = _two_level(rng, 8, 5, 1.0, 1.5)
        for within in hits:
            lo, hi = hierarchical_bootstrap(groups, n_boot=400, within=within,
                                            seed=int(rng.integers(1 << 30))).ci  # fmt: skip
            hits[within] += lo <= 3.0 <= hi
    both, runs_only = hits[True] / 400, hits[False] / 400
    assert 0.95 - 0.035 <= both <= 0.995
    assert 0.85 <= runs_only <= 0.95 + 0.035 and runs_only <= both


def test_edge_cases_say_what_is_missing():
    one_run = hierarchical_bootstrap([[1.0, 2.0, 3.0]])
    assert one_run.estimate == 2.0 and math.isnan(one_run.ci[0])
    assert math.isnan(one_run.share_training) and "one training run" in one_run.note
    one_seed = hierarchical_bootstrap([[1.0], [2.0], [4.0, np.nan], []], n_boot=100)
    assert one_seed.n_training == 3 and "1 values dropped" in one_seed.note
    assert "1 runs without finite values dropped" in one_seed.note
    assert "one direction seed per run" in one_seed.note
    with pytest.raises(ValueError, match=r"groups\[0\] must be a 1-D"):
        hierarchical_bootstrap([[[1.0]]])
    same = hierarchical_bootstrap([[1.0, 2.0], [3.0, 4.0]], n_boot=50, seed=9)
    assert same == hierarchical_bootstrap([[1.0, 2.0], [3.0, 4.0]], n_boot=50, seed=9)
