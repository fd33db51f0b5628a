"""The one row layout of results, and the tables derived from it.

Every number an analysis produces is one **number row** (the long layout): the key columns
that say where it was measured (:data:`KEYS`: run, checkpoint, step, subspace, model,
direction kind, direction seed, sweep span (``sweep_span``: the span of a span sweep, empty on
the scale summaries' rows; named apart from a quality a caller may call ``span``),
representation; those that apply) and ``metric`` and
``value``. The tables users read are views of these rows:

- **plane rows** (:func:`to_planes`): one row per plane (direction seed x direction kind x
  representation, per subspace and checkpoint), a column per metric: ``metrics.csv`` of
  ``saddles run``, :meth:`saddles.runs.analyze.Analysis.rows`, the ``"long"`` ``dynamics.csv``.
  :func:`to_numbers` goes back; the two are inverse (tested).
- **checkpoint rows** (:func:`checkpoint_columns`): one row per checkpoint with a column
  ``<subspace>.<representation>.<metric>`` (``<subspace>.<kind>.<representation>.<metric>``
  when a subspace has several direction kinds) per metric of the registry's ``wide`` view,
  from each kind's shown plane: the ``"wide"`` ``dynamics.csv``. In a span sweep the
  representation is followed by ``@<span tag>`` (``grid-full@0p316``; no tag on the scale
  summaries), the tag having no dots (:func:`saddles.landscape.scales.span_tag`).
  :func:`planes_from_checkpoints` reads such rows back into plane rows (the Hessian's
  ``top_eigenvalue``, ``trace``, ``trace_stderr`` as ``hessian_*``).

Plain Python; never imports numpy or torch.
"""

from __future__ import annotations

import math
from typing import Any

#: Columns that say where a number was measured, in the order number rows give them.
KEYS = ("run", "checkpoint", "step", "subspace", "model", "direction", "direction_seed",
        "sweep_span", "representation")  # fmt: skip
#: The columns of a number row.
NUMBER_COLUMNS = (*KEYS, "metric", "value")
#: Key columns of an analysis' plane rows, in the order ``metrics.csv`` gives them.
PLANE_KEYS = ("model", "direction", "representation", "direction_seed", "sweep_span")
#: Per-checkpoint Hessian numbers of a checkpoint row, named without the ``hessian_`` prefix.
CHECKPOINT_CURVATURE = ("top_eigenvalue", "bottom_eigenvalue", "trace", "trace_stderr")


def to_numbers(planes: list[dict[str, Any]], keys: tuple[str, ...] = KEYS) -> list[dict]:
    """Plane rows -> number rows: every column not in ``keys`` becomes one row with the key
    columns the plane row has (in the plane row's column order), ``metric`` and ``value``."""
    out = []
    for row in planes:
        where = {k: v for k, v in row.items() if k in keys}
        out.extend({**where, "metric": name, "value": value}
                   for name, value in row.items() if name not in keys)  # fmt: skip
    return out


def to_planes(numbers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number rows -> plane rows: one per distinct set of key values (in order of first
    appearance), the key columns first (as the number rows give them), then a column per
    metric (in order of first appearance)."""
    planes: dict[tuple, dict[str, Any]] = {}
    for r in numbers:
        where = {k: v for k, v in r.items() if k not in ("metric", "value")}
        row = planes.setdefault(_hashable(where), where)
        row[r["metric"]] = r["value"]
    return list(planes.values())


def wide_name(subspace: str, representation: str, metric: str, direction: str = "") -> str:
    """A checkpoint row's column: ``<subspace>[.<direction>].<representation>.<metric>``."""
    return ".".join(p for p in (subspace, direction, representation, metric) if p)


def checkpoint_columns(
    planes: list[dict[str, Any]], subspace: str, metrics: list[str], shown_seed: Any
) -> dict[str, Any]:
    """The checkpoint row's columns of one subspace from its plane rows: ``metrics`` of each
    direction kind x representation's shown plane (direction seed ``shown_seed``, or the
    deterministic kinds' only plane), named by :func:`wide_name` (with the kind when the
    subspace has several)."""
    shown = [r for r in planes if r.get("direction_seed") in ("", None, shown_seed)]
    several = len({r.get("direction", "") for r in shown}) > 1
    out = {}
    for r in shown:
        kind = r["direction"] if several else ""
        rep = r["representation"]
        if r.get("sweep_span") not in ("", None):
            rep = f"{rep}@{_span_tag(r['sweep_span'])}"
        for m in metrics:
            if m in r:
                out[wide_name(subspace, rep, m, kind)] = r[m]
    return out


def planes_from_checkpoints(wide: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checkpoint rows (``"wide"`` ``dynamics.csv``) -> plane rows, one per checkpoint x
    subspace x direction kind x representation: the row's plain columns, its Hessian numbers
    as ``hessian_*``, ``subspace``, ``representation``, ``direction`` (when the column names
    it), an empty ``direction_seed``, and the metrics."""
    out = []
    for row in wide:
        plain = {k: v for k, v in row.items() if "." not in k}
        curvature = {f"hessian_{k}": v for k, v in plain.items() if k in CHECKPOINT_CURVATURE}
        series: dict[tuple, dict[str, Any]] = {}
        for key, value in row.items():
            parts = key.split(".")
            if len(parts) == 3:
                sub, rep, metric = parts
                kind = None
            elif len(parts) == 4:
                sub, kind, rep, metric = parts
            else:
                continue
            entry = series.setdefault((sub, kind, rep), {**plain, **curvature, "subspace": sub,
                                                         "representation": rep,
                                                         "direction_seed": ""})  # fmt: skip
            if kind is not None:
                entry["direction"] = kind
            if "@" in rep:  # a span sweep's column (see checkpoint_columns)
                entry["representation"], tag = rep.split("@", 1)
                entry["sweep_span"] = float(tag.replace("p", "."))
            entry[metric] = value
        out.extend(series.values())
    return out


def as_number(value: Any) -> float:
    """A row's value as a float: NaN for a bool, text that is no number, or None (a CSV's
    cells are text; a flag is not a measurement)."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _span_tag(span: Any) -> str:
    """:func:`saddles.landscape.scales.span_tag`, restated: this module imports no numpy."""
    return f"{float(span):g}".replace(".", "p")


def _hashable(where: dict[str, Any]) -> tuple:
    return tuple((k, repr(v)) for k, v in where.items())
