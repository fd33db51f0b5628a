"""The dynamics page: every metric of a training run against the step (``report.html``).

Reads the long rows :func:`saddles.runs.series.analyze_checkpoints` writes; the metrics come
from :mod:`saddles.runs.registry`, the trends from :mod:`saddles.runs.relate`, the page from
:func:`saddles.report.html.page`. Never imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from saddles.files import atomic_write_text
from saddles.report import spans
from saddles.report.html import fmt
from saddles.runs.registry import lookup, metrics_for

#: Metrics drawn against the step by :func:`dynamics_report` (those present in the rows; the
#: registry's ``dynamics`` view).
REPORT_METRICS = tuple(metrics_for("dynamics"))
#: Columns of the report's table (dynamics.csv has every column).
REPORT_COLUMNS = ("step", "checkpoint", "duplicate_of", "subspace", "direction", "representation",
                  "direction_seed", *metrics_for("dynamics_table"))  # fmt: skip


def dynamics_report(
    rows: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    title: str = "saddles dynamics",
    config: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    n_boot: int = 500,
    allow_duplicates: bool = False,
) -> Path:
    """Write ``report.html`` (and one PNG per metric under ``figures/``) for ``"long"`` rows,
    and ``series.csv``: each line's points (mean, SD and a 95% bootstrap interval over
    direction seeds, :func:`saddles.runs.relate.bootstrap_ci`).

    Each metric of :data:`REPORT_METRICS` is drawn against the step, one line per subspace x
    direction kind x representation (the mean over direction seeds; per-checkpoint numbers
    such as the Hessian's, one line); a table gives each line's trend
    (:func:`saddles.runs.relate.trend`: Spearman's rho against the step and the slope per
    e-fold of steps, with bootstrap intervals), then the rows themselves.

    A span sweep (rows with ``sweep_span``, :mod:`saddles.report.spans`) keeps its spans
    apart: one line per span (``2d random grid-full @ span 0.1``) in one figure per plane,
    each with its trend; a metric that is one number at a span is listed once for those
    spans and not drawn there; the scale summaries (``critical_span``, ``basin_radius``, on
    the rows without a span) are drawn like any metric; a figure per plane draws the main
    topology metrics against the span, one line per checkpoint; and the page opens with
    where, per plane, a saddle stands above the noise floor and where nothing does.

    Checkpoints whose weights are byte-identical to another's (``duplicate_of`` in the rows,
    :func:`saddles.io.suite.check_suite`) are drawn but left out of the trends, which would
    otherwise fit one set of weights several times over, unless ``allow_duplicates``.
    """
    import numpy as np

    from saddles.files import write_csv
    from saddles.report import plots
    from saddles.report.html import escape, figures_and_table, page
    from saddles.runs.relate import bootstrap_ci, trend

    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    figures, trends, constant, points_table = {}, [], {}, []
    swept = spans.is_sweep(rows)
    sampled = sorted({s for s in map(spans.span_of, rows) if s is not None})
    per_span = spans.constant_by_span(rows, list(REPORT_METRICS)) if swept else {}
    constant_spans: dict[str, dict[float | None, float]] = {}
    duplicated = {int(r["step"]): r["duplicate_of"] for r in rows if r.get("duplicate_of")}
    copies = set() if allow_duplicates else set(duplicated)
    for metric in REPORT_METRICS:
        values = [float(r[metric]) for r in rows if _finite(r.get(metric))]
        if not values:
            continue
        # In a sweep a NaN says something (a critical span NaN: no feature above the noise),
        # so a metric NaN on some rows is not constant there.
        nan = swept and any(_nan(r.get(metric)) for r in rows)
        if max(values) == min(values) and not nan:  # the same everywhere: said once, not drawn
            constant[metric] = values[0]
            continue
        whole = lookup(metric).per == "checkpoint"
        # In a sweep, the spans at which this metric is one number: said once, not drawn.
        flat = {} if whole else {s: v for s, v in per_span.get(metric, {}).items()
                                 if s is not None}  # fmt: skip
        if flat:
            constant_spans[metric] = flat
        groups: dict[tuple[str, int], list[float]] = {}
        planes: dict[str, tuple[tuple[str, str, str], str]] = {}  # series -> (plane, span)
        for r in rows:
            if not _finite(r.get(metric)):
                continue
            if whole:
                series = "checkpoint"
            elif swept:
                span = spans.span_of(r)
                if span in flat:
                    continue
                series = spans.plane_label(spans.plane_of(r), span)
                planes[series] = (spans.plane_of(r), "sweep" if span is None else f"{span:g}")
            else:
                series = (f"{r.get('subspace', '')} {r.get('direction', '')} "
                          f"{r.get('representation', '')}").strip()  # fmt: skip
            groups.setdefault((series, int(r["step"])), []).append(float(r[metric]))
        if whole:  # one number per checkpoint, repeated on its rows: counted once
            groups = {k: list(dict.fromkeys(v)) for k, v in groups.items()}
        # Error bars: the SD over direction seeds, or a per-checkpoint number's own standard
        # error where the rows carry one (the Hessian trace's ``hessian_trace_stderr``).
        stderr = {int(r["step"]): float(r[f"{metric}_stderr"]) for r in rows
                  if _finite(r.get(f"{metric}_stderr"))}  # fmt: skip
        points = [{"series": k[0], "step": k[1], metric: float(np.mean(v)),
                   "err": float(np.std(v, ddof=1)) if len(v) > 1 else stderr.get(k[1], math.nan)}
                  for k, v in groups.items()]  # fmt: skip
        bars = "standard error" if stderr and whole else "SD over direction seeds"
        if swept and not whole:  # one figure per plane, one line per span
            for plane in dict.fromkeys(p for p, _ in planes.values()):
                own = [{**p, "span": planes[p["series"]][1]} for p in points
                       if planes[p["series"]][0] == plane]  # fmt: skip
                label = spans.plane_label(plane)
                fig = plots.dynamics_figure(own, metric, group_key="span", err_key="err",
                                            title=f"{metric} during training: {label}")  # fmt: skip
                key = "-".join(p for p in (metric, *plane) if p)
                figures[f"{metric} against the step, {label}, one line per span (mean; "
                        f"error bars: {bars})"] = plots.save(
                    fig, out_dir / "figures" / f"dynamics-{key}.png"
                )  # fmt: skip
        else:
            fig = plots.dynamics_figure(points, metric, group_key="series", err_key="err",
                                        title=f"{metric} during training")  # fmt: skip
            figures[f"{metric} against the step (mean; error bars: {bars})"] = plots.save(
                fig, out_dir / "figures" / f"dynamics-{metric}.png"
            )
        for series in dict.fromkeys(p["series"] for p in points):
            sub = sorted((p for p in points if p["series"] == series and p["step"] not in copies),
                         key=lambda p: p["step"])  # fmt: skip
            t = trend([p["step"] for p in sub], [p[metric] for p in sub], n_boot=n_boot)
            trends.append({"metric": metric, "series": series, **t.as_row()})
        for (series, step), v in groups.items():
            b = bootstrap_ci(np.array(v), np.mean, n_boot=n_boot, seed=0)
            points_table.append({"metric": metric, "series": series, "step": step,
                                 "n": len(v), "mean": b.estimate,
                                 "sd": float(np.std(v, ddof=1)) if len(v) > 1 else math.nan,
                                 "ci_low": b.ci[0], "ci_high": b.ci[1]})  # fmt: skip
    if points_table:
        write_csv(out_dir / "series.csv", points_table)
    span_figures = _span_figures(rows, out_dir, plots) if swept else {}
    steps = sorted({int(r["step"]) for r in rows})
    columns = [c for c in REPORT_COLUMNS if any(c in r for r in rows)]
    if swept:  # the span beside the plane
        at = columns.index("representation") + 1 if "representation" in columns else 0
        columns.insert(at, "sweep_span")
    trend_cols = ["metric", "series", "n", "spearman", "spearman_ci_low", "spearman_ci_high",
                  "p", "slope_per_log_step", "slope_ci_low", "slope_ci_high", "note"]  # fmt: skip
    sentence = summary_sentence(steps, trends, constant, noise=spans.noise_sentence(rows),
                                sampled=sampled, constant_spans=constant_spans)  # fmt: skip
    intro = f"<p class='result'>{escape(sentence)}</p>"
    facts = {"checkpoints": len(steps), "steps": f"{steps[0]} .. {steps[-1]}" if steps else "",
             **(info or {})}  # fmt: skip
    if swept:
        facts["spans"] = spans.spans_text(sampled, sampled)
    if duplicated:
        named = ", ".join(f"step {s} = {c}" for s, c in sorted(duplicated.items())[:8])
        facts["duplicated revisions"] = (
            f"{len(duplicated)} ({named}{' ...' if len(duplicated) > 8 else ''}): "
            + ("kept in the trends (allow_duplicates)" if allow_duplicates
               else "left out of the trends")
        )  # fmt: skip
    constant_note = spans.constants_note(constant, constant_spans, sampled,
                                         "Constant at every checkpoint", "not drawn, no trend",
                                         "not drawn there, no trend")  # fmt: skip
    sections = [
        ("Metrics against the training step",
         constant_note + figures_and_table(figures, trends, trend_cols)
         + "<p class='note'>Trend: Spearman's rho of each line against the step (95% Fisher-z "
         "interval, permutation p) and the least-squares slope per e-fold of steps (95% "
         "bootstrap interval); step 0 has no logarithm and is left out of the trend, but it "
         "is drawn (the step axis is symmetric-log: linear below 1). Intervals are NaN below "
         "4 checkpoints.</p>"),
        ("Every row",
         figures_and_table({}, rows, columns)
         + "<p class='note'>dynamics.csv has every column.</p>"),
    ]  # fmt: skip
    if span_figures:
        from saddles.report.html import figures as embed

        sections.insert(1, ("Metrics against the span", embed(span_figures, wide=True)
            + "<p class='note'>Each plane's main topology metrics at every span of the "
            "sweep, one line per checkpoint (coloured by step, early dark to late light); "
            f"error bars: SD over direction seeds. A saddle is above the noise when its "
            f"persistence is at least twice the noise floor ({spans.ABOVE_NOISE}). "
            "series.csv has every line's points with 95% intervals.</p>"))  # fmt: skip
    if config:
        sections.append(("Configuration", f"<pre>{escape(yaml.safe_dump(config))}</pre>"))
    return atomic_write_text(
        out_dir / "report.html", page(title, sections, facts=facts, intro=intro)
    )


def _span_figures(rows: list[dict[str, Any]], out_dir: Path, plots) -> dict[str, Path]:
    """One figure per plane of a sweep: :data:`saddles.report.spans.SPAN_METRICS` against
    the span, one line per checkpoint (metrics one number over the whole plane left out)."""
    out = {}
    for plane in dict.fromkeys(spans.plane_of(r) for r in rows if spans.span_of(r) is not None):
        own = [r for r in rows if spans.plane_of(r) == plane and spans.span_of(r) is not None]
        metrics = [m for m in spans.SPAN_METRICS
                   if len({float(r[m]) for r in own if _finite(r.get(m))}) > 1]  # fmt: skip
        if not metrics:
            continue
        label = spans.plane_label(plane)
        fig = plots.span_figure(spans.span_points(own, metrics, "step"), metrics, "step",
                                title=f"{label}: metrics against the span",
                                line_label="step")  # fmt: skip
        key = "-".join(p for p in plane if p)
        out[f"{label}: metrics against the span, one line per checkpoint"] = plots.save(
            fig, out_dir / "figures" / f"spans-{key}.png"
        )
    return out


def summary_sentence(steps: list[int], trends: list[dict[str, Any]],
                     constant: dict[str, float], *, noise: str = "",
                     sampled: list[float] | None = None,
                     constant_spans: dict[str, dict] | None = None) -> str:  # fmt: skip
    """The report's first sentence: in a span sweep, where a feature stands above the noise
    (``noise``, :func:`saddles.report.spans.noise_sentence`) and which spans were sampled;
    then how many checkpoints, which metrics never change (in a sweep, at which spans), and
    which lines move with the step (a trend whose rho interval excludes 0)."""
    from saddles.report.spans import constants_text, spans_text

    span = f"steps {steps[0]}..{steps[-1]}" if steps else "no steps"
    moving = [t for t in trends if math.isfinite(t["spearman_ci_low"])
              and (t["spearman_ci_low"] > 0 or t["spearman_ci_high"] < 0)]  # fmt: skip
    parts = [noise] if noise else []
    where = f" at {len(sampled)} spans ({spans_text(sampled, sampled)})" if sampled else ""
    parts.append(f"{len(steps)} checkpoints ({span}){where}.")
    if constant:
        parts.append(f"{len(constant)} metric(s) are the same at every checkpoint ("
                     + ", ".join(f"{m} = {fmt(v)}" for m, v in list(constant.items())[:6])
                     + (", ..." if len(constant) > 6 else "") + ").")  # fmt: skip
    if constant_spans:
        parts.append(f"The same at every checkpoint at some spans: "
                     f"{constants_text(constant_spans, sampled or [])}.")  # fmt: skip
    if moving:
        named = ", ".join(f"{t['metric']} ({t['series']}) "
                          f"{'rises' if t['spearman'] > 0 else 'falls'}"
                          for t in moving[:6])  # fmt: skip
        parts.append(
            f"{len(moving)} of {len(trends)} lines move with the step (rho interval "
            f"excludes 0, not adjusted for the {len(trends)} lines): {named}"
            f"{', ...' if len(moving) > 6 else ''}."
        )
    else:
        parts.append(
            f"No line drawn ({len(trends)} line{'s' * (len(trends) != 1)}) moves with the "
            "step beyond its interval."
        )
    return " ".join(parts)


def _nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _finite(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and v == v and abs(v) != float("inf"))  # fmt: skip
