"""The hypotheses H1-H4 as numbers (planted series) and their report section."""

from __future__ import annotations

import numpy as np
import pytest

from saddles.experiments.lm import hypotheses_section, hypothesis_table
from saddles.experiments.lm.hypotheses import span_hypotheses


def test_hypothesis_table_on_planted_series():
    rng = np.random.default_rng(0)
    rows = []
    steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    for size, final in ((1e4, 2.0), (1e5, 1.6), (1e6, 1.3), (1e7, 1.1)):
        for s in steps:
            rows.append(
                {
                    "n_params": size,
                    "step": s,
                    # saddles fall with log step, faster for larger models
                    "saddles": 50 - (1 + np.log10(size)) * np.log(s) + rng.normal(0, 0.3),
                    # persistence rises then falls (a turn at step 50)
                    "persistence": -abs(np.log(s) - np.log(50)) + rng.normal(0, 0.02),
                    "val_loss": final + 2 / s,
                }
            )
    table = hypothesis_table(rows, "saddles", "persistence", early_step=10)
    h1 = [t for t in table if t["hypothesis"] == "H1" and t["quantity"].startswith("Spearman(sad")]
    assert len(h1) == 4 and all(t["value"] < -0.9 for t in h1)
    h2 = [t for t in table if t["hypothesis"] == "H2"]
    assert all(t["value"] >= 1 and "non-monotone fit: True" in t["note"] for t in h2)
    assert any(t["hypothesis"] == "H3" and "leave-one-size-out" in t["quantity"] for t in table)
    # The tests among the entries are one Holm family: 4 trends and the across-size relation.
    tests = [t for t in table if np.isfinite(t["p"])]
    assert len(tests) == 5 and all(t["p_holm"] >= t["p"] for t in tests)
    assert all(t["verdict"] == "significant after correction" for t in h1)
    (across,) = [t for t in tests if "across sizes" in t["quantity"]]
    assert across["p_min"] == pytest.approx(2 / 24)  # 4 sizes: 2 of 4! orderings
    assert across["verdict"].startswith("untestable: the smallest permutation p these 4 sizes")
    assert all(t["verdict"] == "" and np.isnan(t["p_holm"]) for t in table if t not in tests)


def test_hypothesis_table_names_a_missing_early_step():
    rows = [
        {"n_params": s, "step": t, "saddles": 1.0, "persistence": 1.0, "val_loss": 1.0}
        for s in (1, 2, 3)
        for t in (1, 10, 100)
    ]
    with pytest.raises(ValueError, match="early_step 5"):
        hypothesis_table(rows, "saddles", "persistence", early_step=5)


def test_the_old_dynamics_name_warns_and_gives_the_same_table():
    import saddles.dynamics as dynamics

    rows = [
        {"n_params": s, "step": t, "saddles": float(s + t), "persistence": 1.0, "val_loss": 1.0}
        for s in (1, 2, 3)
        for t in (1, 10, 100)
    ]
    with pytest.warns(DeprecationWarning, match="saddles.experiments.lm.hypothesis_table"):
        old = dynamics.hypothesis_table(rows, "saddles", "persistence", early_step=10)
    new = hypothesis_table(rows, "saddles", "persistence", early_step=10)
    assert repr(old) == repr(new)  # repr: NaN intervals compare equal


def test_section_escapes_the_note_and_tabulates_every_entry():
    table = [{"hypothesis": "H1", "quantity": "q<1>", "value": 0.5, "ci_low": 0.1,
              "ci_high": 0.9, "n": 3, "note": ""}]  # fmt: skip
    body = hypotheses_section({}, table, "fit a < b")
    assert "<p>fit a &lt; b</p>" in body and "q&lt;1&gt;" in body and "H4: do kD" in body


def test_runs_without_topology_name_what_is_missing_instead_of_fitting_it():
    """One basin at every checkpoint of every size: the table and the report say that H1-H3
    cannot be asked, and why; a saddle count that moves gets no such entry."""
    rows = [
        {"n_params": s, "step": t, "saddles": 0.0, "persistence": 1.0, "val_loss": 1.0 + 1 / t}
        for s in (10, 20, 30)
        for t in (1, 10, 100, 1000)
    ]
    table = hypothesis_table(rows, "saddles", "persistence")
    missing = [t for t in table if t["quantity"] == "what is missing"]
    assert [t["hypothesis"] for t in missing] == ["H1, H3", "H2"]
    assert "saddles is 0 at every checkpoint of every size" in missing[0]["note"]
    assert all(np.isnan(t["p"]) and t["verdict"] == "" for t in missing)
    body = hypotheses_section({}, table, "")
    assert "H1, H3 cannot be asked of these runs" in body and "span: auto" in body
    moving = [{**r, "saddles": float(r["step"] % 7)} for r in rows]
    assert [t["hypothesis"] for t in hypothesis_table(moving, "saddles", "persistence")
            if t["quantity"] == "what is missing"] == ["H2"]  # fmt: skip


def _two_runs_per_size(saddles_at=None):
    """4 sizes x 2 training runs x 8 checkpoints: saddles fall with log step, faster for larger
    models, each run with its own noise and final loss."""
    rng = np.random.default_rng(3)
    rows = []
    for size, final in ((1e4, 2.0), (1e5, 1.6), (1e6, 1.3), (1e7, 1.1)):
        for run in (0, 1):
            for s in (1, 2, 5, 10, 50, 100, 500, 1000):
                fall = (1 + np.log10(size)) * np.log(s)
                rows.append({"n_params": size, "train_seed": run, "step": s,
                             "saddles": 50 - fall + rng.normal(0, 0.5),
                             "flat": 0.0, "persistence": rng.normal(1, 0.1),
                             "val_loss": final + 0.03 * run + 2 / s})  # fmt: skip
    return rows


def test_hypotheses_pool_the_training_runs_of_each_size():
    """Oracles: scipy's Spearman on the pooled checkpoints of a size, and on each run's own
    least-squares slope (numpy.polyfit in log step) against its final loss."""
    from scipy.stats import spearmanr

    rows = _two_runs_per_size()
    table = hypothesis_table(rows, "saddles", "persistence", early_step=10)
    size = [r for r in rows if r["n_params"] == 1e5]
    (h1,) = [t for t in table if t["quantity"] == "Spearman(saddles, step), size 100000.0"]
    assert h1["n"] == 16 and "2 training runs pooled" in h1["note"]
    expected = spearmanr(np.log([r["step"] for r in size]), [r["saddles"] for r in size])[0]
    assert h1["value"] == pytest.approx(expected, rel=1e-12)
    assert h1["ci_low"] <= h1["value"] <= h1["ci_high"]
    assert "permutations within each run" in h1["note"] and h1["p"] >= h1["p_min"]
    (across,) = [t for t in table if "across sizes" in t["quantity"]]
    slopes, finals = [], []
    for s in (1e4, 1e5, 1e6, 1e7):  # the size is the unit: its runs' mean slope and loss
        own_slopes, own_finals = [], []
        for run in (0, 1):
            own = [r for r in rows if r["n_params"] == s and r["train_seed"] == run]
            own_slopes.append(np.polyfit(np.log([r["step"] for r in own]),
                                         [r["saddles"] for r in own], 1)[0])  # fmt: skip
            own_finals.append(own[-1]["val_loss"])
        slopes.append(np.mean(own_slopes))
        finals.append(np.mean(own_finals))
    assert across["n"] == 4
    assert across["value"] == pytest.approx(spearmanr(finals, slopes)[0], rel=1e-12)
    assert across["p_min"] == pytest.approx(2 / 24)  # 4 sizes, however many runs each
    assert across["verdict"].startswith("untestable")
    h2 = [t for t in table if t["hypothesis"] == "H2"]
    assert len(h2) == 4 and all("mean over 2 training runs" in t["note"] for t in h2)
    loo = [t for t in table if t["hypothesis"] == "H3" and "leave-one-size-out" in t["quantity"]]
    assert loo and all(t["n"] == 8 for t in loo)


def test_span_hypotheses_are_one_family_and_a_flat_span_says_so_instead_of_testing():
    rows = _two_runs_per_size()
    columns = {"0.01": ("flat", "persistence", []), "0.1": ("saddles", "persistence", [])}
    table = span_hypotheses(rows, columns, early_step=10)
    flat = [t for t in table if t["span"] == "0.01"]
    # the saddle count is flat there: one entry says so; H2's descriptions stay (persistence
    # moves); no H1 or H3 number is computed from the constant
    (missing,) = [t for t in flat if t["quantity"] == "what is missing"]
    assert missing["hypothesis"] == "H1, H3"
    assert "flat is 0 at every checkpoint of every size, at span 0.01" in missing["note"]
    assert {t["hypothesis"] for t in flat if t is not missing} == {"H2"}
    assert not any(t["hypothesis"] in ("H1", "H3") for t in flat)
    tests = [t for t in table if np.isfinite(t["p"])]
    assert tests and all(t["span"] == "0.1" for t in tests)
    alone = hypothesis_table(rows, "saddles", "persistence", early_step=10)
    assert [t["p_holm"] for t in tests] == [t["p_holm"] for t in alone if np.isfinite(t["p"])]


def test_the_within_run_permutation_holds_its_level_where_runs_differ_only_in_level():
    """No trend within any run, but runs at different levels: the pooled rho is far from 0
    by the levels alone when the runs cover different steps; shuffling within runs keeps
    its false-positive rate near 5% (free shuffling does not: the oracle below)."""
    from scipy.stats import spearmanr

    from saddles.experiments.lm.hypotheses import within_runs_p

    rng = np.random.default_rng(7)
    rejected, free = 0, 0
    for _ in range(60):
        runs = []
        for level, steps in ((0.0, (1, 2, 4, 8, 16, 32)), (3.0, (8, 16, 32, 64, 128, 256))):
            runs.append([{"step": s, "c": level + rng.normal()} for s in steps])
        xs = [np.log(r["step"]) for run in runs for r in run]
        ys = [r["c"] for run in runs for r in run]
        rho = spearmanr(xs, ys)[0]
        p, p_min = within_runs_p(runs, "c", rho, seed=int(rng.integers(1 << 30)), n_perm=199)
        assert p_min == pytest.approx(1 / 200) and p_min <= p <= 1
        rejected += p <= 0.05
        free += spearmanr(xs, ys)[1] <= 0.05
    assert rejected <= 8  # 60 x 5% = 3 expected
    assert free >= 30  # the levels alone make a free test reject most of the time
