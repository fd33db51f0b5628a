"""Pre-stated questions and the words a relation's numbers allow.

An experiment declares its **primary relations** (:class:`Claim`: a metric against a
quantity, with the direction the paper reports) before it runs. The relations table corrects
them by Holm as their own family (:func:`saddles.runs.relate.mark_significant`); every other
relation is **exploratory**, corrected as a second family and labelled so. Correcting the
paper's handful of questions together with hundreds of exploratory ones (330 in the PINN
demo) would make even rho = 0.9 over 5 models unreachable, whatever the data.

:func:`verdict` words one relation from its family-adjusted p, its interval and what its run
count allows; :func:`claim_verdict` gives a claim one word (reproduced / not reproduced /
inconclusive). Significance is decided by the adjusted p alone, so two relations of one
family with the same p are both significant or both not; the interval adds words, never
removes a significance.

Plain Python and numpy; never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from saddles.runs.relate._common import ALPHA

#: Verdict phrases, in the order they are tried (:func:`verdict`).
UNDEFINED = "undefined"
UNTESTABLE = "untestable"
SIGNIFICANT = "significant after correction"
EXCLUDES_ZERO = "interval excludes 0, not significant after correction"
DISAGREE = "interval excludes 0 but the permutation p is"
NO_CHANGE = "no detectable change"
#: One-word verdicts of a claim (:func:`claim_verdict`).
CLAIM_WORDS = ("reproduced", "not reproduced", "inconclusive")


@dataclass(frozen=True)
class Claim:
    """A pre-stated relation: ``metric`` against ``against`` moves with ``sign`` (+1 rises,
    -1 falls; 0 states no direction), in the words of ``text`` (with its source)."""

    metric: str
    against: str
    sign: int
    text: str = ""

    def __post_init__(self) -> None:
        if self.sign not in (-1, 0, 1):
            raise ValueError(f"claim {self.metric} ~ {self.against}: sign must be -1, 0 or 1, "
                             f"not {self.sign!r}")  # fmt: skip


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def excludes_zero(row: dict[str, Any]) -> int:
    """+1 when the Spearman interval lies above 0, -1 below, 0 when it holds 0 or is NaN."""
    lo, hi = row.get("spearman_ci_low"), row.get("spearman_ci_high")
    if not _finite(lo, hi):
        return 0
    return 1 if lo > 0 else -1 if hi < 0 else 0


def verdict(row: dict[str, Any], family_size: int, alpha: float = ALPHA) -> str:
    """The sentence a relation's numbers allow, from its Spearman estimate, interval, raw and
    family-adjusted p (``spearman_p_holm``), the smallest p its runs allow (``p_min``) and the
    size of its Holm family (``unit``: what the ``n`` observations are, "runs" by default):

    - ``undefined: <why>``: no correlation (a constant input, fewer than 3 runs);
    - ``untestable: ...``: no p below ``alpha`` is possible with these runs (``p_min`` >
      alpha), or none after the correction (``family_size`` x ``p_min`` > alpha);
    - ``significant after correction``: adjusted p < ``alpha``;
    - ``interval excludes 0, not significant after correction``: the raw p is below
      ``alpha``, the adjusted one is not;
    - ``interval excludes 0 but the permutation p is <p>``: the two disagree (the exact test
      wins; the Fisher-z interval is approximate, most of all with heavy ties such as a
      0/1 quantity over 8 models);
    - ``no detectable change``: the interval holds 0 (or there is none).
    """
    if not _finite(row.get("spearman")):
        why = str(row.get("note") or "no correlation").split("; ")[-1]
        return f"{UNDEFINED}: {why}"
    p_min, n = row.get("p_min", math.nan), row.get("n", "?")
    excl = excludes_zero(row)
    if _finite(p_min) and p_min > alpha:
        unit = row.get("unit", "runs")
        return f"{UNTESTABLE}: the smallest permutation p these {n} {unit} allow is {p_min:.3g}"
    if _finite(p_min) and family_size * p_min > alpha:
        lead = "interval excludes 0; " if excl else ""
        return (f"{lead}{UNTESTABLE} after correction: the smallest Holm-adjusted p over "
                f"{family_size} relations is {min(1.0, family_size * p_min):.3g}")  # fmt: skip
    p = row.get("spearman_p_holm")
    if _finite(p) and p < alpha:
        return SIGNIFICANT
    if not excl:
        return NO_CHANGE
    raw = row.get("spearman_p")
    if _finite(raw) and raw >= alpha:
        return f"{DISAGREE} {raw:.3g}: not significant"
    return EXCLUDES_ZERO


def claim_verdict(row: dict[str, Any] | None, sign: int, alpha: float = ALPHA) -> str:
    """One word for a claim, from its relation's row (None: not measured):

    - ``reproduced``: significant after the primary family's correction, in the claimed
      direction (any direction where the claim states none), with an interval on that side of
      0 (where the test and the interval disagree, the claim is inconclusive);
    - ``not reproduced``: the relation is significant the other way, or its interval lies on
      the other side of 0 with a raw permutation p below ``alpha`` (evidence against the
      claim that the correction alone does not erase);
    - ``inconclusive``: anything else (an interval holding 0, too few runs, not measured).
    """
    if row is None or not _finite(row.get("spearman")):
        return "inconclusive"
    rho, p = row["spearman"], row.get("spearman_p_holm")
    observed = 1 if rho > 0 else -1 if rho < 0 else 0
    significant = _finite(p) and p < alpha
    side = excludes_zero(row)
    if significant and side != 0 and (sign == 0 or observed == sign == side):
        return "reproduced"
    raw = row.get("spearman_p")
    against = excludes_zero(row) == -sign and (not _finite(raw) or raw < alpha)
    if sign and (against or (significant and observed == -sign)):
        return "not reproduced"
    return "inconclusive"


def claims_table(
    claims: list[Claim] | tuple[Claim, ...],
    relations: list[dict[str, Any]],
    representation: str | None = None,
    alpha: float = ALPHA,
) -> list[dict[str, Any]]:
    """One row per claim and direction kind: what the run measured (Spearman's rho, its
    interval, the primary family's Holm-adjusted p, the number of models), the relation's
    own verdict sentence, and the claim's one word (:func:`claim_verdict`); direction kinds
    without the relation (a per-model number is related once) are left out. A claim with no
    relation in ``relations`` (a quantity not measured) gets one row saying so."""
    kinds = list(dict.fromkeys(r["direction"] for r in relations)) or [""]
    out: list[dict[str, Any]] = []
    for c in claims:
        claimed = {1: "rises", -1: "falls", 0: "moves"}[c.sign]
        base = {"claim": c.text or f"{c.metric} {claimed} with {c.against}",
                "metric": c.metric, "against": c.against, "claimed": claimed}  # fmt: skip
        found = [(kind, next((r for r in relations if r["x"] == c.metric and r["y"] == c.against
                              and r["direction"] == kind
                              and representation in (None, r.get("representation"))), None))
                 for kind in kinds]  # fmt: skip
        found = [(k, r) for k, r in found if r is not None]
        if not found:
            out.append({**base, "direction": "", "rho": math.nan, "ci_low": math.nan,
                        "ci_high": math.nan, "p_holm": math.nan, "n": 0,
                        "measured": "not measured",
                        "verdict": claim_verdict(None, c.sign, alpha)})  # fmt: skip
        for kind, row in found:
            out.append({**base, "direction": kind, "rho": row["spearman"],
                        "ci_low": row["spearman_ci_low"], "ci_high": row["spearman_ci_high"],
                        "p_holm": row.get("spearman_p_holm", math.nan), "n": row["n"],
                        "measured": row.get("verdict", ""),
                        "verdict": claim_verdict(row, c.sign, alpha)})  # fmt: skip
    return out
