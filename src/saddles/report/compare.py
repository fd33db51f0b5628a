"""The compare page: finished runs related to a size or setting (``report.html`` and CSVs).

Writes what :func:`saddles.runs.compare.compare_runs` computed; never imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path

from saddles.files import atomic_write_text, write_csv
from saddles.runs.compare import Comparison, _number, distance_matrix
from saddles.runs.registry import metrics_for


def write_comparison(result: Comparison, out_dir: str | Path, title: str = "") -> dict[str, Path]:
    """``compare.csv`` (the relations), ``power_laws.csv``, ``runs.csv`` (the rows used),
    figures of the headline metrics against ``by``, and ``report.html``."""
    from saddles.report import plots
    from saddles.report.html import escape, figures_and_table, page

    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    paths = {"compare": write_csv(out_dir / "compare.csv", result.relations),
             "power_laws": write_csv(out_dir / "power_laws.csv", result.power_laws),
             "runs": write_csv(out_dir / "runs.csv", result.rows)}  # fmt: skip
    figures = {}
    shown = [m for m in metrics_for("compare_figure") if any(m in r for r in result.rows)]
    numeric = all(math.isfinite(_number(r.get(result.by))) for r in result.rows)
    for sub, kind, rep in dict.fromkeys((r["subspace"], r["direction"], r["representation"])
                                        for r in result.rows):  # fmt: skip
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
            "pearson_p", "significant", "interval", "note"]  # fmt: skip
    law_cols = ["subspace", "direction", "representation", "metric", "n", "a", "alpha",
                "alpha_ci_low", "alpha_ci_high", "c", "rms_residual", "sizes", "note"]  # fmt: skip
    hits = [r for r in result.relations if r["significant"]]
    warn = "".join(f"<p class='note'><b>warning:</b> {escape(w)}</p>" for w in result.warnings)
    intro = (
        f"<p class='result'>{len(result.runs)} runs ({escape(', '.join(result.runs))}) related "
        f"to <b>{escape(result.by)}</b>: {len(result.relations)} relations, {len(hits)} with a "
        "Holm-adjusted p below 0.05 and a 95% interval that excludes 0.</p>" + warn
    )
    sections = [
        ("Relations", "<p class='note'>Spearman's rho and Pearson's r over runs with 95% "
         "bootstrap intervals (over runs, and over direction seeds within runs where a run "
         "has several) and permutation p-values; <code>spearman_p_holm</code> is adjusted "
         "over the whole table. compare.csv has every column.</p>"
         + figures_and_table(figures, result.relations, cols)),
        ("Power laws against the parameter count", "<p class='note'>L(N) = a N^-alpha + c "
         "of each run's mean over seeds (c fitted from four distinct sizes).</p>"
         + figures_and_table({}, result.power_laws, law_cols)),
    ]  # fmt: skip
    text = page(title or "saddles compare", sections, intro=intro)
    paths["report"] = atomic_write_text(out_dir / "report.html", text)
    return paths
