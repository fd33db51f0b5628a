"""Claims and their one-word verdicts (saddles.runs.relate.verdicts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from saddles.runs.relate import Claim, claim_verdict, claims_table, relations_from_rows


def _row(rho, lo, hi, p_holm, **kw):
    return {"x": "n_saddles", "y": "beta", "direction": "random", "representation": "knn",
            "spearman": rho, "spearman_ci_low": lo, "spearman_ci_high": hi,
            "spearman_p_holm": p_holm, "n": 10, **kw}  # fmt: skip


def test_claim_words_follow_the_interval_and_the_corrected_p():
    assert claim_verdict(_row(0.9, 0.6, 0.97, 0.001), 1) == "reproduced"
    assert claim_verdict(_row(0.9, 0.6, 0.97, 0.001), -1) == "not reproduced"
    assert claim_verdict(_row(-0.7, -0.9, -0.2, 0.2), 1) == "not reproduced"  # interval below 0
    assert claim_verdict(_row(0.7, 0.2, 0.9, 0.2), 1) == "inconclusive"  # not after correction
    # The interval is on the other side, but the exact test finds nothing: no evidence against.
    assert claim_verdict(_row(-0.77, -0.97, -0.03, 0.7, spearman_p=0.14), 1) == "inconclusive"
    assert claim_verdict(_row(-0.77, -0.97, -0.03, 0.7, spearman_p=0.01), 1) == "not reproduced"
    assert claim_verdict(_row(0.1, -0.5, 0.6, 0.9), 1) == "inconclusive"
    assert claim_verdict(_row(math.nan, math.nan, math.nan, math.nan), 1) == "inconclusive"
    assert claim_verdict(None, 1) == "inconclusive"
    assert claim_verdict(_row(-0.9, -0.97, -0.6, 0.001), 0) == "reproduced"  # no direction
    # The corrected test passes but the interval (widened by the seeds) holds 0: the two
    # disagree, and the word says so (the demo's saddles against the error, Hessian plane).
    assert claim_verdict(_row(0.522, -0.0241, 0.828, 0.0455), 1) == "inconclusive"
    with pytest.raises(ValueError, match="sign must be -1, 0 or 1"):
        Claim("n_saddles", "beta", 2)


def test_claims_table_reads_the_primary_family():
    beta = np.arange(1.0, 9.0)
    rng = np.random.default_rng(0)
    rows = [{"model": f"m{i}", "direction": kind, "representation": "knn", "beta": b,
             "n_saddles": b + 0.3 * rng.normal(), "average_persistence": -b,
             "noise": rng.normal()}
            for kind in ("random", "hessian") for i, b in enumerate(beta)]  # fmt: skip
    claims = [Claim("n_saddles", "beta", 1, "more saddles with beta"),
              Claim("average_persistence", "beta", 1, "higher persistence with beta"),
              Claim("n_saddles", "mae", 1, "more saddles with the error")]  # fmt: skip
    pairs = [(c.metric, c.against) for c in claims]
    rels = relations_from_rows(rows, ["n_saddles", "average_persistence", "noise"], ["beta"],
                               n_perm=2000, primary=pairs)  # fmt: skip
    assert {r["family"] for r in rels if r["x"] != "noise"} == {"primary"}
    assert {r["family"] for r in rels if r["x"] == "noise"} == {"exploratory"}
    table = claims_table(claims, rels, "knn")
    assert [(t["metric"], t["direction"]) for t in table] == [
        ("n_saddles", "random"),
        ("n_saddles", "hessian"),
        ("average_persistence", "random"),
        ("average_persistence", "hessian"),
        ("n_saddles", ""),  # against mae: not measured, one row
    ]
    assert [t["verdict"] for t in table] == ["reproduced"] * 2 + ["not reproduced"] * 2 + [
        "inconclusive"]  # fmt: skip
    assert table[-1]["measured"] == "not measured" and table[0]["rho"] > 0.9
    assert table[0]["ci_low"] <= table[0]["rho"] <= table[0]["ci_high"]


def test_relation_verdicts_name_a_disagreement_between_test_and_interval():
    from saddles.runs.relate import verdict

    base = {"n": 8, "p_min": 0.001, "note": ""}
    assert verdict(_row(-0.77, -0.97, -0.03, 0.7, spearman_p=0.145, **base), 5) == (
        "interval excludes 0 but the permutation p is 0.145: not significant")  # fmt: skip
    assert verdict(_row(-0.77, -0.97, -0.03, 0.2, spearman_p=0.02, **base), 5) == (
        "interval excludes 0, not significant after correction")  # fmt: skip
    assert verdict(_row(0.1, -0.5, 0.6, 1.0, spearman_p=0.8, **base), 5) == "no detectable change"
    assert verdict(_row(0.9, 0.5, 0.97, 0.004, spearman_p=0.001, **base), 5) == (
        "significant after correction")  # fmt: skip
    few = {**base, "p_min": 1 / 3, "n": 3}
    assert verdict(_row(1.0, math.nan, math.nan, 1.0, spearman_p=1 / 3, **few), 5) == (
        "untestable: the smallest permutation p these 3 runs allow is 0.333")  # fmt: skip
    many = {**base, "p_min": 2 / 120, "n": 5}
    assert verdict(_row(-1.0, -1.0, -0.2, 1.0, spearman_p=2 / 120, **many), 330).startswith(
        "interval excludes 0; untestable after correction: the smallest Holm-adjusted p over "
        "330 relations is 1")  # fmt: skip
