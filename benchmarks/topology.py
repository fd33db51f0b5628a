"""Benchmark of the topology core against gudhi and cripser, measured in the same run.

Prints one table of seconds and ratios for 0-dimensional persistence of 2D fields (201^2,
1001^2, 2001^2; random and smooth) and a 3D field (101^3), full connectivity (8/26
neighbours: gudhi's top-dimensional cubical complex and cripser's "T" filtration compute the
same diagram); then the numba compile time (cold cache vs warm cache, in fresh processes); the
peak memory of our 2001^2 run; and graph construction on 10^5 scattered points.

Everything runs on one thread (numba kernel, cripser n_threads=1, gudhi, torch unused).
Usage: python benchmarks/topology.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.ndimage import gaussian_filter

from saddles.topology import (
    delaunay_edges,
    gabriel_edges,
    knn_edges,
    merge_tree_grid,
    persistence_diagram,
)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def ours(field):
    finite, _ = persistence_diagram(merge_tree_grid(field, "full"), drop_zero=True)
    return len(finite)


def with_gudhi(field):
    import gudhi

    pairs = gudhi.CubicalComplex(top_dimensional_cells=field).persistence(
        homology_coeff_field=2, min_persistence=0
    )
    return sum(1 for d, (b, e) in pairs if d == 0 and np.isfinite(e) and e > b)


def with_cripser(field):
    import cripser

    res = cripser.compute_ph(field, maxdim=0, filtration="T", n_threads=1)
    return int(np.sum(np.isfinite(res[:, 2]) & (res[:, 2] > res[:, 1])))


def fields(quick: bool):
    rng = np.random.default_rng(0)
    sizes = (201, 1001) if quick else (201, 1001, 2001)
    for n in sizes:
        yield f"2D {n}^2 random", rng.random((n, n))
        yield f"2D {n}^2 smooth", gaussian_filter(rng.random((n, n)), sigma=n / 100)
    n3 = 51 if quick else 101
    yield f"3D {n3}^3 random", rng.random((n3, n3, n3))


def persistence_table(quick: bool) -> None:
    merge_tree_grid(np.random.default_rng(1).random((5, 5)))  # load the compiled kernel
    print("0-dim persistence, full connectivity, seconds (best of repeats)")
    head = f"{'field':<22}{'pairs':>9}{'ours':>9}{'gudhi':>9}{'cripser':>9}"
    print(head + f"{'ours/cripser':>14}{'gudhi/ours':>12}")
    for name, field in fields(quick):
        big = field.size > 2_000_000
        t_ours, n_ours = best_of(lambda f=field: ours(f), 1 if big else 3)
        t_crip, n_crip = best_of(lambda f=field: with_cripser(f), 1 if big else 3)
        t_gudhi, n_gudhi = best_of(lambda f=field: with_gudhi(f), 1)
        assert n_ours == n_crip == n_gudhi, (name, n_ours, n_crip, n_gudhi)
        print(
            f"{name:<22}{n_ours:>9}{t_ours:>9.3f}{t_gudhi:>9.3f}{t_crip:>9.3f}"
            f"{t_ours / t_crip:>14.2f}{t_gudhi / t_ours:>12.1f}"
        )
    print("(ours = merge tree + diagram; pairs = finite pairs of positive persistence)")


CHILD = """
import sys, threading, time
import numpy as np

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

t = time.perf_counter()
from saddles.topology import merge_tree_grid, persistence_diagram
merge_tree_grid(np.random.default_rng(0).random((5, 5)))
first_call = time.perf_counter() - t
n = int(sys.argv[1])
field = np.random.default_rng(0).random((n, n)) if n else None
base = peak = rss_mb()
done = False

def sample():
    global peak
    while not done:
        peak = max(peak, rss_mb())
        time.sleep(0.002)

thread = threading.Thread(target=sample)
thread.start()
if n:
    persistence_diagram(merge_tree_grid(field, "full"))
done = True
thread.join()
print(first_call, base, peak)
"""


def child(n: int, env: dict) -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n)], env=env, capture_output=True, text=True, check=True
    )
    return tuple(float(x) for x in out.stdout.split())


def compile_and_memory_table(quick: bool) -> None:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cold_cache:
        cold, _, _ = child(0, {**env, "NUMBA_CACHE_DIR": cold_cache})
        warm, _, _ = child(0, {**env, "NUMBA_CACHE_DIR": cold_cache})
    print("\nimport + first merge tree in a fresh process (numba kernel compile vs cached)")
    print(f"  cold cache: {cold:.2f} s   warm cache: {warm:.2f} s   (cached on disk)")
    n = 1001 if quick else 2001
    _, before, after = child(n, env)
    field_mb = n * n * 8 / 2**20
    print(f"\npeak resident memory, {n}^2 random field (the float64 field is {field_mb:.0f} MB)")
    print(f"  process peak {after:.0f} MB; the merge tree + diagram added {after - before:.0f} MB")


def graphs_table(quick: bool) -> None:
    n = 20_000 if quick else 100_000
    rng = np.random.default_rng(0)
    print(f"\ngraphs on {n} scattered points, seconds")
    p2, p10 = rng.random((n, 2)), rng.random((n, 10))
    t = time.perf_counter()
    tri = delaunay_edges(p2)
    t_del = time.perf_counter() - t
    t_gab, gab = best_of(lambda: gabriel_edges(p2, delaunay=tri), 1)
    print(f"  Delaunay 2D {t_del:.2f} ({len(tri)} edges); Gabriel from it {t_gab:.2f} "
          f"({len(gab)} edges)")  # fmt: skip
    # pynndescent compiles more code paths as inputs grow: warm them on mid-sized inputs.
    t_jit, _ = best_of(lambda: [knn_edges(rng.random((20_000, d)), method="approximate")
                                for d in (2, 10)], 1)  # fmt: skip
    print(f"  NN-Descent warm-up in this process (numba JIT of pynndescent): {t_jit:.1f}")
    for name, pts in (("2D", p2), ("10D", p10)):
        t_ex, ex = best_of(lambda p=pts: knn_edges(p, k=8, method="exact"), 1)
        t_ap, ap = best_of(lambda p=pts: knn_edges(p, k=8, method="approximate"), 1)
        exact, approx = set(map(tuple, ex.tolist())), set(map(tuple, ap.tolist()))
        recall = len(exact & approx) / len(exact)
        print(f"  kNN k=8 {name:<4} exact {t_ex:6.2f}   approximate {t_ap:6.2f} "
              f"(edge recall {recall:.3f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, one thread\n")
    persistence_table(args.quick)
    compile_and_memory_table(args.quick)
    graphs_table(args.quick)


if __name__ == "__main__":
    main()
