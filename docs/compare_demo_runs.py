"""How far one demo run lies from another: each model x direction kind's mean of run B
against run A's 95% interval, for the metrics the demo prints.

Usage: ``python docs/compare_demo_runs.py RUN_A RUN_B`` (folders written by ``saddles demo``).
The criterion the README states: with intervals over training seeds (``--train-seeds`` >= 2),
a second machine's run, whose L-BFGS training rounds differently, should fall inside the
first run's interval, though not 19 times in 20: B's mean has its own error, so for two runs
of equal precision it lies inside A's 95% interval about 83% of the time (|Z| < 1.96 /
sqrt 2). The two-sample check is the last column: is |A - B| within the combined half-width
sqrt(h_A^2 + h_B^2) (each h half its interval's width), true 95% of the time when the
intervals are right. Prints one line per model x direction kind x metric and both counts;
reads only the two ``summary.csv`` files (first representation).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

METRICS = ("n_saddles", "n_saddles_simplified", "average_persistence",
           "average_persistence_relative")  # fmt: skip


def read(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(folder / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    rep = rows[0]["representation"]
    return {(r["model"], r["direction"]): r for r in rows if r["representation"] == rep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args()
    a, b = read(args.run_a), read(args.run_b)
    inside = both = total = 0
    print(f"{'model':>8} {'direction':>9} {'metric':>30} {'A mean [95% interval]':>30} "
          f"{'B mean':>10} inside  |A-B| within combined")  # fmt: skip
    for key in a:
        if key not in b:
            continue
        for m in METRICS:
            mean, lo, hi = (float(a[key][f"{m}_{s}"]) for s in ("mean", "ci_low", "ci_high"))
            other, blo, bhi = (float(b[key][f"{m}_{s}"]) for s in ("mean", "ci_low", "ci_high"))
            if not all(map(math.isfinite, (lo, hi, other, blo, bhi))):
                continue
            ok = lo <= other <= hi
            joint = abs(mean - other) <= math.hypot((hi - lo) / 2, (bhi - blo) / 2)
            inside += ok
            both += joint
            total += 1
            cells = f"{key[0]:>8} {key[1]:>9} {m:>30} {f'{mean:.4g} [{lo:.4g}, {hi:.4g}]':>30}"
            print(f"{cells} {other:>10.4g} {'yes' if ok else 'NO':>6}  {'yes' if joint else 'NO'}")
    print(
        f"B's mean inside A's interval: {inside} of {total}; |A - B| within the combined "
        f"half-width: {both} of {total}"
    )


if __name__ == "__main__":
    main()
