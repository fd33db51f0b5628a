"""Benchmark of saddles.hessian: accuracy per Hessian-vector product against exact Hessians.

One run prints, for a small MLP and a small CNN on scikit-learn's digits (8x8 images), at
initialization and after training, over several random start vectors:

1. HVPs and seconds until the top eigenvalue is within 1e-3 and 1e-5 (relative) of the exact one,
   for our Lanczos (full reorthogonalization) and for power iteration (no stopping rule);
2. PyHessian's stopping rule (relative change of the Rayleigh quotient < 1e-3, at most 100 HVPs;
   Yao et al. 2020): where it stops, its true error there, and Lanczos' error after the same number
   of HVPs. The released PyHessian 0.1 runs too when it is importable (its eigenvalue and trace
   routines work on torch 2.x; its density routine does not);
3. top-5 eigenpairs in one Lanczos run versus power iteration for the top one;
4. HVPs of scipy's ``eigsh`` (ARPACK, implicit restarts) versus our Lanczos for the same residual
   tolerance, which is why saddles runs its own Lanczos;
5. trace: Hutchinson and Hutch++ with 99 HVPs, and PyHessian's trace rule, against the exact trace;
6. seconds per HVP for ResNet-20 (He et al. 2016, option-A shortcuts, 269,722 parameters) on 256
   CIFAR-sized images: double backward, double backward through a cached gradient graph, and
   forward-over-reverse, one vector at a time and in blocks of 4;
7. setup versus solve: HVPs and seconds of building a ``HessianOperator`` and its checks against
   the top-1 ``top_eigen`` solve that follows, with the default checks (the first product
   recomputed once) and with every check requested (``check_determinism()`` at construction and
   ``hvp="fastest"``, which times both backends).

The exact Hessian is ``torch.func.hessian`` of the loss in float64 at the float32 weights; our
methods run in float32, as a user would. torch runs on one thread. Usage::

    python benchmarks/hessian.py [--seeds 10] [--extra-seeds 3] [--n-images 512]
                                 [--resnet-images 256] [--skip-resnet]
                                 [--only {accuracy,resnet,setup}] [--setup-repeats 5]

PyHessian is not a dependency; it is used when ``import pyhessian`` works (for instance after
``pip install --no-deps --target DIR pyhessian`` and ``PYTHONPATH=DIR``).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import time
import warnings

import numpy as np
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from saddles.hessian import HessianOperator, lanczos, power_iteration, top_eigen, trace
from saddles.io.data import make_loss

try:  # optional baseline; the package's __init__ shadows its `hessian` module with the class
    import pyhessian

    pyhessian_module = importlib.import_module("pyhessian.hessian")
except ImportError:  # pragma: no cover - depends on the environment
    pyhessian = None

TOLS = (1e-3, 1e-5)


# ---- models and data -------------------------------------------------------------------------


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        x = F.avg_pool2d(torch.tanh(self.c1(x)), 2)
        x = F.avg_pool2d(torch.tanh(self.c2(x)), 2)
        return self.fc(x.flatten(1))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 300) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


class BasicBlock(nn.Module):
    """ResNet basic block; option A shortcut: identity, or stride-2 subsampling + zero channels."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = (
            x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        )
        return F.relu(out + short)


class ResNet20(nn.Module):
    """ResNet-20 for CIFAR-10 (He et al. 2016, sec. 4.2): 3 stages of 3 blocks, 16/32/64 wide."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, n_classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# ---- the exact reference ---------------------------------------------------------------------


def exact_spectrum(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """All eigenvalues (ascending) of the float64 Hessian at the model's weights."""
    params = {n: p.detach().double() for n, p in model.named_parameters()}
    theta = torch.cat([p.reshape(-1) for p in params.values()])
    x64 = x.double()

    def f(t):
        d, i = {}, 0
        for n, p in params.items():
            d[n] = t[i : i + p.numel()].view(p.shape)
            i += p.numel()
        return F.cross_entropy(functional_call(model, d, (x64,)), y)

    H = torch.autograd.functional.hessian(f, theta)  # one backward per row; vmap is slower here
    return np.linalg.eigvalsh(H.numpy())


# ---- measurements ----------------------------------------------------------------------------


def first_below(errors: np.ndarray, tol: float) -> int | None:
    """1-based index of the first error <= tol (the number of HVPs), or None."""
    hits = np.flatnonzero(np.asarray(errors) <= tol)
    return int(hits[0]) + 1 if len(hits) else None


def pyhessian_run(model, x, y, seed: int) -> dict:
    """PyHessian 0.1's eigenvalues() and trace() with their defaults, counting HVPs."""
    count = [0]
    original = pyhessian_module.hessian_vector_product

    def counted(gradsH, params, v):
        count[0] += 1
        return original(gradsH, params, v)

    pyhessian_module.hessian_vector_product = counted
    try:
        net = copy.deepcopy(model)
        torch.manual_seed(seed)
        with warnings.catch_warnings():  # its backward(create_graph=True) warns on torch 2.x
            warnings.simplefilter("ignore", UserWarning)
            h = pyhessian_module.hessian(net, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        start = time.perf_counter()
        top = h.eigenvalues()[0][0]
        seconds = time.perf_counter() - start
        eig_hvps = count[0]
        samples = h.trace()
        trace_hvps = count[0] - eig_hvps
        return {
            "top": top,
            "hvps": eig_hvps,
            "seconds": seconds,
            "trace": float(np.mean(samples)),
            "trace_hvps": trace_hvps,
        }
    finally:
        pyhessian_module.hessian_vector_product = original


def run_case(model: nn.Module, x, y, seeds: int, extra_seeds: int) -> dict:
    """All measurements for one model state; the costlier comparisons use the first seeds only."""
    evals = exact_spectrum(model, x, y)
    lam, top5 = evals[-1], evals[::-1][:5]
    loss = make_loss(criterion=nn.CrossEntropyLoss())
    op = HessianOperator(model, loss, (x, y))  # float32, as used in practice
    op.check_determinism()  # now, rather than inside the first timed product
    rec: dict = {
        "dim": op.dim,
        "lambda": lam,
        "gap": (evals[-1] - evals[-2]) / lam,
        "trace": evals.sum(),
        "runs": [],
        "extra": [],
    }
    for seed in range(seeds):
        r: dict = {}
        dec = lanczos(op, 60, seed=seed)
        ritz = [np.sort(dec.ritz(j)[0])[::-1] for j in range(1, dec.n_steps + 1)]
        lz_err = np.array([abs(t[0] - lam) / lam for t in ritz])
        lz_err5 = np.array(
            [np.max(np.abs(t[:5] - top5) / top5) if len(t) >= 5 else np.inf for t in ritz]
        )
        start = time.perf_counter()
        free = power_iteration(op, max_iter=100, tol=0.0, seed=seed)  # no stopping rule
        per_hvp = (time.perf_counter() - start) / free.n_hvps
        pw_err = np.abs(free.history[0] - lam) / lam
        for tol in TOLS:
            n = first_below(lz_err, tol)
            r[("lanczos", tol)] = (n, None if n is None else dec.seconds[n - 1])
            n = first_below(pw_err, tol)
            r[("power", tol)] = (n, None if n is None else n * per_hvp)
        r[("lanczos5", 1e-3)] = (first_below(lz_err5, 1e-3), None)
        rule = power_iteration(op, seed=seed)  # PyHessian's rule, reimplemented
        r["rule_hvps"] = rule.n_hvps
        r["rule_err"] = abs(rule.eigenvalues[0] - lam) / lam
        r["lanczos_at_rule"] = lz_err[min(rule.n_hvps, dec.n_steps) - 1]
        if pyhessian is not None:
            ph = pyhessian_run(model, x, y, seed)
            r["pyh_hvps"], r["pyh_err"] = ph["hvps"], abs(ph["top"] - lam) / lam
            r["pyh_trace_err"] = abs(ph["trace"] - evals.sum()) / abs(evals.sum())
            r["pyh_trace_hvps"] = ph["trace_hvps"]
        for method in ("hutchinson", "hutch++"):
            est = trace(op, method, 99, seed=seed)
            r[method] = abs(est.value - evals.sum()) / abs(evals.sum())
        rec["runs"].append(r)
        if seed >= extra_seeds:
            continue
        e: dict = {}
        for tol in (1e-2, 1e-4):
            t5 = top_eigen(op, 5, tol=tol, seed=seed)
            e[("top5", tol)] = (t5.n_hvps, np.max(np.abs(t5.eigenvalues - top5) / top5))
        p5 = power_iteration(op, k=5, seed=seed)
        e["power5"] = (p5.n_hvps, np.max(np.abs(np.sort(p5.eigenvalues)[::-1] - top5) / top5))
        for k in (1, 5):
            before = op.n_hvps
            vals = scipy.sparse.linalg.eigsh(
                op.as_linear_operator(), k=k, which="LA", tol=1e-4, v0=_start(op.dim, seed)
            )[0]
            error = np.max(np.abs(np.sort(vals)[::-1] - top5[:k]) / top5[:k])
            e[("eigsh", k)] = (op.n_hvps - before, error)
            ours = top_eigen(op, k, tol=1e-4, seed=seed)
            e[("ours", k)] = (ours.n_hvps, np.max(np.abs(ours.eigenvalues - top5[:k]) / top5[:k]))
        rec["extra"].append(e)
    return rec


def _start(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def resnet_seconds_per_hvp(n_images: int) -> None:
    """Print seconds per HVP of each backend for ResNet-20, and what ``hvp="fastest"`` picks."""
    torch.manual_seed(0)
    model = ResNet20()
    x, y = torch.randn(n_images, 3, 32, 32), torch.randint(0, 10, (n_images,))
    loss = make_loss(criterion=nn.CrossEntropyLoss())
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 269_722, n_params
    variants = [
        ("double backward", dict(hvp="reverse", cache_graph=False)),
        ("double backward, cached gradient graph", dict(hvp="reverse", cache_graph=True)),
        ("forward-over-reverse (jvp of grad)", dict(hvp="forward")),
    ]
    V = torch.randn(n_params, 4, generator=torch.Generator().manual_seed(0))
    rows, base = [], None
    for name, kwargs in variants:
        op = HessianOperator(model, loss, (x, y), check_determinism=False, batched=True, **kwargs)
        op.matvec(V[:, 0])  # warm-up (and builds the cached graph)
        single = _best(lambda op=op: op.matvec(V[:, 0]), 2)
        base = base or single
        block = "-"
        if kwargs.get("cache_graph", True):  # a block shares one gradient graph, or one vmap
            block = f"{_best(lambda op=op: op.matmat(V), 1) / V.shape[1]:.3f}"
        rows.append([name, f"{single:.3f}", f"{single / base:.2f}", block])
    table(
        f"ResNet-20 ({n_params:,} parameters, eval mode), {n_images} random CIFAR-sized images: "
        "seconds per HVP, one vector and per vector in a block of 4 (vmap / batched backward)",
        ["HVP method", "s / HVP", "vs double backward", "block of 4, s / HVP"],
        rows,
    )
    op = HessianOperator(model, loss, (x, y), check_determinism=False, hvp="fastest")
    op.matmat(V)  # the first block decides between batched and looped products
    cached = ", cached gradient graph" if op.cache_graph and op.hvp_method == "reverse" else ""
    timings = ", ".join(f"{k} {v:.3f} s" for k, v in op.hvp_timings.items() if v is not None)
    print(f"hvp='fastest' chose {op.hvp_method}{cached}, batched={op.batched} ({timings})")
    auto = HessianOperator(model, loss, (x, y), check_determinism=False)
    print(f"hvp='auto' (a fixed rule) uses {auto.hvp_method}, batched={auto.batched}")


SETUPS = {
    "default": ({}, False),
    "no checks": ({"check_determinism": False}, False),
    "all checks requested": ({"hvp": "fastest"}, True),
}


def setup_versus_solve(model: nn.Module, x, y, repeats: int) -> list[list[str]]:
    """One row per setup: HVPs and seconds of setup and of the solve, and their ratios (medians).

    Setup is the operator's construction plus the checks it makes for itself, including the
    default determinism check, which runs inside the first product of the solve (its time is
    ``setup_seconds`` gained during the solve, moved from the solve to the setup column).
    """
    loss = make_loss(criterion=nn.CrossEntropyLoss())
    rows = []
    for name, (kwargs, eager) in SETUPS.items():
        runs = []
        for seed in range(repeats):
            start = time.perf_counter()
            op = HessianOperator(model, loss, (x, y), **kwargs)
            if eager:
                op.check_determinism()
            built = time.perf_counter() - start
            checks_before = op.setup_seconds
            start = time.perf_counter()
            r = top_eigen(op, 1, seed=seed)
            solve = time.perf_counter() - start
            in_solve = op.setup_seconds - checks_before  # the check folded into the first product
            runs.append((op.n_setup_hvps, built + in_solve, r.n_hvps, solve - in_solve))
        setup_hvps, setup_s, solve_hvps, solve_s = np.median(np.array(runs), axis=0)
        rows.append(
            [name, f"{setup_hvps:.0f}", f"{setup_s:.4f}", f"{solve_hvps:.0f}", f"{solve_s:.4f}"]
            + [f"{setup_hvps / solve_hvps:.2f}", f"{setup_s / solve_s:.2f}"]
        )
    return rows


def print_setup_tables(x, y, repeats: int) -> None:
    setup_versus_solve(mlp(), x[:64], y[:64], 1)  # warm up torch's kernels, not measured
    for label, factory in (("MLP", mlp), ("CNN", SmallCNN)):
        torch.manual_seed(0)
        model = factory()
        for state in ("init", "trained"):
            if state == "trained":
                train(model, x, y)
            table(
                f"Setup vs top-1 solve, {label} {state} ({len(x)} digits, float32, "
                f"{torch.get_num_threads()} torch thread(s); median of {repeats}): setup = "
                "construction + the operator's own checks; solve = top_eigen(k=1, tol 1e-4)",
                ["setup", "setup HVPs", "setup s", "solve HVPs", "solve s", "HVP ratio", "s ratio"],
                setup_versus_solve(model, x, y, repeats),
            )


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# ---- printing --------------------------------------------------------------------------------


def med(values) -> str:
    """Median of the values that are not None, or '-'."""
    values = [v for v in values if v is not None]
    return "-" if not values else f"{np.median(values):.3g}"


def med_hits(runs: list[dict], key) -> str:
    """Median HVPs to reach a tolerance, noting runs that never reached it."""
    hits = [r[key][0] for r in runs if r[key][0] is not None]
    missed = len(runs) - len(hits)
    return med(hits) + (f" ({missed} miss)" if missed else "")


def med_pair(runs: list[dict], key) -> str:
    """'median HVPs / median error' of (hvps, error) entries."""
    return f"{med([r[key][0] for r in runs])} / {med([r[key][1] for r in runs])}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) + 2 for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in (header, *rows):
        cells = [f"{c:>{w}}" for c, w in zip(row[1:], widths[1:], strict=True)]
        print(f"{row[0]:<{widths[0]}}" + "".join(cells))


def print_tables(cases: list[tuple[str, dict]]) -> None:
    n = len(cases[0][1]["runs"])
    rows = []
    for name, rec in cases:
        runs, row = rec["runs"], [name, rec["dim"], f"{rec['lambda']:.4g}", f"{rec['gap']:.3f}"]
        for tol in TOLS:
            row += [med_hits(runs, ("lanczos", tol)), med([r[("lanczos", tol)][1] for r in runs])]
            row += [med_hits(runs, ("power", tol)), med([r[("power", tol)][1] for r in runs])]
        rows.append(row)
    header = ["case", "dim", "lambda_1", "gap"]
    for tol in TOLS:
        header += [f"Lanczos HVPs {tol:.0e}", "s", f"power HVPs {tol:.0e}", "s"]
    table(
        f"Top eigenvalue: HVPs and seconds to reach relative error 1e-3 / 1e-5 (median of {n} "
        "starts; 'miss': not within 60 Lanczos steps or 100 power iterations; gap = "
        "(l1 - l2) / l1)",
        header,
        rows,
    )

    rows, total_ok = [], 0
    for name, rec in cases:
        runs = rec["runs"]
        ok = sum(r["rule_err"] <= 1e-3 for r in runs)
        total_ok += ok
        # Lanczos can be exact to float32 rounding: floor its error to keep the ratio finite.
        ratio = np.median([r["rule_err"] / max(r["lanczos_at_rule"], 1e-9) for r in runs])
        row = [name, med([r["rule_hvps"] for r in runs]), med([r["rule_err"] for r in runs])]
        row += [f"{ok}/{n}", med([r["lanczos_at_rule"] for r in runs]), f"{ratio:.3g}x"]
        if pyhessian is not None:
            pok = sum(r["pyh_err"] <= 1e-3 for r in runs)
            row += [med([r["pyh_hvps"] for r in runs]), med([r["pyh_err"] for r in runs])]
            row += [f"{pok}/{n}"]
        rows.append(row)
    header = ["case", "rule HVPs", "rule error", "<=1e-3", "Lanczos error", "ratio"]
    if pyhessian is not None:
        header += ["PyHessian HVPs", "PyHessian error", "<=1e-3"]
    table(
        "Power iteration with PyHessian's stopping rule: HVPs at the stop, true error there, and "
        "Lanczos' error after the same HVPs (median; ratio = median of rule / Lanczos error)",
        header,
        rows,
    )
    print(f"PyHessian's rule reached 1e-3: {total_ok} of {n * len(cases)} runs")

    m = len(cases[0][1]["extra"])
    rows = []
    for name, rec in cases:
        runs, extra = rec["runs"], rec["extra"]
        rule = f"{med([r['rule_hvps'] for r in runs])} / {med([r['rule_err'] for r in runs])}"
        rows.append(
            [
                name,
                med_hits(runs, ("lanczos5", 1e-3)),
                med_pair(extra, ("top5", 1e-2)),
                med_pair(extra, ("top5", 1e-4)),
                med_hits(runs, ("power", 1e-3)),
                rule,
                med_pair(extra, "power5"),
            ]
        )
    table(
        "Top-5 eigenpairs in one Lanczos run vs power iteration. HVPs until all five are within "
        f"1e-3 (median of {n}), and 'HVPs / max relative error' (median of {m}) for top_eigen at "
        "residual tol 1e-2 and 1e-4 and for power iteration with PyHessian's rule",
        [
            "case",
            "Lanczos top-5 to 1e-3",
            "top_eigen(5), 1e-2",
            "top_eigen(5), 1e-4",
            "power top-1 to 1e-3",
            "power top-1, rule",
            "power top-5, rule",
        ],
        rows,
    )

    rows = [
        [name] + [med_pair(rec["extra"], (m, k)) for k in (1, 5) for m in ("eigsh", "ours")]
        for name, rec in cases
    ]
    table(
        f"scipy eigsh (ARPACK) vs our Lanczos at residual tol 1e-4 (HVPs / max relative error, "
        f"median of {m})",
        ["case", "eigsh k=1", "Lanczos k=1", "eigsh k=5", "Lanczos k=5"],
        rows,
    )

    rows = []
    for name, rec in cases:
        runs = rec["runs"]
        row = [name, f"{rec['trace']:.4g}"]
        row += [med([r["hutchinson"] for r in runs]), med([r["hutch++"] for r in runs])]
        if pyhessian is not None:
            row += [
                med([r["pyh_trace_err"] for r in runs]),
                med([r["pyh_trace_hvps"] for r in runs]),
            ]
        rows.append(row)
    header = ["case", "exact trace", "Hutchinson, 99 HVPs", "Hutch++, 99 HVPs"]
    if pyhessian is not None:
        header += ["PyHessian trace", "its HVPs"]
    table(f"Trace: relative error against the exact trace (median of {n})", header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="random starts per case")
    parser.add_argument(
        "--extra-seeds", type=int, default=3, help="starts for the top-5 and eigsh tables"
    )
    parser.add_argument("--n-images", type=int, default=512, help="digits images used")
    parser.add_argument("--resnet-images", type=int, default=256)
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument(
        "--only",
        choices=("accuracy", "resnet", "setup"),
        help="run one section (tables 1-5: accuracy)",
    )
    parser.add_argument("--setup-repeats", type=int, default=5, help="repeats per setup row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}")
    if pyhessian is not None:
        print(f"PyHessian imported from {pyhessian.__file__.rsplit('/', 2)[-2]} (released 0.1)")
    else:
        print("PyHessian not importable: only its rule, reimplemented, is measured")
    x, y = digits()
    x, y = x[: args.n_images], y[: args.n_images]
    print(f"data: the first {len(x)} of scikit-learn's digits; exact Hessians in float64")
    if args.only in (None, "accuracy"):
        cases = []
        start = time.perf_counter()
        for label, factory in (("MLP", mlp), ("CNN", SmallCNN)):
            torch.manual_seed(0)
            model = factory()
            for state in ("init", "trained"):
                if state == "trained":
                    train(model, x, y)
                rec = run_case(model, x, y, args.seeds, args.extra_seeds)
                cases.append((f"{label} {state}", rec))
        print_tables(cases)
        print(f"(small models: {time.perf_counter() - start:.0f} s)")
    if args.only in (None, "setup"):
        print_setup_tables(x, y, args.setup_repeats)
    if args.only == "resnet" or (args.only is None and not args.skip_resnet):
        resnet_seconds_per_hvp(args.resnet_images)


if __name__ == "__main__":
    main()
