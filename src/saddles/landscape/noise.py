"""How much of a landscape is numerical noise: the rounding floor and the batch dependence.

:func:`noise_floor` re-evaluates a fixed sample of a landscape's points and compares:

- ``noise_floor``: the largest ``|f - f64|`` over the sample, where ``f`` is the landscape's
  value (its dtype, e.g. float32) and ``f64`` the same point evaluated in float64 (the same
  directions, a float64 copy of the model and data, the sequential engine). It bounds the
  rounding error of a value, so a persistence pair below twice the floor may be an artefact
  of the arithmetic (:func:`saddles.topology.noise_metrics`). A landscape computed in float64
  gets the estimate ``16 eps_64 max|f|`` instead (nothing more precise to compare with).
- ``batch_stderr``: when the data come in several batches, the standard error of the
  batch-size-weighted mean of the per-batch losses, ``sqrt(B/(B-1) sum_b w_b^2 (l_b - m)^2)``,
  at each sampled point; the median over the sample is reported. It says how much the
  landscape depends on which batches were used (a noise floor of the data, not of the
  arithmetic). One batch: NaN.

Cost: ``n_points`` evaluations in float64 plus, with several batches, ``n_points`` per-batch
passes over the data, i.e. about 3 x ``n_points`` evaluations (2-4% of a 41 x 41 grid with the
default 32 points). The sample is drawn with ``numpy.random.default_rng(seed)`` and always
includes the first point, so it is a function of the inputs. A landscape evaluated with
``eval_tokens="auto"`` is compared point by point on the tokens each point used.

The batch noise floor (:func:`batch_landscapes`, :func:`batch_floor`) asks how much the
landscape depends on the data: the same landscape (model, directions, points, settings) is
evaluated on ``parts`` disjoint parts of the evaluation data (:func:`saddles.io.data.split_parts`,
in order), and the floor estimates the largest error of the full landscape's values. Two parts
differ by ``d = f_i - f_j``; a constant moves no pair's persistence, so only the spread of
``d`` counts, ``max|d - c|`` at its best constant ``c``, i.e. ``ptp(d) / 2`` (two halves of 8
character sequences differ by about half a nat at every point). With ``P`` equal parts whose
errors are independent and alike, the full landscape's error (the mean of the parts') has
``1 / sqrt(2P)`` of the standard deviation of a difference of two parts, so the floor is the
largest ``ptp(d) / 2`` over pairs of parts times ``1 / sqrt(2P)`` (one half for two parts).
It is used like the arithmetic floor: by stability (Cohen-Steiner, Edelsbrunner & Harer 2007)
values in error by at most the floor move each pair by at most the floor, so features more
persistent than twice it count as above the noise (:func:`saddles.topology.noise_metrics`).
The bottleneck distance between the parts' diagrams is no such bound: it is at most
``max|d - c|`` and can be 0 (two parts with one basin each) where their mean has a saddle made
by which data fell in which part. Cost: ``parts`` more landscapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from saddles.io.data import as_batches, batch_weights, split_parts
from saddles.landscape.evaluate import evaluate
from saddles.landscape.result import Landscape

DEFAULT_POINTS = 32


def sample_points(n: int, n_points: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(n, n_points)`` points: the first one and a seeded draw."""
    k = min(n, max(1, int(n_points)))
    if k >= n:
        return np.arange(n)
    rest = np.random.default_rng(seed).choice(np.arange(1, n), size=k - 1, replace=False)
    return np.sort(np.concatenate([[0], rest]))


def noise_floor(
    model: torch.nn.Module,
    loss: Any,
    data: Any,
    directions: Any,
    landscape: Landscape,
    *,
    n_points: int = DEFAULT_POINTS,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """The landscape's rounding floor and batch dependence (see the module docstring)."""
    pick = sample_points(landscape.n_points, n_points, seed)
    coords = landscape.coords[pick]
    values = landscape.loss[pick]
    kw = {"engine": "sequential", "progress": False, "device": device}
    dtype = str(landscape.info.get("dtype", "float32"))
    finite = np.isfinite(values)
    if dtype == "float64":
        floor = 16 * np.finfo(np.float64).eps * float(np.max(np.abs(values[finite]), initial=0))
        method = "float64 landscape: 16 eps_64 x max|f| (estimate)"
    else:
        ref = np.full(len(pick), np.nan)
        tokens = landscape.tokens[pick] if landscape.tokens is not None else np.full(len(pick), -1)
        for budget in np.unique(tokens):  # eval_tokens="auto": each point on its own tokens
            rows = tokens == budget
            cap = None if budget < 0 else int(budget)
            ref[rows] = evaluate(model, loss, data, directions, coords[rows], eval_tokens=cap,
                                 dtype=torch.float64, **kw).loss  # fmt: skip
        ok = finite & np.isfinite(ref)
        floor = float(np.max(np.abs(values[ok] - ref[ok]), initial=0.0))
        method = f"max |{dtype} - float64| over {len(pick)} points"
    out = {"noise_floor": floor, "noise_method": method, "noise_points": int(len(pick))}
    batches = as_batches(data)
    if len(batches) < 2:
        out["batch_stderr"] = float("nan")
        out["batch_stderr_note"] = "one batch: no batch dependence to measure"
        return out
    per_batch = np.stack(
        [evaluate(model, loss, [b], directions, coords, **kw).loss for b in batches]
    )  # (B, points)
    w = np.asarray(batch_weights(batches))[:, None]
    mean = (w * per_batch).sum(axis=0)
    n_b = len(batches)
    se = np.sqrt(n_b / (n_b - 1) * (w**2 * (per_batch - mean) ** 2).sum(axis=0))
    out["batch_stderr"] = float(np.nanmedian(se)) if np.isfinite(se).any() else float("nan")
    out["batch_stderr_note"] = f"median over {len(pick)} points of {n_b} batches"
    return out


def batch_landscapes(
    model: torch.nn.Module,
    loss: Any,
    data: Any,
    directions: Any,
    coords: Any,
    parts: int,
    *,
    run_dirs: list[Any] | None = None,
    **kw: Any,
) -> list[Landscape]:
    """The landscape on each of ``parts`` disjoint parts of the data, in order
    (:func:`saddles.io.data.split_parts`); ``kw`` as for :func:`evaluate` (the same settings
    as the full landscape), ``run_dirs`` one resumable run directory per part."""
    groups = split_parts(as_batches(data), parts)
    dirs = run_dirs or [None] * parts
    return [
        evaluate(
            model, loss, group, directions, coords, run_dir=where, resume=where is not None, **kw
        )  # fmt: skip
        for group, where in zip(groups, dirs, strict=True)
    ]


def batch_floor(parts: list[Landscape]) -> float:
    """The batch noise floor of a landscape evaluated on ``parts`` (disjoint parts of its data,
    the same points; :func:`batch_landscapes`): the largest ``ptp(f_i - f_j) / 2`` over pairs
    of parts, times ``1 / sqrt(2 len(parts))`` (see the module docstring). Points where a part
    is not finite are left out; NaN with fewer than two parts."""
    values = [np.asarray(p.loss, dtype=np.float64) for p in parts]
    spread = []
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            if a.shape != b.shape:
                raise ValueError(f"parts must share their points: {a.shape} vs {b.shape}")
            d = (a - b)[np.isfinite(a) & np.isfinite(b)]
            if d.size:
                spread.append(float(np.ptp(d)) / 2)
    if not spread:
        return float("nan")
    return max(spread) / np.sqrt(2 * len(parts))
