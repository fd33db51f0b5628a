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
    """Write ``report.html`` (and one PNG per metric under ``figures/``) for ``"long"`` rows.

    Each metric of :data:`REPORT_METRICS` is drawn against the step, one line per subspace x
    direction kind x representation (the mean over direction seeds; per-checkpoint numbers
    such as the Hessian's, one line); a table gives each line's trend
    (:func:`saddles.runs.relate.trend`: Spearman's rho against the step and the slope per
    e-fold of steps, with bootstrap intervals), then the rows themselves.

    Checkpoints whose weights are byte-identical to another's (``duplicate_of`` in the rows,
    :func:`saddles.io.suite.check_suite`) are drawn but left out of the trends, which would
    otherwise fit one set of weights several times over, unless ``allow_duplicates``.
    """
    import numpy as np

    from saddles.report import plots
    from saddles.report.html import escape, figures_and_table, page
    from saddles.runs.relate import trend

    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    figures, trends, constant = {}, [], {}
    duplicated = {int(r["step"]): r["duplicate_of"] for r in rows if r.get("duplicate_of")}
    copies = set() if allow_duplicates else set(duplicated)
    for metric in REPORT_METRICS:
        values = [float(r[metric]) for r in rows if _finite(r.get(metric))]
        if not values:
            continue
        if max(values) == min(values):  # the same number everywhere: said once, not drawn
            constant[metric] = values[0]
            continue
        whole = lookup(metric).per == "checkpoint"
        groups: dict[tuple[str, int], list[float]] = {}
        for r in rows:
            series = "checkpoint" if whole else (
                f"{r.get('subspace', '')} {r.get('direction', '')} {r.get('representation', '')}"
            ).strip()  # fmt: skip
            if _finite(r.get(metric)):
                groups.setdefault((series, int(r["step"])), []).append(float(r[metric]))
        # Error bars: the SD over direction seeds, or a per-checkpoint number's own standard
        # error where the rows carry one (the Hessian trace's ``hessian_trace_stderr``).
        stderr = {int(r["step"]): float(r[f"{metric}_stderr"]) for r in rows
                  if _finite(r.get(f"{metric}_stderr"))}  # fmt: skip
        points = [{"series": k[0], "step": k[1], metric: float(np.mean(v)),
                   "err": float(np.std(v)) if len(v) > 1 else stderr.get(k[1], math.nan)}
                  for k, v in groups.items()]  # fmt: skip
        fig = plots.dynamics_figure(points, metric, group_key="series", err_key="err",
                                    title=f"{metric} during training")  # fmt: skip
        bars = "standard error" if stderr and whole else "SD over direction seeds"
        figures[f"{metric} against the step (mean; error bars: {bars})"] = plots.save(
            fig, out_dir / "figures" / f"dynamics-{metric}.png"
        )
        for series in dict.fromkeys(p["series"] for p in points):
            sub = sorted((p for p in points if p["series"] == series and p["step"] not in copies),
                         key=lambda p: p["step"])  # fmt: skip
            t = trend([p["step"] for p in sub], [p[metric] for p in sub], n_boot=n_boot)
            trends.append({"metric": metric, "series": series, **t.as_row()})
    steps = sorted({int(r["step"]) for r in rows})
    columns = [c for c in REPORT_COLUMNS if any(c in r for r in rows)]
    trend_cols = ["metric", "series", "n", "spearman", "spearman_ci_low", "spearman_ci_high",
                  "p", "slope_per_log_step", "slope_ci_low", "slope_ci_high", "note"]  # fmt: skip
    intro = f"<p class='result'>{escape(summary_sentence(steps, trends, constant))}</p>"
    facts = {"checkpoints": len(steps), "steps": f"{steps[0]} .. {steps[-1]}" if steps else "",
             **(info or {})}  # fmt: skip
    if duplicated:
        named = ", ".join(f"step {s} = {c}" for s, c in sorted(duplicated.items())[:8])
        facts["duplicated revisions"] = (
            f"{len(duplicated)} ({named}{' ...' if len(duplicated) > 8 else ''}): "
            + ("kept in the trends (allow_duplicates)" if allow_duplicates
               else "left out of the trends")
        )  # fmt: skip
    constant_note = ""
    if constant:
        listed = ", ".join(f"{m} = {fmt(v)}" for m, v in constant.items())
        constant_note = (f"<p class='note'><b>Constant at every checkpoint</b> (not drawn, no "
                         f"trend): {escape(listed)}.</p>")  # fmt: skip
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
    if config:
        sections.append(("Configuration", f"<pre>{escape(yaml.safe_dump(config))}</pre>"))
    return atomic_write_text(
        out_dir / "report.html", page(title, sections, facts=facts, intro=intro)
    )


def summary_sentence(steps: list[int], trends: list[dict[str, Any]],
                     constant: dict[str, float]) -> str:  # fmt: skip
    """The report's first sentence: how many checkpoints, which metrics never change, and
    which lines move with the step (a trend whose rho interval excludes 0)."""
    span = f"steps {steps[0]}..{steps[-1]}" if steps else "no steps"
    moving = [t for t in trends if math.isfinite(t["spearman_ci_low"])
              and (t["spearman_ci_low"] > 0 or t["spearman_ci_high"] < 0)]  # fmt: skip
    parts = [f"{len(steps)} checkpoints ({span})."]
    if constant:
        parts.append(f"{len(constant)} metric(s) are the same at every checkpoint ("
                     + ", ".join(f"{m} = {fmt(v)}" for m, v in list(constant.items())[:6])
                     + (", ..." if len(constant) > 6 else "") + ").")  # fmt: skip
    if moving:
        named = ", ".join(f"{t['metric']} ({t['series']}) "
                          f"{'rises' if t['spearman'] > 0 else 'falls'}"
                          for t in moving[:6])  # fmt: skip
        parts.append(
            f"{len(moving)} of {len(trends)} lines move with the step (rho interval "
            f"excludes 0): {named}{', ...' if len(moving) > 6 else ''}."
        )
    else:
        parts.append(
            f"No line drawn ({len(trends)} line{'s' * (len(trends) != 1)}) moves with the "
            "step beyond its interval."
        )
    return " ".join(parts)


def _finite(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and v == v and abs(v) != float("inf"))  # fmt: skip
