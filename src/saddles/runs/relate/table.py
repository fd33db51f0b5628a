"""The relations table: every metric against every model-level quantity, per series, over
seed ensembles or single planes, Holm-adjusted over the whole table."""

from __future__ import annotations

from typing import Any

import numpy as np

from saddles.runs.relate._common import ALPHA, _number, _numeric
from saddles.runs.relate.correlation import (
    Correlation,
    adjust_pvalues,
    correlate,
    correlate_ensemble,
)


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
) -> list[dict[str, Any]]:
    """Every metric against every model-level quantity, per direction kind x representation.

    ``rows``: one per model x direction seed x direction kind x representation (``model``,
    ``direction``, ``representation`` columns); a quantity of ``against`` is read from each
    model's first row. Where a model has several seeds, :func:`correlate_ensemble` (two-level
    bootstrap; ``interval`` "seeds and models"), else :func:`correlate` (``interval``
    "models"). Columns as :meth:`Correlation.as_row` (``x`` the metric, ``y`` the quantity,
    ``n`` the number of models), plus ``n_seeds`` (the fewest seeds of a model) and the
    columns of :func:`mark_significant` (Holm over this table).
    """
    out: list[dict[str, Any]] = []
    pairs = list(dict.fromkeys((r["direction"], r["representation"]) for r in rows))
    for kind, rep in pairs:
        sub = [r for r in rows if r["direction"] == kind and r["representation"] == rep]
        models = list(dict.fromkeys(r["model"] for r in sub))
        per_model = {m: [r for r in sub if r["model"] == m] for m in models}
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
                                "interval": "seeds and models"})  # fmt: skip
                else:
                    c = correlate(np.array([v[0] for v in xs]), yv, x, y, n_boot=n_boot,
                                  n_perm=n_perm, seed=seed)  # fmt: skip
                    row.update(c.as_row())
                    row["interval"] = "models"
                row["n_seeds"] = n_seeds
                out.append(row)
    mark_significant(out)
    return out


def mark_significant(table: list[dict[str, Any]], alpha: float = ALPHA) -> None:
    """Give every row of a relations table ``spearman_p_holm`` and ``pearson_p_holm`` (Holm
    1979 over the whole table, :func:`adjust_pvalues`) and ``significant``: an adjusted
    Spearman p below ``alpha`` and a Spearman interval that excludes 0. In place."""
    for method in ("spearman", "pearson"):
        adjusted = adjust_pvalues(np.array([r[f"{method}_p"] for r in table], dtype=float))
        for r, p in zip(table, adjusted, strict=True):
            r[f"{method}_p_holm"] = float(p)
    for r in table:
        lo, hi = r["spearman_ci_low"], r["spearman_ci_high"]
        excludes = bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
        r["significant"] = bool(r["spearman_p_holm"] < alpha and excludes)
