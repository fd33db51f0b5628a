"""The relations table: every metric against every model-level quantity, per series, over
seed ensembles or single planes, Holm-adjusted within its family (the pre-stated primary
relations, or the exploratory rest) and worded by :func:`saddles.runs.relate.verdicts.verdict`;
:func:`undefined_summary` says in one line why relations are NaN."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from saddles.runs.relate._common import ALPHA, _number, _numeric
from saddles.runs.relate.correlation import (
    Correlation,
    adjust_pvalues,
    correlate,
    correlate_ensemble,
)
from saddles.runs.relate.verdicts import verdict

#: Family labels of the relations table.
PRIMARY, EXPLORATORY = "primary", "exploratory"


def relations_table(
    rows: list[dict], x_keys: list[str], y_keys: list[str], **kwargs
) -> list[Correlation]:
    """Correlate every ``x_keys`` metric with every ``y_keys`` metric over ``rows`` (one row
    per model; a missing or non-numeric value counts as NaN)."""

    for name, keys in (("x_keys", x_keys), ("y_keys", y_keys)):
        if isinstance(keys, str):
            raise ValueError(f"{name} must be a list of column names, not the string {keys!r}")

    def column(key):
        return np.array([_number(r.get(key)) for r in rows], dtype=float)

    return [
        correlate(column(a), column(b), a, b, **kwargs) for a in x_keys for b in y_keys if a != b
    ]


def relations_from_rows(
    rows: list[dict[str, Any]],
    metrics: list[str],
    against: list[str],
    *,
    n_boot: int = 1000,
    n_perm: int = 2000,
    seed: int = 0,
    primary: Iterable[tuple[str, str]] = (),
    primary_representation: str | None = None,
) -> list[dict[str, Any]]:
    """Every metric against every model-level quantity, per direction kind x representation.

    ``rows``: one per model x direction seed x direction kind x representation (``model``,
    ``direction``, ``representation`` columns); a quantity of ``against`` is read from each
    model's first row. Where a model has several seeds, :func:`correlate_ensemble` (Fisher-z
    over models widened by the seed spread; ``interval`` "models, widened by seeds"), else
    :func:`correlate` (``interval`` "models"). Columns as :meth:`Correlation.as_row` (``x``
    the metric, ``y`` the quantity, ``n`` the number of models, ``p_min`` the smallest p the
    runs allow), plus ``n_seeds`` (the fewest seeds of a model) and the columns of
    :func:`mark_significant` (Holm within the family: ``primary`` pairs (metric, quantity)
    in ``primary_representation``, or exploratory).

    Several training runs of one configuration (rows with one ``model`` and several
    ``train_seed`` values): each training run is one observation (a point of the
    correlation, with its own quantity, e.g. its own error, and its own direction seeds), so
    ``n`` counts training runs. This is the hierarchy's first level taken as the unit: runs
    of one configuration share its ``x`` but differ by their training, and the permutation
    test, which exchanges runs, stays exact under the null of no relation; the interval over
    runs (widened by the direction seeds within each) covers the training spread because
    the runs are its samples. Resampling configurations, then runs within each, would instead
    treat the configuration as the unit; with 5 configurations that caps p at 1/60 whatever
    the number of runs, which is why it is not done here.
    """
    out: list[dict[str, Any]] = []
    pairs = list(dict.fromkeys((r["direction"], r["representation"]) for r in rows))
    for kind, rep in pairs:
        sub = [r for r in rows if r["direction"] == kind and r["representation"] == rep]
        models = list(dict.fromkeys(_observation(r) for r in sub))
        per_model = {m: [r for r in sub if _observation(r) == m] for m in models}
        n_seeds = min(len(v) for v in per_model.values())
        for x in metrics:
            for y in against:
                if x == y:
                    continue
                yv = np.array([_numeric(per_model[m][0].get(y)) for m in models])
                xs = [[_numeric(r.get(x)) for r in per_model[m]] for m in models]
                row: dict[str, Any] = {"direction": kind, "representation": rep}
                if max(len(v) for v in xs) > 1:
                    s, p = (correlate_ensemble(yv, xs, method=method, n_boot=n_boot,
                                               n_perm=n_perm, seed=seed, x_name=y, y_name=x)
                            for method in ("spearman", "pearson"))  # fmt: skip
                    row.update({"x": x, "y": y, "n": s.n_models,
                                "spearman": s.estimate, "spearman_ci_low": s.ci[0],
                                "spearman_ci_high": s.ci[1], "spearman_p": s.p,
                                "pearson": p.estimate, "pearson_ci_low": p.ci[0],
                                "pearson_ci_high": p.ci[1], "pearson_p": p.p,
                                "note": "; ".join(dict.fromkeys(n for n in (s.note, p.note) if n)),
                                "p_min": s.p_min,
                                "interval": "models, widened by seeds"})  # fmt: skip
                else:
                    c = correlate(np.array([v[0] for v in xs]), yv, x, y, n_boot=n_boot,
                                  n_perm=n_perm, seed=seed)  # fmt: skip
                    row.update(c.as_row())
                    row["interval"] = "models"
                row["n_seeds"] = n_seeds
                out.append(row)
    mark_significant(out, primary=primary, primary_representation=primary_representation)
    return out


def _observation(row: dict[str, Any]) -> tuple:
    """The unit of a relation: one training run (``model``, and ``train_seed`` when given)."""
    return row["model"], row.get("train_seed", "")


def mark_significant(
    table: list[dict[str, Any]],
    alpha: float = ALPHA,
    *,
    primary: Iterable[tuple[str, str]] = (),
    primary_representation: str | None = None,
) -> None:
    """Give every row of a relations table, in place:

    - ``family``: ``primary`` where (``x``, ``y``) is a pre-stated pair of ``primary`` (and the
      row's representation is ``primary_representation``, when given), else ``exploratory``;
    - ``spearman_p_holm``, ``pearson_p_holm``: Holm (1979) within the row's family
      (:func:`adjust_pvalues`);
    - ``significant``: the adjusted Spearman p is below ``alpha``. Decided by the p-value and
      the family alone, so equal p-values of one family get the same answer;
    - ``verdict``: the sentence of :func:`saddles.runs.relate.verdicts.verdict` (which adds
      what the interval and the run count say).

    A row that already has a ``family`` keeps it when ``primary`` is empty (a table built in
    parts, as :func:`saddles.runs.compare.compare_runs` builds it, is marked again whole)."""
    pairs = set(map(tuple, primary))
    for r in table:
        if pairs:
            own = primary_representation in (None, r.get("representation"))
            r["family"] = PRIMARY if own and (r["x"], r["y"]) in pairs else EXPLORATORY
        else:
            r.setdefault("family", EXPLORATORY)
    for family in dict.fromkeys(r["family"] for r in table):
        members = [r for r in table if r["family"] == family]
        for method in ("spearman", "pearson"):
            p = np.array([r[f"{method}_p"] for r in members], dtype=float)
            for r, q in zip(members, adjust_pvalues(p), strict=True):
                r[f"{method}_p_holm"] = float(q)
        size = sum(1 for r in members if np.isfinite(r["spearman_p"]))
        for r in members:
            r["significant"] = bool(r["spearman_p_holm"] < alpha)
            r["verdict"] = verdict(r, size, alpha)


def undefined_summary(table: list[dict[str, Any]]) -> str:
    """One line saying how many relations are NaN and why (a constant input, fewer than 3
    runs), naming the metrics; "" when none is."""
    reasons: dict[str, list[str]] = {}
    for r in table:
        v = r.get("spearman")
        if isinstance(v, (int, float)) and v == v:
            continue
        note = str(r.get("note") or "")
        if "constant" in note:
            why = "an input is constant"
        elif "usable pairs" in note or "fewer than 3" in note:
            why = "fewer than 3 runs with numbers"
        else:
            why = note.split("; ")[-1] or "no correlation"
        reasons.setdefault(why, []).append(str(r.get("x")))
    if not reasons:
        return ""
    n = sum(len(v) for v in reasons.values())
    parts = [f"{len(v)} because {why} ({', '.join(dict.fromkeys(v))})"
             for why, v in reasons.items()]  # fmt: skip
    return f"{n} of {len(table)} relations are undefined (NaN): " + "; ".join(parts) + "."
