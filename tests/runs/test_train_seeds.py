"""Several training runs per configuration, on simulated rows with known components:
the summary's hierarchical interval and variance shares, and relations that take each
training run as one observation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from saddles.runs.relate import relations_from_rows
from saddles.runs.summary import seed_summary


def simulated_rows(rng, betas, runs, seeds, slope, sd_train, sd_dir):
    """Rows like an experiment's: metric = slope * beta + run effect + direction noise."""
    rows = []
    for beta in betas:
        for t in range(runs):
            effect = rng.normal(0, sd_train)
            err = rng.lognormal(0, 1)  # one number per training run
            for d in range(seeds):
                value = slope * beta + effect + rng.normal(0, sd_dir)
                rows.append({"model": f"beta={beta}", "direction": "random",
                             "representation": "grid-full", "direction_seed": d,
                             "train_seed": t, "beta": float(beta), "rel_l2": err,
                             "n_saddles": value})  # fmt: skip
    return rows


@pytest.mark.parametrize(("sd_train", "sd_dir"), [(2.0, 1.0), (0.5, 2.0)])
def test_summary_shares_recover_the_known_components(sd_train, sd_dir):
    rng = np.random.default_rng(1)
    rows = simulated_rows(rng, [1], 40, 10, 0.0, sd_train, sd_dir)
    (row,) = seed_summary(rows, n_boot=200)
    truth = sd_train**2 / (sd_train**2 + sd_dir**2)
    assert row["n_train_seeds"] == 40 and row["n_seeds"] == 10
    assert row["n_saddles_share_training"] == pytest.approx(truth, abs=0.12)
    assert row["rel_l2_share_training"] == pytest.approx(1.0)  # no within-run spread
    assert row["interval"] == "training seeds, then direction seeds"
    # one training run: the old summary over direction seeds, no share
    (single,) = seed_summary([r for r in rows if r["train_seed"] == 0], n_boot=200)
    assert single["n_train_seeds"] == 1 and "n_saddles_share_training" not in single
    assert single["interval"] == "direction seeds"


def test_summary_interval_covers_the_configuration_mean_not_one_run():
    """Large run effects: intervals over direction seeds only miss the true configuration
    mean far more often than their level says; the hierarchical interval keeps near it."""
    rng = np.random.default_rng(2)
    hits_nested = hits_flat = 0
    trials = 150
    for _ in range(trials):
        rows = simulated_rows(rng, [1], 4, 8, 0.0, 2.0, 1.0)
        (nested,) = seed_summary(rows, n_boot=300)
        (flat,) = seed_summary([r for r in rows if r["train_seed"] == 0], n_boot=300)
        hits_nested += nested["n_saddles_ci_low"] <= 0 <= nested["n_saddles_ci_high"]
        hits_flat += flat["n_saddles_ci_low"] <= 0 <= flat["n_saddles_ci_high"]
    assert hits_flat / trials < 0.5
    assert hits_nested / trials > 0.8  # 4 runs: the percentile bootstrap is a bit narrow


def test_relations_count_training_runs_and_hold_their_level_under_the_null():
    """Each training run is an observation (n = runs); with no relation to beta and a large
    run effect the permutation test rejects at about its level, and a true slope is found."""
    rng = np.random.default_rng(3)
    rejections, trials = 0, 60
    for _ in range(trials):
        rows = simulated_rows(rng, [1, 3, 5, 7, 9], 3, 3, 0.0, 2.0, 1.0)
        (rel,) = relations_from_rows(rows, ["n_saddles"], ["beta"], n_boot=50, n_perm=200)
        assert rel["n"] == 15 and rel["n_seeds"] == 3
        rejections += rel["spearman_p"] < 0.05
    # binomial(60, 0.05): P(X > 8) < 0.01
    assert rejections <= 8
    rows = simulated_rows(rng, [1, 3, 5, 7, 9], 3, 3, 1.0, 1.0, 1.0)
    (rel,) = relations_from_rows(rows, ["n_saddles"], ["beta"], n_boot=50, n_perm=500)
    assert rel["spearman_p"] < 0.01 and rel["spearman_ci_low"] > 0
    # the estimate agrees with scipy's Spearman over the run means
    keys = sorted({(r["beta"], r["train_seed"]) for r in rows})
    means = [np.mean([r["n_saddles"] for r in rows if (r["beta"], r["train_seed"]) == k])
             for k in keys]  # fmt: skip
    assert rel["spearman"] == pytest.approx(stats.spearmanr([k[0] for k in keys], means)[0])
