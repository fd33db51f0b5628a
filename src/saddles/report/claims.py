"""The claims table that opens an experiment's report: each of the paper's claims, what this
run measured, its interval and one word (reproduced / not reproduced / inconclusive).

The numbers come from :func:`saddles.runs.relate.claims_table`; this module only lays them
out. Never imports torch.
"""

from __future__ import annotations

from typing import Any

from saddles.report.html import escape, table

#: Columns of the claims table, in order.
CLAIM_COLUMNS = ["claim", "direction", "claimed", "rho", "ci_low", "ci_high", "p_holm", "n",
                 "verdict", "measured"]  # fmt: skip


def claims_section(rows: list[dict[str, Any]], source: str = "") -> str:
    """HTML body of the claims section: one line counting the words, the table (reproduced
    rows highlighted), and how the words are decided."""
    words = [r["verdict"] for r in rows]
    order = ("reproduced", "not reproduced", "inconclusive")
    counts = ", ".join(f"{words.count(w)} {w}" for w in order if w in words)
    lead = (f"<p class='result'>{len(rows)} claim rows{escape(f' ({source})' if source else '')}"
            f": {escape(counts or 'none')}.</p>")  # fmt: skip
    note = (
        "<p class='note'>rho: Spearman's correlation over models (per-model means over "
        "direction seeds) with its 95% Fisher-z interval (Bonett &amp; Wright's standard "
        "error); p_holm: the permutation p, Holm-adjusted over the pre-stated claims only "
        "(the primary family; every other relation in this report is exploratory). "
        "<b>reproduced</b>: significant after that correction, in the claimed direction; "
        "<b>not reproduced</b>: significant the other way, or the interval lies on the other "
        "side of 0 with a raw permutation p below 0.05; <b>inconclusive</b>: anything else "
        "(the interval holds 0, the test and the interval disagree, or the runs are too few "
        "to test). "
        "<i>measured</i> is the relation's own sentence.</p>"
    )
    hits = [w == "reproduced" for w in words]
    return lead + table(rows, CLAIM_COLUMNS, hits=hits) + note
