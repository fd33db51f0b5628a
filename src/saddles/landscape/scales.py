"""Topology across scales: which spans to sample, and two scale summaries of a plane.

A landscape sampled on ``[-span, span]^n`` shows the features of that scale only: too small a
span and the loss is flat within its rounding noise (one basin, or noise), too large and one
bowl swallows every feature. An analysis with ``span`` a list or ``"auto"`` samples each plane
at several spans (:class:`saddles.runs.config.AnalysisConfig`); this module says which spans
``"auto"`` takes and computes the two summaries of a sweep:

- :func:`auto_spans`, the rule of ``span: auto``: the loss is probed at ``+-s`` on each axis
  of the plane for every ``s`` of the half-decade :data:`LADDER` (1e-6, 3.16e-6, ..., 1000;
  the values rounded to three digits so that sweeps of different planes and checkpoints share
  them), and again in float64: a span's noise floor is the largest rounding error
  ``|f32 - f64|`` of the centre and of that span's probes (the arithmetic floor of
  :mod:`saddles.landscape.noise`, per span). The sweep runs from the **flat span**, the
  largest ladder value up to which every probe lies within twice its span's floor of the
  centre loss (the centre and the probe each within one floor of their float64 values),
  to the **risen span**, the first larger ladder value at which some probe has risen by at
  least ``span_rise`` x the centre loss (and by at least 10 noise floors), both included.
- :func:`critical_span`: the smallest span of the sweep at which a feature (a saddle/minimum
  pair) stands above the noise floor (``n_saddles_above_noise`` >= 1); NaN with the reason
  when none does or no floor was measured.
- :func:`basin_radius`: per direction, the distance along ``+-`` that direction at which the
  loss first rises by ``basin_rise`` x the centre loss: the first of the doubling steps
  ``1e-6 x 2^j`` at which it has risen brackets the crossing with the step before, and
  bisection (:data:`BISECTIONS` halvings, every direction and sign in one evaluation each)
  narrows it; a direction's radius is the nearer of its two signs, the plane's the smallest.

Imports torch only through :func:`saddles.landscape.evaluate` (sampling code).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: The spans ``span: auto`` chooses from: half-decades from 1e-6 to 1000, three digits.
LADDER: tuple[float, ...] = tuple(float(f"{10 ** (k / 2):.3g}") for k in range(-12, 7))
#: The basin radius's doubling steps start here and stop at :data:`LADDER`'s last value.
RADIUS_START = 1e-6
#: Halvings of the bracket of each basin radius (relative precision 2^-20).
BISECTIONS = 20
#: The risen span also needs a rise of at least this many noise floors.
RISE_OVER_NOISE = 10.0


def span_tag(span: float) -> str:
    """A span in folder, file and column names: ``0.316`` -> ``0p316`` (no dots, which the
    wide dynamics columns use as separators); :func:`span_from_tag` reads it back."""
    return f"{span:g}".replace(".", "p")


def span_from_tag(tag: str) -> float:
    """The span of a :func:`span_tag`."""
    return float(tag.replace("p", "."))


def axis_points(spans: list[float], n: int) -> np.ndarray:
    """``(2 n len(spans), n)`` points: for each span ``s`` and axis ``i``, ``+s e_i`` then
    ``-s e_i``."""
    out = []
    for s in spans:
        for i in range(n):
            for sign in (1.0, -1.0):
                p = np.zeros(n)
                p[i] = sign * s
                out.append(p)
    return np.asarray(out, dtype=np.float64).reshape(-1, n)


def _loss_at(model, loss, data, directions, points: np.ndarray, options: dict[str, Any]):
    """The landscape (:class:`~saddles.landscape.Landscape`) at ``points``."""
    from saddles.landscape import evaluate
    from saddles.sampling import Coordinates

    coords = Coordinates(np.asarray(points, dtype=np.float64),
                         info={"kind": "points", "n": len(points)})  # fmt: skip
    return evaluate(model, loss, data, directions, coords, progress=False, **options)


def eval_options(config, dtype) -> dict[str, Any]:
    """The :func:`saddles.landscape.evaluate` settings an analysis's landscapes use."""
    return {"engine": config.engine, "chunk_size": config.chunk_size, "device": config.device,
            "dtype": dtype, "params": config.params, "autocast": config.autocast,
            "eval_tokens": config.eval_tokens, "stderr_target": config.stderr_target}  # fmt: skip


def auto_spans(model, loss, data, directions, config, dtype) -> dict[str, Any]:
    """The sweep of ``span: auto`` for one plane (see the module docstring): a record with
    ``spans``, ``flat_span``, ``risen_span``, ``centre_loss``, ``noise_floor``,
    ``threshold``, the ``rule`` in words, ``notes`` (where the ladder ended first) and the
    probes (``probe_spans``, ``probe_rise``: the largest rise over the probes of each span)."""
    import torch

    n = len(directions)
    points = np.vstack([np.zeros((1, n)), axis_points(list(LADDER), n)])
    options = eval_options(config, dtype)
    values = np.asarray(_loss_at(model, loss, data, directions, points, options).loss,
                        dtype=np.float64)  # fmt: skip
    if dtype == torch.float64:  # as saddles.landscape.noise.noise_floor estimates it
        error = 16 * np.finfo(np.float64).eps * np.abs(values)
    else:  # the same points in float64, without autocast: the rounding of each probe
        exact = {**options, "dtype": torch.float64, "autocast": None}
        ref = np.asarray(_loss_at(model, loss, data, directions, points, exact).loss)
        error = np.abs(values - ref)
    error = np.where(np.isfinite(error), error, np.inf)
    centre = float(values[0])
    per = values[1:].reshape(len(LADDER), 2 * n)
    # each span's noise: the largest rounding error of the centre and of its own probes
    floor = np.maximum(error[0], error[1:].reshape(len(LADDER), 2 * n).max(axis=1))
    risen = np.where(np.isfinite(per), per - centre, np.inf)  # a non-finite loss has risen
    spread = np.where(np.isfinite(per), np.abs(per - centre), np.inf).max(axis=1)
    rise = risen.max(axis=1)
    notes = []
    flat = spread <= 2 * floor  # two values, each within one floor of its float64 value
    low = int(np.argmin(flat)) - 1 if not flat.all() else len(LADDER) - 1  # last of the first run
    if low < 0:
        low = 0
        notes.append(f"not flat within the noise floor even at the smallest span {LADDER[0]:g}")
    noise = float(floor[low])
    threshold = max(config.span_rise * abs(centre), RISE_OVER_NOISE * noise)
    up = [i for i in range(low + 1, len(LADDER)) if rise[i] >= threshold]
    high = up[0] if up else len(LADDER) - 1
    if not up:
        notes.append(f"the loss has not risen by {threshold:.3g} up to span {LADDER[-1]:g}")
    return {
        "spans": list(LADDER[low : high + 1]),
        "flat_span": LADDER[low],
        "risen_span": LADDER[high],
        "centre_loss": centre,
        "noise_floor": noise,
        "threshold": threshold,
        "rule": (f"half-decade ladder from the largest span whose axis probes lie within 2 "
                 f"noise floors of the centre loss (float32 against float64) to the first "
                 f"whose probes rise by at least "
                 f"max(span_rise x |centre loss|, {RISE_OVER_NOISE:g} x noise floor); "
                 f"span_rise = {config.span_rise:g}"),
        "notes": notes,
        "probe_spans": list(LADDER),
        "probe_rise": [float(v) for v in rise],
        "probe_floor": [float(v) for v in floor],
    }  # fmt: skip


def critical_span(per_span: list[tuple[float, dict[str, Any]]]) -> tuple[float, str]:
    """The smallest span whose metrics count a saddle above the noise floor
    (``n_saddles_above_noise`` >= 1), and ``""``; or NaN and the reason."""
    ordered = sorted(per_span, key=lambda sm: sm[0])
    if not ordered or not any("n_saddles_above_noise" in m for _, m in ordered):
        return math.nan, "no noise floor measured (noise_points 0 and no batch_floor)"
    for span, metrics in ordered:
        count = metrics.get("n_saddles_above_noise", math.nan)
        if isinstance(count, (int, float)) and count >= 1:
            return float(span), ""
    lo, hi = ordered[0][0], ordered[-1][0]
    return math.nan, (f"no saddle/minimum pair above the noise floor at any span from "
                      f"{lo:g} to {hi:g}")  # fmt: skip


def basin_radius(model, loss, data, directions, config, dtype) -> dict[str, Any]:
    """The basin radius of one plane (see the module docstring): ``basin_radius`` (the
    smallest over the directions), ``basin_radii`` (each direction's, the nearer sign),
    ``basin_radius_reason`` (``""``, or why a value is NaN) and the evaluations spent."""
    n = len(directions)
    options = eval_options(config, dtype)
    centre = float(_loss_at(model, loss, data, directions, np.zeros((1, n)), options).loss[0])
    target = config.basin_rise * abs(centre)
    steps = []
    t = RADIUS_START
    while t <= LADDER[-1]:
        steps.append(t)
        t *= 2.0
    if not target > 0:
        return {"basin_radius": math.nan, "basin_radii": [math.nan] * n,
                "basin_radius_reason": "the centre loss is 0: no fraction of it to rise by",
                "basin_evaluations": 1}  # fmt: skip

    def risen(points: np.ndarray) -> np.ndarray:
        values = np.asarray(_loss_at(model, loss, data, directions, points, options).loss)
        return ~np.isfinite(values) | (values - centre >= target)

    # Doubling: the first step at which each direction x sign has risen.
    up = risen(axis_points(steps, n)).reshape(len(steps), 2 * n)
    evaluations = 1 + up.size
    first = [int(np.argmax(up[:, j])) if up[:, j].any() else -1 for j in range(2 * n)]
    low = np.array([steps[f - 1] if f > 0 else 0.0 for f in first])
    high = np.array([steps[f] if f >= 0 else math.nan for f in first])
    live = np.array([f >= 0 for f in first])
    unit = axis_points([1.0], n)  # row j: direction j // 2, sign + then -
    for _ in range(BISECTIONS):
        if not live.any():
            break
        mid = 0.5 * (low + high)
        hit = risen(unit[live] * mid[live, None])
        evaluations += int(live.sum())
        idx = np.flatnonzero(live)
        high[idx[hit]] = mid[idx[hit]]
        low[idx[~hit]] = mid[idx[~hit]]
    radius_sign = np.where(live, 0.5 * (low + high), math.nan)
    radii = [float(np.nanmin(radius_sign[2 * i : 2 * i + 2]))
             if np.isfinite(radius_sign[2 * i : 2 * i + 2]).any() else math.nan
             for i in range(n)]  # fmt: skip
    missing = [i for i, r in enumerate(radii) if not math.isfinite(r)]
    reason = (f"direction(s) {missing}: no rise by {target:.3g} up to {steps[-1]:g}"
              if missing else "")  # fmt: skip
    return {"basin_radius": float(min(radii)) if not missing else math.nan,
            "basin_radii": radii, "basin_radius_reason": reason,
            "basin_evaluations": evaluations}  # fmt: skip
