"""The self-contained HTML report of an experiment: one file, images embedded, no scripts.

Sections, in order: the result (what was varied, which metrics moved with it, with seed
intervals, raw and relative, and one full-width figure); one section per model (its quality
and Hessian numbers, its figures); the metrics (over seeds, then per plane); the relations
(those that survive a Holm correction first, the rest compactly); the configuration; what
ran, where, how long, with which package versions. A click on an image shows it full size
(CSS only); wide tables scroll inside their own box. An experiment adds
its own sections (``extra_sections``, e.g. the dynamics of the language-model experiment;
:func:`figures_and_table` builds their usual body). Built with the standard library's ``html``
escaping only; never imports torch.
"""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from saddles.files import atomic_write_text
from saddles.report.html import escape, fmt, kv_table, page, table, version
from saddles.report.html import figures as embed_figures  # ``figures`` names an argument
from saddles.runs.registry import metrics_for

SECTIONS = ("Claims", "Result", "Models", "Metrics", "Relations", "Configuration", "Run")
PACKAGES = ("saddles", "numpy", "scipy", "torch", "numba", "matplotlib", "gudhi", "pynndescent")

#: Columns of the metrics table shown in the report (metrics.csv has all of them): the
#: plane's keys, then the registry's ``table`` view.
TABLE_COLUMNS = ["model", "direction", "representation", *metrics_for("table")]
#: Metrics of the seed-summary table (``summary`` view) and of the result section
#: (``headline`` view).
SUMMARY_METRICS = metrics_for("summary")
HEADLINE_METRICS = metrics_for("headline")


def write_report(
    path: str | Path,
    *,
    title: str,
    config: dict[str, Any],
    analyses: list,
    figures: dict[str, dict[str, Path]],
    rows: list[dict[str, Any]],
    relations: list[dict[str, Any]],
    relation_figures: dict[str, Path],
    info: dict[str, Any],
    extra_sections: list[tuple[str, str]] | None = None,
    table_columns: list[str] | None = None,
    summary: list[dict[str, Any]] | None = None,
    x_key: str | None = None,
    headline: Path | None = None,
    claims: list[dict[str, Any]] | None = None,
    claims_source: str = "",
) -> Path:
    """Write the report; ``figures[model name]`` maps captions to PNG paths.

    ``claims`` (rows of :func:`saddles.runs.relate.claims_table`) open the report with the
    paper's claims and a verdict each; ``claims_source`` names where the claims are from.

    ``extra_sections`` are (heading, HTML body) pairs inserted before the configuration;
    ``table_columns`` chooses the metrics table's columns (default :data:`TABLE_COLUMNS`);
    ``summary`` (rows over direction seeds), ``x_key`` (what was varied) and ``headline`` (a
    figure) make the result section that opens the report.
    """
    from saddles.report.claims import claims_section

    sections: list[tuple[str, str]] = []
    threshold = config.get("threshold")
    if claims:
        sections.append(("Claims", claims_section(claims, claims_source)))
    if x_key is not None:
        sections.append(("Result", result_section(x_key, config, summary or [], relations,
                                                  headline)))  # fmt: skip
    models = []
    for a in analyses:
        numbers = {**a.quality, **{k: v for k, v in a.hessian.items() if not isinstance(v, list)}}
        body = kv_table(numbers)
        eig = a.hessian.get("top_eigenvalues")
        if eig:
            res = a.hessian.get("eigen_residuals", [])
            body += "<p class='note'>top Hessian eigenvalues: " + ", ".join(
                f"{v:.5g} (residual {r:.2g})" for v, r in zip(eig, res, strict=False)
            ) + "</p>"  # fmt: skip
        label = model_label(a.name, a.quality.get("train_seed"), analyses)
        body += embed_figures(figures.get(label, {}))
        models.append(f"<h3>{escape(label)}</h3>{body}")
    if not models:
        models.append(
            "<p class='note'>No single-model sections in this report: every checkpoint's "
            "numbers are in the metrics table and the dynamics.</p>"
        )
    sections.append(("Models", "".join(models)))
    simplified = f"simplified at {threshold:g} of the range" if threshold else "simplified"
    metrics_note = (
        "<p class='note'>Counts are <b>raw</b> (every critical point) unless the column says "
        f"<b>{escape(simplified)}</b>; <code>_above_noise</code> counts features whose persistence "
        "is at least twice the landscape's noise floor (the larger of the arithmetic floor and, "
        "when measured, the batch floor; <code>noise_floor_source</code> says which); "
        "<code>_relative</code> values are "
        "divided by the landscape's value range. Persistence conventions: "
        "<code>average_persistence</code> follows TTK (each component's essential class paired "
        "with its maximum); <code>_finite</code> uses finite pairs only.</p>"
    )
    body = metrics_note
    if summary:
        nested = any(_finite(r.get("n_train_seeds")) and r["n_train_seeds"] > 1
                     for r in summary)  # fmt: skip
        cols = ["model", "direction", "representation", *(["n_train_seeds"] * nested),
                "n_seeds"]  # fmt: skip
        for m in SUMMARY_METRICS:
            if any(f"{m}_mean" in r for r in summary):
                cols += [f"{m}_mean", f"{m}_ci_low", f"{m}_ci_high"]
                cols += [f"{m}_share_training"] * nested
        heading = ("Over training seeds, then direction seeds within each (mean, 95% "
                   "hierarchical bootstrap interval, and the share of one measurement's "
                   "variance that comes from the training run)" if nested
                   else "Over direction seeds (mean and 95% bootstrap interval)")  # fmt: skip
        body += f"<h3>{heading}</h3>" + table(summary, cols, simplified)
    columns = [c for c in table_columns or TABLE_COLUMNS if any(c in r for r in rows)]
    body += "<h3>Every plane (one row per seed x direction kind x representation)</h3>"
    body += table(rows, columns, simplified)
    sections.append(("Metrics", body))
    sections.append(("Relations", relations_section(relations, config, relation_figures)))
    sections.extend(extra_sections or [])
    sections.append(("Configuration", f"<pre>{escape(yaml.safe_dump(config))}</pre>"))
    run = {**info, "python": platform.python_version(), "platform": platform.platform()}
    run.update({f"version {p}": version(p) for p in PACKAGES})
    sections.append(("Run", kv_table(run)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, page(title, sections))


def model_label(name: str, train_seed: Any, analyses: list) -> str:
    """A model's section heading (and key of its figures): its name, and its training seed
    when its configuration was trained more than once and this is not the first run."""
    first = next((a.quality.get("train_seed") for a in analyses if a.name == name), None)
    return name if train_seed in (None, first) else f"{name}, training seed {train_seed}"


def result_section(
    x_key: str,
    config: dict[str, Any],
    summary: list[dict[str, Any]],
    relations: list[dict[str, Any]],
    headline: Path | None,
) -> str:
    """The first screen: what was varied, which metrics moved with it and which did not."""
    rep = config.get("representations", [None])[0]
    models = list(dict.fromkeys(r["model"] for r in summary))
    seeds = config.get("direction_seeds", 1)
    runs = max((int(r["n_train_seeds"]) for r in summary if _finite(r.get("n_train_seeds"))),
               default=1)  # fmt: skip
    n_primary = sum(r.get("family") == "primary" for r in relations)
    lines = [
        f"<p class='result'>Varied: <b>{escape(x_key)}</b> over {len(models)} models "
        f"({escape(', '.join(map(str, models)))}). Random-direction metrics are computed on "
        f"{seeds} random plane{'s' * (seeds != 1)} per model (seeds "
        f"{config.get('seed', 0)}..{config.get('seed', 0) + seeds - 1}); Hessian directions "
        f"are one plane. Relations are Spearman's rho of each metric against {escape(x_key)} "
        f"with a 95% Fisher-z interval over models (widened by the seed spread), a "
        f"permutation p and its Holm adjustment within its family: the {n_primary} "
        f"pre-stated (primary) relations, or the {len(relations) - n_primary} exploratory "
        f"ones (representation <code>{escape(str(rep))}</code> shown).</p>"
    ]
    if runs > 1:
        lines.append(
            f"<p class='result'>Each model was trained {runs} times (training seeds): means "
            "and intervals are over the training runs, then the direction seeds within each "
            "(two-stage bootstrap), the Metrics section gives each level's share of the "
            "variance, and each training run is one observation of the relations.</p>"
        )
    head = [r for r in relations if r.get("y") == x_key and r.get("representation") == rep
            and r.get("x") in HEADLINE_METRICS]  # fmt: skip
    verdicts = [f"{r.get('verdict', '')} ({r.get('family', 'exploratory')})" for r in head]
    moved = [r["x"] + f" ({r['direction']})" for r in head if r.get("significant")]
    shown = escape(", ".join(moved)) or "none"
    lines.append(f"<p class='result'><b>Moved with {escape(x_key)}</b> (Holm p &lt; 0.05 within "
                 f"its family): {shown}.</p>")  # fmt: skip
    verdict_rows = [{**r, "verdict": v} for r, v in zip(head, verdicts, strict=True)]
    lines.append(table(verdict_rows, ["direction", "x", "spearman", "spearman_ci_low",
                                "spearman_ci_high", "spearman_p", "spearman_p_holm", "n",
                                "n_seeds", "verdict"],
                        hits=[bool(r.get("significant")) for r in head]))  # fmt: skip
    p_min = min((r["p_min"] for r in head if _finite(r.get("p_min"))), default=math.nan)
    n = len(models)
    if _finite(p_min) and p_min > 1e-3:
        lines.append(f"<p class='note'>With {n} models the smallest possible permutation p is "
                     f"{p_min:.3g}; Holm over m relations multiplies it by up to m, so a "
                     f"relation can pass only in a family of at most {int(0.05 / p_min)} "
                     "(the pre-stated questions are such a family).</p>")  # fmt: skip
    raw = next((r for r in head if r["x"] == "average_persistence"), None)
    rel = next((r for r in head if r["x"] == "average_persistence_relative"), None)
    if raw and rel and all(np.isfinite([raw["spearman"], rel["spearman"]])):
        same = np.sign(raw["spearman"]) == np.sign(rel["spearman"])
        lines.append(
            "<p class='result'>Raw and relative persistence "
            + ("move the same way" if same else "move in opposite directions")
            + f" ({escape(raw['direction'])} directions: rho {fmt(raw['spearman'])} raw, "
            f"{fmt(rel['spearman'])} divided by the value range)"
            + ("" if same else ": the raw trend is mostly the loss scale")
            + ".</p>"
        )
    if headline is not None:
        lines.append(embed_figures({f"{', '.join(HEADLINE_METRICS)} against {x_key}": headline},
                              wide=True))  # fmt: skip
    return "".join(lines)


def relations_section(
    relations: list[dict[str, Any]], config: dict[str, Any], figures: dict[str, Path]
) -> str:
    """The pre-stated (primary) relations first, then the exploratory ones that survive their
    own correction, then the rest by p-value; undefined (NaN) relations in one line."""
    from saddles.runs.relate import undefined_summary

    cols = ["direction", "representation", "x", "y", "n", "n_seeds", "spearman",
            "spearman_ci_low", "spearman_ci_high", "spearman_p", "spearman_p_holm", "pearson",
            "pearson_p", "verdict", "note"]  # fmt: skip
    defined = [r for r in relations if _finite(r.get("spearman"))]
    primary = [r for r in defined if r.get("family") == "primary"]
    explore = [r for r in defined if r.get("family") != "primary"]
    hits = [r for r in explore if r.get("significant")]
    rest = [r for r in explore if not r.get("significant")]
    rest.sort(key=lambda r: (_sortable(r.get("spearman_p")), r["direction"], r["x"]))
    undefined = undefined_summary(relations)
    body = (
        "<p class='note'>Spearman's rho and Pearson's r over models, with 95% Fisher-z "
        "intervals (Bonett &amp; Wright's standard error for Spearman; where a model has "
        "several planes, widened by their spread) and two-sided permutation p-values; "
        "<code>spearman_p_holm</code> is Holm-adjusted within the relation's family: the "
        "pre-stated (primary) relations, or the exploratory rest. Highlighted: adjusted p "
        "&lt; 0.05. <code>relations.csv</code> has every column.</p>"
    )
    if primary:
        marks = [bool(r.get("significant")) for r in primary]
        body += f"<h3>Pre-stated (primary) relations ({len(primary)})</h3>"
        body += table(primary, cols, hits=marks)
    body += (f"<h3>Exploratory: surviving their correction ({len(hits)})</h3>"
             + table(hits, cols, hits=[True] * len(hits))
             + f"<h3>Exploratory: the other {len(rest)}, by p-value</h3>"
             + table(rest, cols))  # fmt: skip
    if undefined:
        body += f"<p class='note'>{escape(undefined)}</p>"
    return body + embed_figures(figures)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _sortable(p: Any) -> float:
    return p if isinstance(p, (int, float)) and math.isfinite(p) else 2.0
