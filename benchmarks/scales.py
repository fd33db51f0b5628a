"""Topology across scales on a small GPT-NeoX at a mid-training checkpoint.

Trains a character-level GPT-NeoX (Hugging Face ``transformers``, eager attention, built from
a config: nothing is downloaded) for ``--steps`` AdamW steps of a ``--schedule``-step cosine
schedule on the package's character corpus, then analyzes that checkpoint with a span sweep
(``span: auto``, :mod:`saddles.landscape.scales`) on two planes: a random filter-normalized
plane (Li et al. 2018) and the plane of the top and the most negative Hessian eigenvectors
(``hessian_which: top_bottom``; raw unit eigenvectors, ``norm: none`` and ``ignore_1d:
false``, so that the plane is spanned by the eigenvectors themselves). Prints, per plane and
span, the minima, saddles and saddles above the noise floor (2x the float32-vs-float64
floor), then each plane's critical span and basin radius; draws the counts against the span
(log axis) into ``--figure``.

One torch thread (set below). A measurement, not a timing: the seconds are printed for
orientation only.

    PYTHONPATH=src python benchmarks/scales.py --figure scale-sweep.png
"""

from __future__ import annotations

import argparse
import math
import time

import torch

torch.set_num_threads(1)


def build(vocab_size: int, layers: int, hidden: int, block: int, seed: int):
    """A GPT-NeoX of ``layers`` x ``hidden`` (4 heads), wrapped for :func:`lm_loss`."""
    import transformers

    from saddles.experiments.lm.hf import HFCausalLMAdapter

    torch.manual_seed(seed)
    config = transformers.GPTNeoXConfig(
        num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=4,
        intermediate_size=4 * hidden, vocab_size=vocab_size, max_position_embeddings=block,
        bos_token_id=0, eos_token_id=0, use_cache=False, tie_word_embeddings=False,
        hidden_dropout=0.0, attention_dropout=0.0,
    )  # fmt: skip
    config._attn_implementation = "eager"  # double backward for Hessian-vector products
    return HFCausalLMAdapter(transformers.GPTNeoXForCausalLM(config)).eval()


def train(model, ids, steps: int, schedule: int, block: int, seed: int) -> list[float]:
    """AdamW (lr 3e-3, warmup 50, cosine over ``schedule`` steps), stopped after ``steps``."""
    from saddles.experiments.lm.data import batch_at
    from saddles.experiments.lm.model import lm_loss
    from saddles.experiments.lm.train import learning_rate

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    losses = []
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, 3e-3, 50, schedule, 0.1)
        loss = lm_loss(model, batch_at(ids, step, 16, block, seed))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def sweep(model, data, norm: str, kinds: list[str], resolution: int, ignore_1d: bool = True):
    from saddles.experiments.lm.model import lm_loss
    from saddles.runs.analyze import AnalysisConfig, analyze

    config = AnalysisConfig(directions=kinds, hessian_which="top_bottom", norm=norm,
                            ignore_1d=ignore_1d,
                            span="auto", resolution=resolution, representations=["grid-full"],
                            hessian=False, hessian_top_k=1, trace_matvecs=6, density_lanczos=4,
                            loops=False, noise_points=32, threshold=0.01)  # fmt: skip
    return analyze(model, lm_loss, data, config, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300, help="the checkpoint's step")
    parser.add_argument("--schedule", type=int, default=1000, help="the schedule's length")
    parser.add_argument("--eval-batch", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default="scale-sweep.png")
    args = parser.parse_args()

    from saddles.experiments.lm.data import char_corpus, encode, fixed_eval_batch, train_val_split

    text, vocab = char_corpus()
    train_ids, val_ids = train_val_split(encode(text, vocab))
    model = build(len(vocab), args.layers, args.hidden, args.block, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    losses = train(model, train_ids, args.steps, args.schedule, args.block, args.seed)
    data = [fixed_eval_batch(val_ids, args.eval_batch, args.block, args.seed)]
    print(
        f"GPT-NeoX {args.layers} layers x {args.hidden}, {n_params:,} parameters, step "
        f"{args.steps} of a {args.schedule}-step schedule (train loss {losses[-1]:.3f}, "
        f"{time.perf_counter() - t0:.0f} s); eval batch {args.eval_batch} x {args.block} "
        f"characters; grids {args.resolution}^2; torch threads {torch.get_num_threads()}"
    )
    t0 = time.perf_counter()
    planes = {"random (filter-normalized)": sweep(model, data, "filter", ["random"],
                                                  args.resolution),
              "Hessian top/bottom (unit eigenvectors)": sweep(model, data, "none", ["hessian"],
                                                              args.resolution, False)}  # fmt: skip
    print(f"sweeps: {time.perf_counter() - t0:.0f} s\n")
    head = f"{'plane':<40} {'span':>8} {'minima':>6} {'saddles':>7} {'>noise':>6} " \
           f"{'floor':>9} {'range':>9}"  # fmt: skip
    print(head)
    print("-" * len(head))
    curves = {}
    for label, a in planes.items():
        rows = a.rows()
        kind = a.config.directions[0]
        points = []
        for r in rows:
            if r["sweep_span"] == "":
                continue
            rng = r["value_max"] - r["value_min"]
            print(
                f"{label:<40} {r['sweep_span']:>8g} {r['n_minima']:>6} {r['n_saddles']:>7} "
                f"{r['n_saddles_above_noise']:>6} {r['noise_floor']:>9.2e} {rng:>9.3g}"
            )
            points.append((r["sweep_span"], r["n_minima"], r["n_saddles"],
                           r["n_saddles_above_noise"]))  # fmt: skip
        curves[label] = points
        (summary,) = [r for r in rows if r["sweep_span"] == ""]
        scales = a.scales[kind]
        crit = summary["critical_span"]
        print(
            f"{'':<40} critical span {crit:g}"
            + (f" ({summary['critical_span_reason']})" if not math.isfinite(crit) else "")
        )
        radii = ", ".join(f"{v:.3g}" for v in summary["basin_radii"])
        print(
            f"{'':<40} basin radius {summary['basin_radius']:.3g} (per direction: {radii}; "
            f"rise {a.config.basin_rise:g} x centre loss {scales['centre_loss']:.4f})"
        )
        print(f"{'':<40} auto sweep: flat at {scales['flat_span']:g}, risen at "
              f"{scales['risen_span']:g} (noise floor {scales['noise_floor']:.2e}, rise "
              f"threshold {scales['threshold']:.3g})" + (
                  f"; {'; '.join(scales['notes'])}" if scales["notes"] else ""))  # fmt: skip
        if kind == "hessian":
            h = a.hessian
            print(f"{'':<40} eigenvalues: top {h['top_eigenvalue']:.4g} (residual "
                  f"{h['eigen_residuals'][0]:.2g}), bottom {h['bottom_eigenvalue']:.4g} "
                  f"(residual {h['bottom_residual']:.2g}, converged {h['bottom_converged']})" + (
                      f" ({h['bottom_note']})" if "bottom_note" in h else ""))  # fmt: skip
        print()
    figure(curves, args.figure, n_params, args.steps)
    print(f"figure: {args.figure}")


def figure(curves, path: str, n_params: int, step: int) -> None:
    """Minima, saddles and saddles above the noise floor against the span, per plane."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (label, points) in zip(axes[0], curves.items(), strict=True):
        spans = [p[0] for p in points]
        for i, name in ((1, "minima"), (2, "saddles"), (3, "saddles above noise")):
            ax.plot(spans, [p[i] for p in points], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("span (half-width of the sampled square)")
        ax.set_ylabel("count")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"GPT-NeoX, {n_params:,} parameters, step {step}: features against span")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
