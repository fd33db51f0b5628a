"""Cost of one checkpoint of a ~10M-parameter language model: landscape grid and Hessian.

Builds a GPT-NeoX-style causal LM from a ``transformers.GPTNeoXConfig`` (eager attention;
hidden 256, 8 layers, 4 heads, vocabulary 8192 by default: about 10.5M parameters, printed),
and on one random token batch (2 x 32 tokens by default) measures, each in a fresh subprocess:

- ``forward``: one plain forward pass and loss (the reference);
- ``landscape``: the loss on a ``--resolution``-squared grid (21 x 21 by default) spanned by
  two filter-normalized random directions (:func:`saddles.landscape.evaluate`, engine chosen
  by its auto rule);
- ``hessian``: the top 5 Hessian eigenvalues (:class:`saddles.hessian.HessianOperator` and
  :func:`saddles.hessian.top_eigen`).

Memory is each subprocess's peak resident set size (``resource.getrusage``) minus that of a
baseline subprocess that imports torch, builds the model and the batch and stops: the
measurement's own extra memory. Seconds exclude that set-up. The torch thread count is
printed (``--threads``; torch's default otherwise).

The landscape is also measured against a second baseline, ``loaded``: a subprocess that
builds the model and the batch, imports the landscape code and runs one forward pass and
loss under ``torch.no_grad`` (what any evaluation of the model needs). Its table gives the
peak above that baseline as a multiple of the parameter bytes, split into making the two
directions (:func:`saddles.directions.random_directions`) and :func:`saddles.landscape.evaluate`
with those directions held: the peak is reset between the two by writing ``5`` to
``/proc/self/clear_refs`` (Linux; ``proc(5)``), which sets ``VmHWM`` to the current RSS,
after ``malloc_trim(3)`` has handed the pages freed so far back to the system (in both
processes). Resident memory also holds heap pages that glibc keeps after a free: its dynamic
mmap threshold (``mallopt(3)``) rises after a large block is freed, and later blocks below it
come from a heap that is not handed back, so a phase's peak can vary between runs (by about
half a parameter copy at 10.5M parameters); ``MALLOC_MMAP_THRESHOLD_=1048576`` fixes the
threshold and the variation.

Usage: python benchmarks/lm_scale.py [--quick] [--resolution N] [--batch B] [--seq T]
[--only landscape] [--engine sequential] [--directions-dtype bfloat16]
[--shapes pythia-14m,pythia-70m,pythia-160m] [--max-rss-gib 20]
``--quick``: a 7 x 7 grid and the top 2 eigenvalues. ``--directions-dtype``: the directions
stored in that dtype (:func:`saddles.directions.random_directions`, opt-in). ``--shapes``:
models shaped like those of the Pythia suite (:data:`SHAPES`: hidden size, layers, heads;
vocabulary 50,304, random initialization), each measured as above, then one summary table
across them: seconds per HVP as a multiple of a gradient, per landscape point as a multiple of
a forward, the share of the Hessian's time outside HVPs, the peaks above one-gradient and
loaded processes as multiples of the parameter bytes, and predicted beside measured cost.
Every subprocess is killed if its resident set exceeds ``--max-rss-gib`` (a guard for the
machine, polled every half second).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

#: Pythia-shaped models (hidden size, layers, heads), vocabulary 50,304 (Biderman et al. 2023).
SHAPES = {
    "pythia-14m": (128, 6, 4),
    "pythia-70m": (512, 6, 8),
    "pythia-160m": (768, 12, 12),
    "pythia-410m": (1024, 24, 16),
}

#: Measurements, each in its own subprocess; "gradient" is the baseline of the Hessian rows,
#: "loaded" that of the landscape's table (one no-grad forward, landscape code imported).
KINDS = ("baseline", "forward", "loaded", "gradient", "landscape", "hessian", "hessian-whole")


def build(args):
    """The model (eval mode) and one batch of random tokens ``(tokens,)``."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
        max_position_embeddings=max(256, args.seq), attn_implementation="eager",
    )  # fmt: skip
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=gen)
    return model, (tokens,)


def causal_lm_loss(model, batch):
    """Mean next-token cross-entropy of a Hugging Face causal LM on ``(tokens,)``."""
    import torch.nn.functional as F

    tokens = batch[0]
    logits = model(input_ids=tokens[:, :-1]).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def measure(kind: str, args) -> dict:
    """Run one measurement in this process; seconds and peak RSS (KiB)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, batch = build(args)
    n_params = sum(p.numel() for p in model.parameters())
    out = {"kind": kind, "n_params": n_params, "threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    if kind == "forward":
        with torch.no_grad():
            causal_lm_loss(model, batch)
            t0 = time.perf_counter()  # the second pass, timed
            out["loss"] = float(causal_lm_loss(model, batch))
    elif kind in ("loaded", "landscape"):
        from saddles.directions import random_directions
        from saddles.landscape.evaluate import evaluate
        from saddles.sampling import grid

        with torch.no_grad():
            out["loss"] = float(causal_lm_loss(model, batch))
        release_freed()
        out["loaded_kib"] = high_water_kib()
    if kind == "landscape":
        t0 = time.perf_counter()
        stored = {"dtype": args.directions_dtype} if args.directions_dtype else {}
        d = random_directions(model, 2, seed=0, norm="filter", **stored)
        out["directions_kib"] = high_water_kib()
        release_freed()
        out["held_kib"] = high_water_kib("VmRSS")
        reset_high_water()
        land = evaluate(model, causal_lm_loss, batch, d, grid(args.resolution, (-1.0, 1.0), dims=2),
                        progress=False, engine=args.engine)  # fmt: skip
        out["evaluate_kib"] = high_water_kib()
        out["engine"] = land.info.get("engine")
        out["grad_mode"] = land.info.get("grad_mode")
        out["points"] = args.resolution**2
        out["center_loss"] = land.info["center_loss"]
    elif kind == "gradient":
        causal_lm_loss(model, batch).backward()
        out["first_peak_kib"] = high_water_kib()  # the baseline: one gradient's peak
        model.zero_grad(set_to_none=True)
        release_freed()
        t0 = time.perf_counter()  # a second gradient, timed (the first pays one-off set-up)
        causal_lm_loss(model, batch).backward()
    elif kind in ("hessian", "hessian-whole"):
        import warnings

        from saddles.hessian import HessianOperator, top_eigen
        from saddles.runs import cost

        # The prediction first, from one forward, gradient and HVP (saddles.runs.cost).
        probed = cost.probe(model, causal_lm_loss, batch)
        op = HessianOperator(model, causal_lm_loss, batch)
        # "hessian": the default memory budget; "hessian-whole": every Lanczos vector and its
        # product kept, as before the budget existed.
        memory = 1 << 45 if kind == "hessian-whole" else args.memory
        predicted = cost.hessian_cost(probed, top_k=args.top_k, trace_matvecs=0,
                                      density_lanczos=0, memory=memory)  # fmt: skip
        inside = [0.0]  # seconds spent in HVPs: the rest is the algorithm's own time
        apply = op._apply

        def timed_apply(V):
            start = time.perf_counter()
            try:
                return apply(V)
            finally:
                inside[0] += time.perf_counter() - start

        op._apply = timed_apply
        hvps_before = op.n_hvps
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            eig = top_eigen(op, k=args.top_k, seed=0, memory=memory)
        out["outside_share"] = 1 - inside[0] / (time.perf_counter() - t0)
        out["hvp_s"] = inside[0] / max(op.n_hvps - hvps_before, 1)
        out["warning"] = str(caught[0].message) if caught else None
        out["predicted_s"], out["predicted_hvps"] = predicted.seconds, predicted.count
        out["predicted_mib"] = predicted.peak_bytes / 2**20
        out["eigenvalues"] = [round(float(v), 4) for v in eig.eigenvalues]
        out["hvps"] = int(eig.n_hvps)
        out["strategy"] = eig.strategy
        out["restarts"] = eig.restarts
        out["converged"] = int(eig.converged.sum())
        out["warned"] = bool(caught)
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_kib"] = (
        out.pop("first_peak_kib", None) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    if "directions_kib" in out:  # the reset may have lowered getrusage's peak too
        out["peak_rss_kib"] = max(out["peak_rss_kib"], out["directions_kib"], out["evaluate_kib"])
    return out


def high_water_kib(field: str = "VmHWM") -> int:
    """Peak resident set size since the start or the last :func:`reset_high_water` (KiB);
    ``field="VmRSS"``: the current one."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def release_freed() -> None:
    """Hand the heap's freed pages back to the system (glibc ``malloc_trim(3)``), so that the
    resident set holds what is alive, not what an earlier phase freed."""
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_high_water() -> None:
    """Set the peak resident set size to the current one (``proc(5)``, ``clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7x7 grid, top 2 eigenvalues")
    parser.add_argument("--resolution", type=int, default=None, help="grid points per axis")
    parser.add_argument("--top-k", type=int, default=None, help="Hessian eigenvalues")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=2, help="sequences in the batch")
    parser.add_argument("--seq", type=int, default=32, help="tokens per sequence")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--memory",
        type=int,
        default=None,
        help="Lanczos memory budget in bytes (default: the library's)",
    )
    parser.add_argument(
        "--only",
        default=",".join(KINDS[3:]),
        help="comma-separated measurements besides the baseline and forward",
    )
    parser.add_argument(
        "--engine", default="auto", help="landscape engine: auto, sequential or batched"
    )
    parser.add_argument(
        "--directions-dtype", default=None, help="store the directions in this dtype (bfloat16)"
    )
    parser.add_argument(
        "--shapes",
        default=None,
        help=f"comma-separated Pythia shapes ({', '.join(SHAPES)}): one table",
    )
    parser.add_argument(
        "--max-rss-gib",
        type=float,
        default=20.0,
        help="kill a measurement whose resident set exceeds this",
    )
    parser.add_argument("--measure", choices=KINDS, help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    args.resolution = args.resolution or (7 if args.quick else 21)
    args.top_k = args.top_k or (2 if args.quick else 5)
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return
    if not args.shapes:
        report_shape(args, run_shape(args, sys.argv[1:]))
        return
    summary = {}
    for name in args.shapes.split(","):
        if name not in SHAPES:
            sys.exit(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
        args.hidden, args.layers, args.heads = SHAPES[name]
        args.vocab = 50304
        extra = ["--hidden", str(args.hidden), "--layers", str(args.layers),
                 "--heads", str(args.heads), "--vocab", "50304"]  # fmt: skip
        print(f"== {name}")
        summary[name] = run_shape(args, [*sys.argv[1:], *extra])
        report_shape(args, summary[name])
        print(flush=True)
    summary_table(args, summary)


def run_shape(args, passed: list[str]) -> dict:
    """Every wanted measurement of one model, each in a fresh subprocess."""
    results = {}
    wanted = ["baseline", "forward", *[k for k in args.only.split(",") if k in KINDS[3:]]]
    if "landscape" in wanted:
        wanted.insert(2, "loaded")
    for kind in wanted:
        cmd = [sys.executable, __file__, *passed, "--resolution", str(args.resolution),
               "--top-k", str(args.top_k), "--measure", kind]  # fmt: skip
        code, stdout, stderr = run_capped(cmd, args.max_rss_gib)
        if code != 0:
            sys.exit(f"{kind} failed (exit {code}):\n{stderr[-3000:]}")
        results[kind] = json.loads(stdout.strip().splitlines()[-1])
    return results


def run_capped(cmd: list[str], max_rss_gib: float) -> tuple[int, str, str]:
    """Run ``cmd``; kill it (by its pid) if its resident set exceeds ``max_rss_gib``."""
    import tempfile
    import threading

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        killed = []

        def watch() -> None:
            while proc.poll() is None:
                try:
                    with open(f"/proc/{proc.pid}/status") as f:
                        rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
                except (OSError, StopIteration):
                    rss = 0
                if rss > max_rss_gib * 2**20:
                    killed.append(rss)
                    proc.kill()
                    return
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = proc.wait()
        watcher.join()
        out.seek(0)
        err.seek(0)
        stderr = err.read()
        if killed:
            stderr += f"\nkilled: resident set {killed[0] / 2**20:.1f} GiB > {max_rss_gib} GiB"
        return code, out.read(), stderr


def report_shape(args, results: dict) -> None:
    """The tables of one model."""
    base = results["baseline"]
    print(f"GPT-NeoX-style LM: hidden {args.hidden}, {args.layers} layers, {args.heads} heads, "
          f"vocab {args.vocab}: {base['n_params']:,} parameters; batch {args.batch} x "
          f"{args.seq} tokens; torch threads {base['threads']}")  # fmt: skip
    print(f"baseline (import torch, build model and batch): peak RSS "
          f"{base['peak_rss_kib'] / 1024:.0f} MiB\n")  # fmt: skip
    param_mib = base["n_params"] * 4 / 2**20
    print(f"{'measurement':<38}{'seconds':>9}{'s/point':>9}{'extra peak MiB':>16}"
          f"{'x forward':>11}{'x params':>10}")  # fmt: skip
    fwd = results["forward"]
    fwd_mem = max(fwd["peak_rss_kib"] - base["peak_rss_kib"], 1)
    labels = {"forward": "forward pass + loss", "gradient": "one gradient",
              "landscape": f"landscape {args.resolution}x{args.resolution} grid",
              "hessian": f"Hessian top-{args.top_k}, default memory",
              "hessian-whole": f"Hessian top-{args.top_k}, whole basis"}  # fmt: skip
    for kind, label in labels.items():
        if kind not in results:
            continue
        r = results[kind]
        extra = r["peak_rss_kib"] - base["peak_rss_kib"]
        per = r["seconds"] / r["points"] if "points" in r else float("nan")
        print(f"{label:<38}{r['seconds']:>9.2f}{per:>9.3f}{extra / 1024:>16.1f}"
              f"{extra / fwd_mem:>11.1f}{extra / 1024 / param_mib:>10.1f}")  # fmt: skip
    if "landscape" in results:
        print(f"\nlandscape engine {results['landscape']['engine']}, "
              f"grad mode {results['landscape']['grad_mode']}, "
              f"centre loss {results['landscape']['center_loss']!r}")  # fmt: skip
        lean_table(results, param_mib)
    for kind in ("hessian", "hessian-whole"):
        if kind in results:
            h = results[kind]
            print(
                f"{labels[kind]}: {h['strategy']}; {h['hvps']} HVPs, {h['restarts']} "
                f"restarts, {h['converged']}/{args.top_k} converged"
                f"{' (warned)' if h['warned'] else ''}; eigenvalues {h['eigenvalues']}; "
                f"time outside HVPs {100 * h['outside_share']:.0f}%; predicted "
                f"{h['predicted_hvps']} HVPs, {h['predicted_s']:.1f} s, "
                f"{h['predicted_mib']:.0f} MiB above the loaded model"
            )
            if h.get("warning"):
                print(f"  warning: {h['warning']}")


def summary_table(args, summary: dict) -> None:
    """One row per model: the costs as multiples of what the model itself costs."""
    print(f"summary: batch {args.batch} x {args.seq} tokens, top-{args.top_k}, "
          f"{args.resolution}x{args.resolution} landscape")  # fmt: skip
    head = (f"{'shape':<13}{'params':>12}{'HVP/grad':>9}{'pt/fwd':>8}{'outside':>8}"
            f"{'H x par':>8}{'L x par':>8}{'HVPs pred/meas':>15}{'s pred/meas':>14}"
            f"{'MiB pred/meas':>15}  basis")  # fmt: skip
    print(head)
    for name, r in summary.items():
        base, grad, fwd = r["baseline"], r.get("gradient"), r["forward"]
        param_mib = base["n_params"] * 4 / 2**20
        h, land = r.get("hessian"), r.get("landscape")
        cells = [f"{name:<13}{base['n_params']:>12,}"]
        cells.append(f"{h['hvp_s'] / grad['seconds']:>9.2f}" if h and grad else f"{'-':>9}")
        per = land["seconds"] / land["points"] / fwd["seconds"] if land else None
        cells.append(f"{per:>8.2f}" if per else f"{'-':>8}")
        if h and grad:
            above = (h["peak_rss_kib"] - grad["peak_rss_kib"]) / 1024 / param_mib
            measured_mib = (h["peak_rss_kib"] - base["peak_rss_kib"]) / 1024
            cells += [f"{100 * h['outside_share']:>7.0f}%", f"{above:>8.1f}"]
        else:
            cells += [f"{'-':>8}", f"{'-':>8}"]
        if land:
            loaded = r["loaded"]["loaded_kib"]
            cells.append(f"{(land['evaluate_kib'] - loaded) / 1024 / param_mib:>8.2f}")
        else:
            cells.append(f"{'-':>8}")
        if h and grad:
            cells += [
                f"{h['predicted_hvps']:>7}/{h['hvps']:<7}",
                f"{h['predicted_s']:>7.0f}/{h['seconds']:<6.0f}",
                f"{h['predicted_mib']:>7.0f}/{measured_mib:<7.0f}",
                f"  {h['strategy'].split(',')[0]}; {h['converged']}/{args.top_k} conv.",
            ]
        print("".join(cells))
    print(
        "HVP/grad: seconds per HVP over seconds per gradient; pt/fwd: per landscape point over "
        "a forward; outside: the Hessian's time outside HVPs; H x par: the Hessian's peak "
        "above the one-gradient process, in parameter sizes (float32); L x par: the "
        "landscape's evaluation peak above the loaded process; pred/meas: the cost estimate "
        "(saddles.runs.cost) beside the measurement (MiB above the loaded model)."
    )


def lean_table(results: dict, param_mib: float) -> None:
    """The landscape's peak above the ``loaded`` baseline, in MiB and parameter sizes."""
    loaded, land = results["loaded"], results["landscape"]
    base = loaded["loaded_kib"]
    print(f"\nabove a loaded process (model, batch, landscape code, one no-grad forward): "
          f"peak RSS {base / 1024:.0f} MiB; parameters {param_mib:.1f} MiB")  # fmt: skip
    print(f"{'landscape phase':<44}{'peak above loaded MiB':>22}{'x params':>10}")
    rows = [("making 2 random directions", land["directions_kib"]),
            ("after making them (RSS)", land["held_kib"]),
            ("evaluate (directions held)", land["evaluate_kib"]),
            ("whole process", land["peak_rss_kib"])]  # fmt: skip
    for label, kib in rows:
        extra = (kib - base) / 1024
        print(f"{label:<44}{extra:>22.1f}{extra / param_mib:>10.2f}")


if __name__ == "__main__":
    main()
