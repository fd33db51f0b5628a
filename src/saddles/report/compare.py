"""The compare page: finished runs related to a size or setting (``report.html`` and CSVs).

Writes what :func:`saddles.runs.compare.compare_runs` computed; never imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from saddles.files import atomic_write_text, write_csv
from saddles.report import spans
from saddles.report.html import fmt
from saddles.runs.compare import Comparison, distance_matrix
from saddles.runs.registry import metrics_for
from saddles.runs.relate import undefined_summary
from saddles.runs.rows import as_number as _number


def write_comparison(result: Comparison, out_dir: str | Path, title: str = "") -> dict[str, Path]:
    """``compare.csv`` (the relations), ``power_laws.csv``, ``runs.csv`` (the rows used),
    ``summary.csv`` (per configuration, over training seeds, then direction seeds),
    figures of the headline metrics against ``by``, and ``report.html``."""
    from saddles.report import plots
    from saddles.report.html import escape, figures_and_table, page, table
    from saddles.report.html import figures as embed

    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    paths = {"compare": write_csv(out_dir / "compare.csv", result.relations),
             "power_laws": write_csv(out_dir / "power_laws.csv", result.power_laws),
             "runs": write_csv(out_dir / "runs.csv", result.rows)}  # fmt: skip
    if result.summary:
        paths["summary"] = write_csv(out_dir / "summary.csv", result.summary)
    figures = {}
    swept = spans.is_sweep(result.rows)
    constant = constant_metrics(result.rows, metrics_for("compare_figure"))
    shown = [m for m in metrics_for("compare_figure")
             if any(m in r for r in result.rows) and m not in constant]  # fmt: skip
    numeric = all(math.isfinite(_number(r.get(result.by))) for r in result.rows)
    series = dict.fromkeys(spans.plane_of(r) for r in result.rows) if shown else {}
    for plane in series:
        sub, kind, rep = plane
        # a sweep's rows of one span each: against `by` here only the scale summaries (the
        # spans' metrics are drawn against the span below, one line per configuration)
        own = [r for r in result.rows if spans.plane_of(r) == plane
               and (not swept or spans.span_of(r) is None)]  # fmt: skip
        drawn = [m for m in shown if any(math.isfinite(_number(r.get(m))) for r in own)]
        if not drawn:
            continue
        fig = plots.relation_figure(own, result.by, drawn, categorical=not numeric,
                                    title=f"{sub} {kind} {rep}: against {result.by}")  # fmt: skip
        if numeric and result.by == "n_params":
            for ax in fig.axes:
                if ax.get_visible():
                    ax.set_xscale("log")
        key = f"{sub}-{kind}-{rep}"
        what = " (the sweep's scale summaries)" if swept else ""
        figures[f"{sub}, {kind} directions, {rep}{what}"] = plots.save(
            fig, out_dir / "figures" / f"against-{key}.png"
        )
    span_figures = _span_figures(result, out_dir) if swept else {}
    sampled = sorted({s for s in map(spans.span_of, result.rows) if s is not None})
    constant_spans = {}
    if swept:
        per_span = spans.constant_by_span(result.rows, metrics_for("compare_figure"))
        constant_spans = {m: {s: v for s, v in by.items() if s is not None}
                          for m, by in per_span.items() if m not in constant}  # fmt: skip
        constant_spans = {m: by for m, by in constant_spans.items() if by}
    first = result.rows[0]
    distance_rows, distances = [], {}
    # a sweep: the diagrams of each span apart (the plane's pairs file holds its middle span)
    for span in sampled if swept else [None]:
        matrix = distance_matrix(result.loaded, first["direction"], first["representation"],
                                 first["subspace"], span)  # fmt: skip
        if len(matrix["names"]) < 2:
            continue
        names = matrix["names"]
        where = {} if span is None else {"sweep_span": span}
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i < j:
                    distance_rows.append({**where, "run_a": a, "run_b": b,
                                          "bottleneck": matrix["bottleneck"][i, j],
                                          "bottleneck_normalized":
                                          matrix["bottleneck_normalized"][i, j]})  # fmt: skip
        at = "" if span is None else f" at span {span:g}"
        fig = plots.distance_matrix_figure(
            matrix["bottleneck_normalized"], names,
            title=f"bottleneck distance, range-normalized ({first['subspace']} "
            f"{first['direction']} {first['representation']}{at})",
        )  # fmt: skip
        stem = "distances" if span is None else f"distances-span{span:g}".replace(".", "p")
        distances[f"pairwise distances between the runs' diagrams{at}"] = plots.save(
            fig, out_dir / "figures" / f"{stem}.png"
        )
    if distance_rows:
        paths["distances"] = write_csv(out_dir / "distances.csv", distance_rows)
    cols = ["subspace", "direction", "representation", *(["sweep_span"] if swept else []),
            "x", "y", "n", "n_seeds", "spearman",
            "spearman_ci_low", "spearman_ci_high", "spearman_p", "spearman_p_holm", "pearson",
            "pearson_p", "verdict", "interval", "note"]  # fmt: skip
    law_cols = ["subspace", "direction", "representation", *(["sweep_span"] if swept else []),
                "metric", "fit", "n", "a", "alpha",
                "alpha_ci_low", "alpha_ci_high", "c", "rms_residual", "sizes", "note"]  # fmt: skip
    defined = [r for r in result.relations if math.isfinite(_number(r.get("spearman")))]
    undefined = undefined_summary(result.relations)
    warn = "".join(f"<p class='note'><b>warning:</b> {escape(w)}</p>" for w in result.warnings)
    sentence = summary_sentence(result, constant)
    if swept:  # where a feature stands above the noise first, then the relations
        sentence = f"{spans.noise_sentence(result.rows, unit='run', unit_key='run')} {sentence}"
    intro = f"<p class='result'>{escape(sentence.strip())}</p>" + warn
    constant_note = spans.constants_note(
        constant, constant_spans, sampled, "The same in every run", "not drawn, not related"
    )
    sections = [
        ("Relations", constant_note + "<p class='note'>Spearman's rho and Pearson's r over runs "
         "with 95% Fisher-z intervals (widened by the spread over direction seeds where a run "
         "has several) and permutation p-values; <code>spearman_p_holm</code> is adjusted "
         "over the whole table (every relation here is exploratory: nothing was pre-stated); "
         "<code>verdict</code> says what the numbers allow. compare.csv has every column.</p>"
         + embed(figures, wide=True) + embed(distances) + table(defined, cols)
         + (f"<p class='note'>{escape(undefined)}</p>" if undefined else "")),
        ("Power laws against the parameter count", "<p class='note'>L(N) = a N^-alpha + c "
         "of each run's mean over seeds (c fitted from four distinct sizes).</p>"
         + figures_and_table({}, result.power_laws, law_cols)),
    ]  # fmt: skip
    nested = [r for r in result.summary if r.get("n_train_seeds", 1) > 1]
    if nested:
        shown = [m for m in metrics_for("compare_figure") if any(f"{m}_mean" in r
                 for r in nested)]  # fmt: skip
        scols = ["subspace", "model", "direction", "representation",
                 *(["sweep_span"] if swept else []), "n_train_seeds", "n_seeds"]  # fmt: skip
        for m in shown:
            scols += [f"{m}_mean", f"{m}_ci_low", f"{m}_ci_high", f"{m}_share_training"]
        sections.insert(1, ("Over training seeds", "<p class='note'>Runs named "
            "<code>&lt;configuration&gt;-seed&lt;N&gt;</code> are training runs of one "
            "configuration: its mean with a 95% two-stage bootstrap interval (training runs, "
            "then direction seeds within each) and <code>_share_training</code>, the share of "
            "one measurement's variance that comes from the training run (the rest is the "
            "direction seeds'). In the relations each run is one observation. summary.csv "
            "has every metric.</p>" + figures_and_table({}, nested, scols)))  # fmt: skip
    if span_figures:
        sections.insert(1, ("Metrics against the span", embed(span_figures, wide=True)
            + "<p class='note'>Each plane's main topology metrics at every span of the "
            "sweep, one line per configuration (runs named <code>&lt;configuration&gt;-seed"
            "&lt;N&gt;</code> are one configuration): its mean with a 95% bootstrap interval "
            "over training runs, then direction seeds (summary.csv). A saddle is above the "
            "noise when its persistence is at least twice the noise floor "
            f"({spans.ABOVE_NOISE}).</p>"))  # fmt: skip
    text = page(title or "saddles compare", sections, intro=intro)
    paths["report"] = atomic_write_text(out_dir / "report.html", text)
    return paths


def _span_figures(result: Comparison, out_dir: Path) -> dict[str, Path]:
    """One figure per plane of a sweep: :data:`saddles.report.spans.SPAN_METRICS` against
    the span, one line per configuration at its mean and 95% interval (the comparison's
    summary: over training runs, then direction seeds); metrics one number over the plane
    left out."""
    from saddles.report import plots

    out = {}
    rows = [r for r in result.summary if spans.span_of(r) is not None]
    for plane in dict.fromkeys(spans.plane_of(r) for r in rows):
        own = [r for r in rows if spans.plane_of(r) == plane]
        metrics = [m for m in spans.SPAN_METRICS
                   if len({v for r in own if math.isfinite(v := _number(r.get(f"{m}_mean")))})
                   > 1]  # fmt: skip
        if not metrics:
            continue
        points = [{"model": r["model"], "span": spans.span_of(r),
                   **{k: _number(r.get(f"{m}_{stat}")) for m in metrics
                      for k, stat in ((m, "mean"), (f"{m}_low", "ci_low"),
                                      (f"{m}_high", "ci_high"))}}
                  for r in own]  # fmt: skip
        label = spans.plane_label(plane)
        fig = plots.span_figure(points, metrics, "model",
                                title=f"{label}: metrics against the span")  # fmt: skip
        key = "-".join(p for p in plane if p)
        out[f"{label}: metrics against the span, one line per configuration"] = plots.save(
            fig, out_dir / "figures" / f"spans-{key}.png"
        )
    return out


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
