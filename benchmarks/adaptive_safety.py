"""The measurement behind the adaptive refinement's safety factor (saddles.landscape.adaptive).

Each leaf cell's estimated interpolation error is ``SAFETY * M r^2 / 2`` (Waldron 1998), with
``M`` estimated from second differences. This script refines fields whose true values are
known everywhere (with the library's factor) and prints, per field, the largest ratio over
leaf cells of the cell's true error (the filled field against the dense one, over the cell's
closed box) to its estimate without the factor (``M r^2 / 2``): a ratio above 1 is where the
estimate of ``M`` fell short, and the factor must cover the largest ratio seen. Beside it,
the same ratio when ``M`` comes from the cell's own parent stencil only (``neighbours=False``:
the stencil's differences sit in the middle of the box and miss curvature growing towards its
border), the measured sup-norm error and the stated bound (/range) and the evaluations spent
(/dense).

Fields: the adaptive benchmark's analytic fields (benchmarks/adaptive.py, 201^2), and random
smooth fields (a sum of 8 Gaussian wells and bumps of widths 0.3-0.8 on a gentle bowl on
[-2, 2]^d, as in the tests) in 2-D (129^2) and 3-D (33^3). No torch.

Usage: python benchmarks/adaptive_safety.py [--seeds-2d 12] [--seeds-3d 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from saddles.analytic import smooth_field
from saddles.landscape.adaptive import SAFETY, Refiner, points_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adaptive import FIELDS  # noqa: E402  (the benchmark's analytic fields)


def refined(f, axes, safety: float, neighbours: bool) -> Refiner:
    refiner = Refiner([len(a) for a in axes], safety=safety, neighbours=neighbours)
    while (idx := refiner.propose()).size:
        refiner.record(idx, f(points_of(idx, axes)))
    return refiner


def worst_cell_ratio(f, axes, truth: np.ndarray, neighbours: bool) -> float:
    """The largest (true error in a leaf's closed box) / (its estimate without the factor)."""
    refiner = refined(f, axes, SAFETY, neighbours)
    error = np.abs(refiner.result().filled - truth).reshape(refiner.shape)
    estimate = refiner._errors()[0] / SAFETY
    worst = 0.0
    for lo, hi, e in zip(refiner.lo, refiner.hi, estimate, strict=True):
        true = error[tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))].max()
        if true > 0:
            worst = max(worst, true / e if e > 0 else np.inf)
    return worst


def row(name: str, f, axes) -> dict:
    n = int(np.prod([len(a) for a in axes]))
    truth = f(points_of(np.arange(n), axes))
    span = float(truth.max() - truth.min())
    result = refined(f, axes, SAFETY, True).result()
    return {
        "field": name,
        "ratio": worst_cell_ratio(f, axes, truth, True),
        "ratio_own": worst_cell_ratio(f, axes, truth, False),
        "sup": float(np.abs(result.filled - truth).max()) / span,
        "bound": result.info["bottleneck_bound"] / span,
        "fraction": result.n_evaluations / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds-2d", type=int, default=12)
    parser.add_argument("--seeds-3d", type=int, default=4)
    args = parser.parse_args()
    rows = []
    for name, (f, (lo, hi)) in FIELDS.items():
        rows.append(row(name, f, [np.linspace(lo, hi, 201)] * 2))
    for seed in range(args.seeds_2d):
        rows.append(row(f"smooth-2d-{seed}", smooth_field(seed, 2), [np.linspace(-2, 2, 129)] * 2))
    for seed in range(args.seeds_3d):
        rows.append(row(f"smooth-3d-{seed}", smooth_field(seed, 3), [np.linspace(-2, 2, 33)] * 3))
    print(f"SAFETY = {SAFETY}; ratio: the worst leaf's true error / its estimate without it")
    head = f"{'field':<16}{'ratio':>8}{'own only':>10}{'sup/rng':>9}{'bound/rng':>11}{'frac':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['field']:<16}{r['ratio']:>8.3f}{r['ratio_own']:>10.3f}{r['sup']:>9.4f}"
              f"{r['bound']:>11.4f}{r['fraction']:>7.3f}")  # fmt: skip
    smooth = [r["ratio"] for r in rows if r["field"] != "rastrigin-5x5"]
    print(f"\nlargest ratio (all but the aliased 5x5 wells): {max(smooth):.3f}; "
          f"SAFETY {SAFETY}; bound >= sup on {sum(r['bound'] >= r['sup'] for r in rows)} "
          f"of {len(rows)}")  # fmt: skip


if __name__ == "__main__":
    main()
