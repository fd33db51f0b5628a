"""What the dynamics and compare pages say about a span sweep (``span: [..]`` or ``"auto"``).

A sweep samples every plane at several spans (:mod:`saddles.landscape.scales`): its rows carry
the span as ``sweep_span``, and the plane's scale summaries (``critical_span``,
``basin_radius``) sit on rows whose ``sweep_span`` is empty. The pages keep the spans apart:
:func:`span_of` reads a row's span, :func:`plane_label` names a plane (subspace, direction
kind, representation) and, with a span, the series of one span; :func:`constant_by_span`
finds the metrics that are one number at a span (said once, not drawn); and
:func:`noise_sentence` says, per plane, at which spans a feature stands above the noise floor
in some unit (checkpoint or run) and at which spans nothing does in any.

A feature above the noise is a saddle/minimum pair whose persistence is at least twice the
noise floor: ``n_saddles_above_noise`` > 0, the count :func:`saddles.landscape.scales.critical_span`
reads (``n_minima_above_noise`` is at least 1 wherever it is measured: the global minimum).

Plain Python; never imports numpy or torch.
"""

from __future__ import annotations

import math
from typing import Any

from saddles.runs.rows import as_number as _number

#: The count that says whether a feature stands above the noise floor (see the docstring).
ABOVE_NOISE = "n_saddles_above_noise"
#: Metrics drawn against the span (x: span, one line per checkpoint or run).
SPAN_METRICS = ("n_saddles", "n_saddles_above_noise", "average_persistence",
                "average_persistence_relative")  # fmt: skip
#: How the pages name a floor of ``noise_floor_source``.
FLOOR_NAMES = {"batch": "batch floor", "arithmetic": "arithmetic floor"}


def span_of(row: dict[str, Any]) -> float | None:
    """The row's span in a sweep, or None (a single-span row, or a sweep's scale summary)."""
    v = row.get("sweep_span")
    if v in (None, "") or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def is_sweep(rows: list[dict[str, Any]]) -> bool:
    """Whether the rows come from a span sweep (some row has a span)."""
    return any(span_of(r) is not None for r in rows)


def plane_of(row: dict[str, Any]) -> tuple[str, str, str]:
    """``(subspace, direction kind, representation)`` of a row."""
    return (str(row.get("subspace", "")), str(row.get("direction", "")),
            str(row.get("representation", "")))  # fmt: skip


def plane_label(plane: tuple[str, str, str], span: float | None = None) -> str:
    """``"2d random grid-full"``, and ``"2d random grid-full @ span 0.1"`` for one span."""
    label = " ".join(p for p in plane if p)
    return label if span is None else f"{label} @ span {span:g}"


def spans_text(chosen: list[float], sampled: list[float]) -> str:
    """Spans of ``chosen`` as a reader takes them in: runs of three or more consecutive
    spans of ``sampled`` as ``a to b``, the others listed (``0.003, 0.1 to 1``)."""
    order = sorted(set(sampled))
    picked = sorted(set(chosen))
    runs: list[list[float]] = []
    for s in picked:
        if runs and order.index(s) == order.index(runs[-1][-1]) + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{run[0]:g} to {run[-1]:g}")
        else:
            parts.extend(f"{s:g}" for s in run)
    return ", ".join(parts)


def constant_by_span(
    rows: list[dict[str, Any]], metrics: list[str]
) -> dict[str, dict[float | None, float]]:
    """For each metric of ``metrics``, the spans (None: the scale summaries' rows) at which it
    has one finite value in every row that has one: ``{metric: {span: value}}``; a metric
    that varies at every span is left out."""
    out: dict[str, dict[float | None, float]] = {}
    spans = list(dict.fromkeys(span_of(r) for r in rows))
    for m in metrics:
        for span in spans:
            values = {_number(r.get(m)) for r in rows if span_of(r) == span}
            values = {v for v in values if math.isfinite(v)}
            if len(values) == 1:
                out.setdefault(m, {})[span] = values.pop()
    return out


def constants_text(constant: dict[str, dict[float | None, float]], sampled: list[float]) -> str:
    """``n_saddles = 0 at spans 0.003 to 0.03; basin_radius = 0.5`` (the scale summaries'
    constants carry no span)."""
    parts = []
    for m, by_span in constant.items():
        values = list(dict.fromkeys(by_span.values()))
        for value in values:
            at = [s for s, v in by_span.items() if v == value and s is not None]
            where = f" at span{'s' * (len(at) > 1)} {spans_text(at, sampled)}" if at else ""
            parts.append(f"{m} = {value + 0.0:.4g}{where}")  # + 0.0: no "-0"
    return "; ".join(parts)


def constants_note(
    constant: dict[str, float], constant_spans: dict[str, dict[float | None, float]],
    sampled: list[float], heading: str, why: str, why_at_spans: str = "",
) -> str:  # fmt: skip
    """The page's HTML note on the metrics that are one number: everywhere (``constant``,
    ``<heading> (<why>)``) and at some spans of a sweep (``constant_spans``, ``<heading> at
    some spans`` with ``why_at_spans``); "" when there are none."""
    from saddles.report.html import escape, fmt

    note = ""
    if constant:
        listed = ", ".join(f"{m} = {fmt(v)}" for m, v in constant.items())
        note = f"<p class='note'><b>{heading}</b> ({why}): {escape(listed)}.</p>"
    if constant_spans:
        listed = constants_text(constant_spans, sampled)
        after = f" ({why_at_spans})" if why_at_spans else ""
        note += f"<p class='note'><b>{heading} at some spans</b>{after}: {escape(listed)}.</p>"
    return note


def quiet_spans(
    rows: list[dict[str, Any]], unit_key: str = "step"
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per plane of a sweep whose rows count features above the noise (:data:`ABOVE_NOISE`):
    ``spans`` (every span sampled), ``loud`` (spans where some row counts one or more),
    ``quiet`` (spans where no row does), ``units`` (per loud span, the values of
    ``unit_key``, a checkpoint's ``step`` or a compared ``run``, of the rows that do) and
    ``floors`` (the ``noise_floor_source`` values)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        span = span_of(r)
        count = _number(r.get(ABOVE_NOISE))
        if span is None or not math.isfinite(count):
            continue
        entry = out.setdefault(plane_of(r), {"spans": [], "units": {}, "floors": set()})
        if span not in entry["spans"]:
            entry["spans"].append(span)
        if r.get("noise_floor_source") not in (None, "", "none"):
            entry["floors"].add(str(r["noise_floor_source"]))
        if count > 0:
            entry["units"].setdefault(span, set()).add(r.get(unit_key))
    for entry in out.values():
        entry["spans"].sort()
        entry["loud"] = [s for s in entry["spans"] if s in entry["units"]]
        entry["quiet"] = [s for s in entry["spans"] if s not in entry["units"]]
    return out


def noise_sentence(
    rows: list[dict[str, Any]], unit: str = "checkpoint", unit_key: str = "step"
) -> str:
    """Per plane of a sweep, in one sentence: the spans at which a saddle stands above the
    noise floor (and in how many ``unit``s, the values of ``unit_key``: checkpoints by
    ``step`` or runs by ``run``, at some such span) and the spans at which nothing exceeds it
    in any. Empty for rows of one span or without a noise floor."""
    planes = quiet_spans(rows, unit_key)
    if not planes:
        return ""
    n_units = len({r.get(unit_key) for r in rows if span_of(r) is not None})
    several = len({(p[0], p[2]) for p in planes}) > 1  # name the subspace and representation
    parts = []
    for plane, e in planes.items():
        name = (plane_label(plane) if several else plane[1]) + " plane"
        floor = " or ".join(FLOOR_NAMES.get(f, f) for f in sorted(e["floors"])) or "noise floor"
        if not e["loud"]:
            parts.append(f"{name}: nothing above the noise floor ({floor}) at any span from "
                         f"{e['spans'][0]:g} to {e['spans'][-1]:g}")  # fmt: skip
            continue
        units = set().union(*e["units"].values())
        text = (f"{name}: saddles above the noise floor ({floor}) at "
                f"span{'s' * (len(e['loud']) > 1)} {spans_text(e['loud'], e['spans'])} "
                f"in {len(units)} of {n_units} {unit}s")  # fmt: skip
        if e["quiet"]:
            text += (f"; nothing above it at span{'s' * (len(e['quiet']) > 1)} "
                     f"{spans_text(e['quiet'], e['spans'])}")  # fmt: skip
        parts.append(text)
    return "; ".join(parts) + "."


def span_points(
    rows: list[dict[str, Any]], metrics: list[str], line_key: str
) -> list[dict[str, Any]]:
    """Points of a metric-against-span figure from plane rows of one plane: per ``line_key``
    value (a checkpoint's step) and span, each metric's mean over the rows (direction seeds)
    with ``<metric>_low``/``_high`` at the mean -+ their standard deviation (NaN for one)."""
    groups: dict[tuple[Any, float], list[dict[str, Any]]] = {}
    for r in rows:
        span = span_of(r)
        if span is not None:
            groups.setdefault((r.get(line_key), span), []).append(r)
    points = []
    for (line, span), members in groups.items():
        point: dict[str, Any] = {line_key: line, "span": span}
        for m in metrics:
            values = [_number(r.get(m)) for r in members]
            values = [v for v in values if math.isfinite(v)]
            mean = sum(values) / len(values) if values else math.nan
            sd = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                  if len(values) > 1 else math.nan)  # fmt: skip
            point.update({m: mean, f"{m}_low": mean - sd, f"{m}_high": mean + sd})
        points.append(point)
    return points
