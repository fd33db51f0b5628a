"""How far one demo run lies from another: each model x direction kind's mean of run B
against run A's 95% interval, for the metrics the demo prints.

Usage: ``python docs/compare_demo_runs.py RUN_A RUN_B`` (folders written by ``saddles demo``).
The criterion the README states: with intervals over training seeds (``--train-seeds`` >= 2),
a second machine's run, whose L-BFGS training rounds differently, should fall inside the
first run's interval. Prints one line per model x direction kind x metric and the count
inside; reads only the two ``summary.csv`` files (first representation).
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
    inside = total = 0
    print(f"{'model':>8} {'direction':>9} {'metric':>30} {'A mean [95% interval]':>30} "
          f"{'B mean':>10} inside")  # fmt: skip
    for key in a:
        if key not in b:
            continue
        for m in METRICS:
            mean, lo, hi = (float(a[key][f"{m}_{s}"]) for s in ("mean", "ci_low", "ci_high"))
            other = float(b[key][f"{m}_mean"])
            if not all(map(math.isfinite, (lo, hi, other))):
                continue
            ok = lo <= other <= hi
            inside += ok
            total += 1
            print(f"{key[0]:>8} {key[1]:>9} {m:>30} {f'{mean:.4g} [{lo:.4g}, {hi:.4g}]':>30} "
                  f"{other:>10.4g} {'yes' if ok else 'NO'}")  # fmt: skip
    print(f"B's mean inside A's interval: {inside} of {total}")


if __name__ == "__main__":
    main()
