"""The experiment summary: the tables across models (:func:`saddles.runs.summary.summary_tables`),
the headline and relation figures, and the report page, in one call.

Never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saddles.files import write_csv
from saddles.runs.registry import metrics_for
from saddles.runs.relate import Claim, claims_table
from saddles.runs.summary import CURVATURE_METRICS, summary_tables


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
    claims: Sequence[Claim] = (),
    claims_source: str = "",
) -> dict[str, Path]:
    """Across models: the combined ``metrics.csv`` (one row per seed), ``summary.csv`` (over
    seeds), ``relations.csv`` (every TDA metric against ``x_key``, ``y_metrics`` and the
    Hessian metrics), the headline and relation figures, and ``report.html``.

    ``claims``: the experiment's pre-stated relations, their own Holm family; with them the
    report opens with the claims table (also written as ``claims.csv``)."""
    from saddles.report import plots
    from saddles.report.analysis import write_report

    out_dir = Path(out_dir)
    tables = summary_tables(analyses, out_dir, x_key=x_key, y_metrics=y_metrics, claims=claims)
    rows, summary, rels = tables["rows"], tables["summary"], tables["relations"]
    paths = dict(tables["paths"])
    config = analyses[0].config
    rep = config.representations[0]
    claim_rows = claims_table(claims, rels, rep) if claims else []
    if claim_rows:
        paths["claims"] = write_csv(out_dir / "claims.csv", claim_rows)
    headline = plots.ensemble_figure(
        summary, x_key, metrics_for("headline"),
        representation=rep, categorical=categorical,
        title=f"{title}: metrics against {x_key} ({rep}; mean and 95% interval over "
        f"{'training runs, then ' * _nested(summary)}seeds)",
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
        headline=paths["headline"], claims=claim_rows, claims_source=claims_source,
    )  # fmt: skip
    return paths


def _nested(summary: list[dict]) -> bool:
    """Whether some configuration was trained more than once (hierarchical intervals)."""
    return any(int(r.get("n_train_seeds", 1)) > 1 for r in summary)
