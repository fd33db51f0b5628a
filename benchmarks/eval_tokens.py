"""Tokens that ``eval_tokens="auto"`` spends, against a fixed budget of the same accuracy.

A small character GPT (the language-model experiment's model, 2 layers, width 32) is trained
for a few hundred steps on the experiment's character corpus; its landscape on a random
filter-normalized plane (an 11 x 11 grid) is evaluated on 1,024 validation windows of 32
tokens (32,768 tokens, in a seeded random order), first with all of them at every point (the
reference), then with ``eval_tokens="auto"`` at several targets, and with a fixed budget at
every prefix that auto can stop at. For each target the table prints:

- the tokens auto spent over the grid, and the fixed budget of equal accuracy: the smallest
  prefix at which every point's standard error is at most the largest one auto left (tokens
  per point x points), with their ratio;
- the standard error reached (largest and median, as a fraction of the value range);
- the error against the all-data landscape (largest |difference| / range), and the bottleneck
  distance from the all-data diagram (8-connected merge tree, gudhi) / range, for auto and
  for the fixed budget.

A second table puts the noise floors of the all-data landscape side by side: the arithmetic
floor (float32 against float64 at 32 points), the batch floor (the bottleneck distance between
the landscapes on the two halves of the windows) and the median standard error, with the
saddles counted raw and above twice the floor used.

Everything runs on one torch thread (printed). A few minutes on a laptop CPU.

Usage: python benchmarks/eval_tokens.py [--steps N] [--resolution N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from saddles.directions import random_directions
from saddles.experiments.lm import (
    GPT,
    char_corpus,
    encode,
    fixed_eval_batch,
    lm_loss,
    train_val_split,
)
from saddles.landscape import evaluate
from saddles.landscape.noise import batch_floor, batch_landscapes, noise_floor
from saddles.sampling import grid
from saddles.topology import noise_metrics
from saddles.topology.distances import bottleneck_distance, distance_diagram

TARGETS = (0.05, 0.03, 0.02)
WINDOWS = 1024


def train(steps: int, block: int) -> tuple[GPT, torch.Tensor]:
    text, vocab = char_corpus()
    train_ids, val_ids = train_val_split(encode(text[:200_000], vocab))
    torch.manual_seed(0)
    model = GPT(vocab_size=len(vocab), n_layer=2, n_head=2, n_embd=32, block_size=block)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        starts = torch.randint(0, len(train_ids) - block - 1, (32,), generator=gen)
        x = torch.stack([train_ids[s : s + block] for s in starts])
        y = torch.stack([train_ids[s + 1 : s + block + 1] for s in starts])
        opt.zero_grad()
        lm_loss(model, (x, y)).backward()
        opt.step()
    return model.eval(), val_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--resolution", type=int, default=11, help="grid points per axis")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch threads: {torch.get_num_threads()}")
    block = 32
    t0 = time.perf_counter()
    model, val_ids = train(args.steps, block)
    x, y = fixed_eval_batch(val_ids, WINDOWS, block)
    # a prefix must be a random sample of the windows: fixed_eval_batch sorts their starts, so
    # put them in a seeded random order first (the order is part of the inputs)
    order = torch.randperm(WINDOWS, generator=torch.Generator().manual_seed(1))
    data = (x[order], y[order])
    dirs = random_directions(model, 2, seed=0, norm="filter")
    coords = grid(args.resolution, (-1.0, 1.0), dims=2)
    kw = {"engine": "sequential", "progress": False}
    full = evaluate(model, lm_loss, data, dirs, coords, **kw)
    spread = float(np.ptp(full.loss))
    full_diagram = distance_diagram(full.topology("full")[0])
    n = full.n_points
    print(
        f"model: {full.info['model']['n_params']:,} parameters, trained {args.steps} steps; "
        f"{n} points; all data: {full.info['data']['n_samples']} windows, "
        f"{int(np.prod(data[0].shape)):,} tokens per point; loss {full.loss.min():.4f}.."
        f"{full.loss.max():.4f} (range {spread:.4f}); setup {time.perf_counter() - t0:.0f} s"
    )

    def errors(land) -> tuple[float, float]:
        worst = float(np.max(np.abs(land.loss - full.loss))) / spread
        diagram = distance_diagram(land.topology("full")[0])
        return worst, bottleneck_distance(full_diagram, diagram) / spread

    autos = {t: evaluate(model, lm_loss, data, dirs, coords, eval_tokens="auto",
                         stderr_target=t, **kw) for t in TARGETS}  # fmt: skip
    prefixes = autos[TARGETS[0]].info["data"]["prefix_tokens"]
    fixed = {m: evaluate(model, lm_loss, data, dirs, coords, eval_tokens=m, **kw)
             for m in prefixes}  # fmt: skip
    head = (f"{'target':>7} {'auto tokens':>12} {'fixed tokens':>13} {'fixed/auto':>10} "
            f"{'SE max':>8} {'SE med':>8} {'err auto':>9} {'err fixed':>9} "
            f"{'dB auto':>8} {'dB fixed':>8}")  # fmt: skip
    print(
        "\nSE: standard error of the loss over the evaluation windows; err: largest |value - "
        "all-data value|; dB: bottleneck distance to the all-data diagram; all / range"
    )
    print(head)
    for target, auto in autos.items():
        reached = float(np.max(auto.loss_stderr))
        budget = next((m for m in prefixes if fixed[m].loss_stderr.max() <= reached),
                      prefixes[-1])  # fmt: skip
        spent, equal = int(auto.tokens.sum()), budget * n
        err_auto, db_auto = errors(auto)
        err_fixed, db_fixed = errors(fixed[budget])
        print(
            f"{target:>7g} {spent:>12,} {equal:>13,} {equal / spent:>10.2f} "
            f"{reached / spread:>8.4f} {np.median(auto.loss_stderr) / spread:>8.4f} "
            f"{err_auto:>9.4f} {err_fixed:>9.4f} {db_auto:>8.4f} {db_fixed:>8.4f}"
        )
    print(
        f"\nprefixes (tokens per point): {prefixes}; all data at every point: "
        f"{prefixes[-1] * n:,} tokens"
    )
    for target, auto in autos.items():
        counts = {m: int((auto.tokens == m).sum()) for m in prefixes}
        print(f"target {target:g}: points stopping at each prefix {counts}")

    tree = full.topology("full")[0]
    arithmetic = noise_floor(model, lm_loss, data, dirs, full)["noise_floor"]
    halves = batch_landscapes(model, lm_loss, data, dirs, coords, 2, **kw)
    batch = batch_floor([h.topology("full")[0] for h in halves])
    counts = noise_metrics(tree, arithmetic, batch_floor=batch)
    only_arithmetic = noise_metrics(tree, arithmetic)
    print("\nnoise floors of the all-data landscape (loss units and / range):")
    print(f"{'arithmetic':>12} {'batch (2 halves)':>17} {'median SE':>10} {'saddles raw':>12} "
          f"{'>2x arith':>10} {'>2x used':>9} {'floor used':>11}")  # fmt: skip
    print(
        f"{arithmetic:>12.3g} {batch:>17.3g} {np.median(full.loss_stderr):>10.3g} "
        f"{len(tree.saddles):>12} {only_arithmetic['n_saddles_above_noise']:>10} "
        f"{counts['n_saddles_above_noise']:>9} {counts['noise_floor_source']:>11}"
    )
    print(
        f"{arithmetic / spread:>12.2e} {batch / spread:>17.4f} "
        f"{np.median(full.loss_stderr) / spread:>10.4f}"
    )


if __name__ == "__main__":
    main()
