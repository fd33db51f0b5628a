"""Across direction seeds and across models: seed summaries, relations and the report.

A topology metric from one random plane is one sample. :func:`seed_summary` turns the rows of
:meth:`saddles.pipeline.Analysis.rows` (one per direction seed x direction kind x
representation) into one row per model x direction kind x representation with, per metric,
``<metric>_mean``, ``_median``, ``_ci_low`` and ``_ci_high`` (a 95% percentile bootstrap over
the seeds, :func:`saddles.relations.bootstrap_ci`; NaN where one seed or equal values give no
interval). :func:`relations` correlates every TDA metric with every model-level quantity, per
direction kind and representation: over seed ensembles with the two-level bootstrap of
:func:`saddles.relations.correlate_ensemble` (models, then seeds within models), over single
planes with :func:`saddles.relations.correlate`; every p-value is also given Holm-adjusted
over the whole table (``spearman_p_holm``), and ``significant`` marks the relations whose
adjusted p is below 0.05 and whose interval excludes 0. :func:`summarize` writes all of it
and the report. Never imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from saddles.files import write_csv
from saddles.runs.registry import metrics_for

#: Metrics the relations table correlates (the registry's ``relate`` view): TDA metrics
#: against model and Hessian metrics; raw and scale-free (``_relative``: divided by the
#: landscape's value range).
TDA_METRICS = metrics_for("relate", exclude_stage="hessian")
CURVATURE_METRICS = metrics_for("relate", stage="hessian")
GROUP = ("model", "direction", "representation")
ALPHA = 0.05


def seed_summary(rows: list[dict[str, Any]], n_boot: int = 2000) -> list[dict[str, Any]]:
    """One row per model x direction kind x representation, each numeric metric summarized
    over the direction seeds (see the module docstring); ``n_seeds`` counts them."""
    from saddles.runs.relate import bootstrap_ci

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in GROUP), []).append(r)
    out = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(GROUP, key, strict=True))
        row["n_seeds"] = len(members)
        names = [k for k in members[0] if k not in GROUP and k != "direction_seed"]
        for name in names:
            values = [_number(m.get(name)) for m in members]
            if all(math.isnan(v) for v in values) and not _is_number(members[0].get(name)):
                continue  # a text column
            b = bootstrap_ci(np.array(values), np.mean, n_boot=n_boot, seed=0)
            row[f"{name}_mean"] = b.estimate
            row[f"{name}_median"] = float(np.nanmedian(values)) if b.n else math.nan
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = b.ci
        out.append(row)
    return out


def relations(
    rows: list[dict[str, Any]],
    metrics: list[str],
    against: list[str],
    n_boot: int = 1000,
    n_perm: int = 2000,
) -> list[dict[str, Any]]:
    """Every metric against every model-level quantity, per direction kind x representation.

    Columns as :meth:`saddles.relations.Correlation.as_row` (``x`` the TDA metric, ``y`` the
    quantity, ``n`` the number of models), plus ``n_seeds`` (the fewest seeds of a model),
    ``interval`` ("seeds and models" for ensembles, "models" for single planes),
    ``spearman_p_holm``/``pearson_p_holm`` (Holm 1979 over the whole table) and
    ``significant``.
    """
    from saddles.runs.relate import adjust_pvalues, correlate, correlate_ensemble

    out: list[dict[str, Any]] = []
    pairs = sorted({(r["direction"], r["representation"]) for r in rows},
                   key=lambda p: _first_index(rows, p))  # fmt: skip
    for kind, rep in pairs:
        sub = [r for r in rows if r["direction"] == kind and r["representation"] == rep]
        models = list(dict.fromkeys(r["model"] for r in sub))
        per_model = {m: [r for r in sub if r["model"] == m] for m in models}
        n_seeds = min(len(v) for v in per_model.values())
        for x in metrics:
            for y in against:
                if x == y:
                    continue
                yv = np.array([_number(per_model[m][0].get(y)) for m in models])
                xs = [[_number(r.get(x)) for r in per_model[m]] for m in models]
                row: dict[str, Any] = {"direction": kind, "representation": rep}
                if max(len(v) for v in xs) > 1:
                    both = {}
                    for method in ("spearman", "pearson"):
                        c = correlate_ensemble(yv, xs, method=method, n_boot=n_boot,
                                               n_perm=n_perm, x_name=y, y_name=x)  # fmt: skip
                        both[method] = c
                    s, p = both["spearman"], both["pearson"]
                    row.update({"x": x, "y": y, "n": s.n_models,
                                "spearman": s.estimate, "spearman_ci_low": s.ci[0],
                                "spearman_ci_high": s.ci[1], "spearman_p": s.p,
                                "pearson": p.estimate, "pearson_ci_low": p.ci[0],
                                "pearson_ci_high": p.ci[1], "pearson_p": p.p,
                                "note": "; ".join(dict.fromkeys(n for n in (s.note, p.note) if n)),
                                "interval": "seeds and models"})  # fmt: skip
                else:
                    c = correlate(np.array([v[0] for v in xs]), yv, x, y, n_boot=n_boot,
                                  n_perm=n_perm)  # fmt: skip
                    row.update(c.as_row())
                    row["interval"] = "models"
                row["n_seeds"] = n_seeds
                out.append(row)
    for method in ("spearman", "pearson"):
        adjusted = adjust_pvalues(np.array([r[f"{method}_p"] for r in out], dtype=float))
        for r, p in zip(out, adjusted, strict=True):
            r[f"{method}_p_holm"] = float(p)
    for r in out:
        lo, hi = r["spearman_ci_low"], r["spearman_ci_high"]
        excludes = np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0)
        r["significant"] = bool(r["spearman_p_holm"] < ALPHA and excludes)
    return out


def summarize(
    analyses: list,
    out_dir: str | Path,
    *,
    x_key: str,
    title: str,
    y_metrics: list[str],
    categorical: bool = False,
    figures: dict[str, dict[str, Path]] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Across models: the combined ``metrics.csv`` (one row per seed), ``summary.csv`` (over
    seeds), ``relations.csv`` (every TDA metric against ``x_key``, ``y_metrics`` and the
    Hessian metrics), the headline and relation figures, and ``report.html``."""
    from saddles.report import plots
    from saddles.report.analysis import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for a in analyses for r in a.rows()]
    summary = seed_summary(rows)
    paths = {"metrics": write_csv(out_dir / "metrics.csv", rows),
             "summary": write_csv(out_dir / "summary.csv", summary)}  # fmt: skip
    numeric_x = all(_is_number(r.get(x_key)) for r in rows)
    ys = [*([x_key] if numeric_x else []), *y_metrics, *CURVATURE_METRICS]
    rels = relations(rows, TDA_METRICS, ys)
    paths["relations"] = write_csv(out_dir / "relations.csv", rels)
    config = analyses[0].config
    rep = config.representations[0]
    headline = plots.ensemble_figure(
        summary, x_key, metrics_for("headline"),
        representation=rep, categorical=categorical,
        title=f"{title}: metrics against {x_key} ({rep}; mean and 95% interval over seeds)",
    )  # fmt: skip
    paths["headline"] = plots.save(headline, out_dir / "headline.png")
    rel_figs = {}
    for kind in config.directions:
        sub = [r for r in rows if r["direction"] == kind and r["representation"] == rep
               and r.get("direction_seed") in ("", config.seed)]  # fmt: skip
        fig = plots.relation_figure(
            sub, x_key, [*metrics_for("relation_figure"), *y_metrics, *CURVATURE_METRICS],
            title=f"{title}: metrics against {x_key} ({kind} directions, {rep}, first plane)",
            categorical=categorical,
        )  # fmt: skip
        rel_figs[f"{kind} directions, {rep}"] = plots.save(fig, out_dir / f"relations-{kind}.png")
    paths["report"] = write_report(
        out_dir / "report.html", title=title, config=config.to_dict(),
        analyses=analyses, figures=figures or {}, rows=rows, relations=rels,
        relation_figures=rel_figs, info=info or {}, summary=summary, x_key=x_key,
        headline=paths["headline"],
    )  # fmt: skip
    return paths


def _first_index(rows: list[dict[str, Any]], pair: tuple[str, str]) -> int:
    for i, r in enumerate(rows):
        if (r["direction"], r["representation"]) == pair:
            return i
    return len(rows)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _number(v: Any) -> float:
    return float(v) if _is_number(v) else math.nan
