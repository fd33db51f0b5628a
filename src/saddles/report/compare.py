"""The compare page: finished runs related to a size or setting (``report.html`` and CSVs).

Writes what :func:`saddles.runs.compare.compare_runs` computed; never imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from saddles.files import atomic_write_text, write_csv
from saddles.report.html import fmt
from saddles.runs.compare import Comparison, _number, distance_matrix
from saddles.runs.registry import metrics_for
from saddles.runs.relate import undefined_summary


def write_comparison(result: Comparison, out_dir: str | Path, title: str = "") -> dict[str, Path]:
    """``compare.csv`` (the relations), ``power_laws.csv``, ``runs.csv`` (the rows used),
    ``summary.csv`` (per configuration, over training seeds, then direction seeds),
    figures of the headline metrics against ``by``, and ``report.html``."""
    from saddles.report import plots
    from saddles.report.html import escape, figures_and_table, page

    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    paths = {"compare": write_csv(out_dir / "compare.csv", result.relations),
             "power_laws": write_csv(out_dir / "power_laws.csv", result.power_laws),
             "runs": write_csv(out_dir / "runs.csv", result.rows)}  # fmt: skip
    if result.summary:
        paths["summary"] = write_csv(out_dir / "summary.csv", result.summary)
    figures = {}
    constant = constant_metrics(result.rows, metrics_for("compare_figure"))
    shown = [m for m in metrics_for("compare_figure")
             if any(m in r for r in result.rows) and m not in constant]  # fmt: skip
    numeric = all(math.isfinite(_number(r.get(result.by))) for r in result.rows)
    series = dict.fromkeys((r["subspace"], r["direction"], r["representation"])
                           for r in result.rows) if shown else {}  # fmt: skip
    for sub, kind, rep in series:
        own = [
            r
            for r in result.rows
            if (r["subspace"], r["direction"], r["representation"]) == (sub, kind, rep)
        ]
        fig = plots.relation_figure(own, result.by, shown, categorical=not numeric,
                                    title=f"{sub} {kind} {rep}: against {result.by}")  # fmt: skip
        if numeric and result.by == "n_params":
            for ax in fig.axes:
                ax.set_xscale("log")
        key = f"{sub}-{kind}-{rep}"
        figures[f"{sub}, {kind} directions, {rep}"] = plots.save(
            fig, out_dir / "figures" / f"against-{key}.png"
        )
    first = result.rows[0]
    matrix = distance_matrix(result.loaded, first["direction"], first["representation"],
                             first["subspace"])  # fmt: skip
    distance_rows = []
    if len(matrix["names"]) >= 2:
        names = matrix["names"]
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i < j:
                    distance_rows.append({"run_a": a, "run_b": b,
                                          "bottleneck": matrix["bottleneck"][i, j],
                                          "bottleneck_normalized":
                                          matrix["bottleneck_normalized"][i, j]})  # fmt: skip
        paths["distances"] = write_csv(out_dir / "distances.csv", distance_rows)
        fig = plots.distance_matrix_figure(
            matrix["bottleneck_normalized"], names,
            title=f"bottleneck distance, range-normalized ({first['subspace']} "
            f"{first['direction']} {first['representation']})",
        )  # fmt: skip
        figures["pairwise distances between the runs' diagrams"] = plots.save(
            fig, out_dir / "figures" / "distances.png"
        )
    cols = ["subspace", "direction", "representation", "x", "y", "n", "n_seeds", "spearman",
            "spearman_ci_low", "spearman_ci_high", "spearman_p", "spearman_p_holm", "pearson",
            "pearson_p", "verdict", "interval", "note"]  # fmt: skip
    law_cols = ["subspace", "direction", "representation", "metric", "fit", "n", "a", "alpha",
                "alpha_ci_low", "alpha_ci_high", "c", "rms_residual", "sizes", "note"]  # fmt: skip
    defined = [r for r in result.relations if math.isfinite(_number(r.get("spearman")))]
    undefined = undefined_summary(result.relations)
    warn = "".join(f"<p class='note'><b>warning:</b> {escape(w)}</p>" for w in result.warnings)
    intro = f"<p class='result'>{escape(summary_sentence(result, constant))}</p>" + warn
    constant_note = ""
    if constant:
        listed = ", ".join(f"{m} = {fmt(v)}" for m, v in constant.items())
        constant_note = (f"<p class='note'><b>The same in every run</b> (not drawn, not "
                         f"related): {escape(listed)}.</p>")  # fmt: skip
    sections = [
        ("Relations", constant_note + "<p class='note'>Spearman's rho and Pearson's r over runs "
         "with 95% Fisher-z intervals (widened by the spread over direction seeds where a run "
         "has several) and permutation p-values; <code>spearman_p_holm</code> is adjusted "
         "over the whole table (every relation here is exploratory: nothing was pre-stated); "
         "<code>verdict</code> says what the numbers allow. compare.csv has every column.</p>"
         + figures_and_table(figures, defined, cols)
         + (f"<p class='note'>{escape(undefined)}</p>" if undefined else "")),
        ("Power laws against the parameter count", "<p class='note'>L(N) = a N^-alpha + c "
         "of each run's mean over seeds (c fitted from four distinct sizes).</p>"
         + figures_and_table({}, result.power_laws, law_cols)),
    ]  # fmt: skip
    nested = [r for r in result.summary if r.get("n_train_seeds", 1) > 1]
    if nested:
        shown = [m for m in metrics_for("compare_figure") if any(f"{m}_mean" in r
                 for r in nested)]  # fmt: skip
        scols = ["subspace", "model", "direction", "representation", "n_train_seeds",
                 "n_seeds"]  # fmt: skip
        for m in shown:
            scols += [f"{m}_mean", f"{m}_ci_low", f"{m}_ci_high", f"{m}_share_training"]
        sections.insert(1, ("Over training seeds", "<p class='note'>Runs named "
            "<code>&lt;configuration&gt;-seed&lt;N&gt;</code> are training runs of one "
            "configuration: its mean with a 95% two-stage bootstrap interval (training runs, "
            "then direction seeds within each) and <code>_share_training</code>, the share of "
            "one measurement's variance that comes from the training run (the rest is the "
            "direction seeds'). In the relations each run is one observation. summary.csv "
            "has every metric.</p>" + figures_and_table({}, nested, scols)))  # fmt: skip
    text = page(title or "saddles compare", sections, intro=intro)
    paths["report"] = atomic_write_text(out_dir / "report.html", text)
    return paths


def constant_metrics(rows: list[dict[str, Any]], metrics: list[str]) -> dict[str, float]:
    """The metrics of ``metrics`` that have one finite value in every row that has one (and
    at least one row): name -> that value. Such a metric is said once, not drawn."""
    out = {}
    for m in metrics:
        values = {_number(r.get(m)) for r in rows}
        values = {v for v in values if math.isfinite(v)}
        if len(values) == 1:
            out[m] = values.pop()
    return out


def summary_sentence(result: Comparison, constant: dict[str, float]) -> str:
    """The page's first sentence: what was related to what, what never changes, what moved,
    and how many relations are undefined."""
    defined = [r for r in result.relations if math.isfinite(_number(r.get("spearman")))]
    hits = [r for r in defined if r.get("significant")]
    parts = [f"{len(result.runs)} runs ({', '.join(result.runs)}) related to {result.by}: "
             f"{len(defined)} relation{'s' * (len(defined) != 1)} defined, {len(hits)} "
             "significant after Holm's "
             "correction over all of them"]  # fmt: skip
    if hits:
        parts[-1] += " (" + ", ".join(dict.fromkeys(f"{r['x']}" for r in hits[:6])) + ")"
    parts[-1] += "."
    if constant:
        parts.append(f"{len(constant)} metric(s) are the same in every run ("
                     + ", ".join(f"{m} = {fmt(v)}" for m, v in list(constant.items())[:6])
                     + (", ..." if len(constant) > 6 else "") + ").")  # fmt: skip
    n_undefined = len(result.relations) - len(defined)
    if n_undefined:
        parts.append(f"{n_undefined} relations are undefined (see the note under the table).")
    return " ".join(parts)
