"""Cost of the training-dynamics analysis: seconds per checkpoint, by stage and model size.

Trains the LM experiment's small preset (or reuses it in --out), then analyzes the final
checkpoint of each size with the experiment's default subspaces (a 21x21 grid with Hessian
metrics, and 512 Sobol points in 4D with a kNN graph) and prints seconds per stage: the
landscape of each subspace (engine chosen by the auto rule),
the Hessian (top eigenpairs, Hutch++ trace, SLQ density) and the topology, with each size's
total as a ratio to the smallest size. torch runs on one thread (printed).

Usage: python benchmarks/dynamics.py [--out DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from saddles.experiments.lm import (
    GPT,
    PRESETS,
    char_corpus,
    default_lm_configs,
    encode,
    fixed_eval_batch,
    lm_loss,
    load_lm_checkpoint,
    run_lm_training,
    train_val_split,
)
from saddles.runs.analyze import analyze


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="training directory (reused)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out or Path(tempfile.mkdtemp(prefix="saddles-dyn-"))
    t0 = time.perf_counter()
    dirs = run_lm_training(out, "small", steps=args.steps, progress=False)
    train_s = time.perf_counter() - t0
    text, vocab = char_corpus()
    train_ids, _ = train_val_split(encode(text, vocab))
    batch = fixed_eval_batch(train_ids, 8, PRESETS["small"].block_size, 0)
    configs = default_lm_configs()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; training the small "
          f"preset took {train_s:.1f} s (0 if reused from {out})\n")  # fmt: skip
    head = f"{'size':<8}{'params':>9}{'grid 21^2':>11}{'4D 512 pts':>12}{'Hessian':>9}"
    print(head + f"{'topology':>10}{'total':>8}{'x smallest':>12}")
    base = None
    for size, ckdir in dirs.items():
        model = load_lm_checkpoint(ckdir)
        n_params = sum(p.numel() for p in GPT(**json.loads((ckdir / "run.json").read_text())
                                                 ["model"]).parameters())  # fmt: skip
        times = {}
        for label, cfg in configs.items():
            a = analyze(model, lm_loss, batch, cfg, progress=False)
            times[f"landscape {label}"] = a.timings["landscape_random_s"]
            times["topology"] = times.get("topology", 0.0) + a.timings["topology_random_s"]
            times["hessian"] = times.get("hessian", 0.0) + a.timings.get("hessian_s", 0.0)
        total = sum(times.values())
        base = base or total
        print(f"{size:<8}{n_params:>9,}{times['landscape 2d']:>11.2f}{times['landscape 4d']:>12.2f}"
              f"{times['hessian']:>9.2f}{times['topology']:>10.3f}{total:>8.2f}"
              f"{total / base:>12.2f}")  # fmt: skip
    print("\nseconds per checkpoint; a run analyzes 12 checkpoints per size")


if __name__ == "__main__":
    main()
