"""Benchmark of the landscape sampler's engines: sequential, batched (vmap) and auto.

For three workloads it evaluates the same grid with every engine, in one process, and prints
seconds, points per second, each engine's speed relative to the sequential engine, the cost
per point as a multiple of one plain forward+loss of the same batch, an estimate of a chunk's
memory, and the largest relative difference from the sequential engine's values:

(a) the convection PINN (Krishnapriyan et al. 2021; 2-50x4-1 tanh, physics loss with u_t and
    u_x on 100 collocation points plus initial and boundary terms), 51 x 51 grid;
(b) ResNet-20 (He et al. 2016) on a batch of 256 random 32 x 32 images, 11 x 11 grid
    (7 x 7 by default here, to keep the run short on a small CPU; ``--full`` for 11 x 11);
(c) a 2-layer character transformer (d = 128, 4 heads) on 8 x 128 tokens of English text
    (Python's own documentation, ``pydoc_data.topics``), 21 x 21 grid.

Directions are Li et al.'s filter-normalized random directions on [-1, 1]^2. Goals (issue:
landscape sampling): "auto" within 10% of the best engine on every workload, >= 2x the loop on
(a). Run: ``python benchmarks/sampling.py [--threads 1] [--full] [--only pinn,resnet,lm]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from saddles import directions, sampling
from saddles.experiments.pinn import convection_data, convection_loss, make_pinn
from saddles.experiments.resnet import resnet20
from saddles.landscape import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--full", action="store_true", help="ResNet-20 on 11 x 11, not 7 x 7")
    parser.add_argument("--only", default="pinn,resnet,lm", help="comma-separated workloads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs of every engine, the fastest counts (default: 3 for the PINN, 2 otherwise)",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
        "every engine runs several times, interleaved; the fastest run is shown"
    )
    workloads = {
        "pinn": pinn_workload,
        "resnet": lambda: resnet_workload(11 if args.full else 7),
        "lm": lm_workload,
    }
    for name in args.only.split(","):
        title, model, loss, data, res, chunks = workloads[name]()
        repeats = args.repeats or (3 if name == "pinn" else 2)
        run_workload(title, model, loss, data, res, chunks, args.device, repeats)


# --- workloads ---------------------------------------------------------------------------------


def pinn_workload():
    model = make_pinn(seed=0)
    return ("(a) convection PINN, beta 5", model, convection_loss(5.0), convection_data(), 51,
            (16, 64, 256))  # fmt: skip


def resnet_workload(resolution: int):
    model = resnet20(seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(256, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (256,), generator=gen)
    return ("(b) ResNet-20, 256 images", model, nn.CrossEntropyLoss(), (images, labels),
            resolution, (4,))  # fmt: skip


def lm_workload():
    from pydoc_data.topics import topics

    text = "".join(topics[k] for k in sorted(topics))
    vocab = sorted(set(text))
    codes = torch.tensor([vocab.index(c) for c in text[:200_000]], dtype=torch.long)
    starts = torch.randint(0, len(codes) - 129, (8,), generator=torch.Generator().manual_seed(0))
    tokens = torch.stack([codes[s : s + 129] for s in starts.tolist()])
    torch.manual_seed(0)
    model = CharTransformer(len(vocab)).eval()
    return ("(c) char transformer d=128, 8x128 tokens", model, next_token_loss, tokens, 21,
            (8, 32))  # fmt: skip


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """GPT-style: token + position embeddings, 2 pre-norm blocks, final norm, linear head."""

    def __init__(self, vocab: int, d: int = 128, layers: int = 2, heads: int = 4, T: int = 128):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(T, d)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.head(self.ln(self.blocks(self.tok(idx) + self.pos(pos))))


def next_token_loss(model: nn.Module, batch) -> torch.Tensor:
    tokens = batch[0]
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


# --- measurement -------------------------------------------------------------------------------


def plain_forward_seconds(model, loss, data, device, repeats: int = 10) -> float:
    """Median time of one forward+loss of the batch (after two untimed calls)."""
    model = model.to(device)
    batch = tuple(t.to(device) for t in (data if isinstance(data, tuple) else (data,)))
    fn = loss if not isinstance(loss, nn.Module) else (lambda m, b: loss(m(b[0]), b[1]))
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # as in the engines: no graph through the parameters
    times = []
    for _ in range(repeats + 2):
        _sync(device)
        t0 = time.perf_counter()
        fn(model, batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
    for p, flag in zip(model.parameters(), flags, strict=True):
        p.requires_grad_(flag)
    return float(np.median(times[2:]))


def run_workload(title, model, loss, data, resolution, chunks, device, repeats) -> None:
    dirs = directions.random_directions(model, 2, seed=0, norm="filter", ignore_1d=True)
    coords = sampling.grid(resolution, (-1.0, 1.0))
    n = coords.n_points
    forward = plain_forward_seconds(model, loss, data, device)
    kw = {"device": device, "progress": False}
    # Warm-up (not timed): one-time imports and vmap's first call, so no engine pays them.
    probe = evaluate(model, loss, data, dirs, coords.points[:3], engine="batched", **kw)
    per_point_bytes = probe.info["memory_per_point_bytes"]

    runs = [("sequential", "sequential", None)]
    runs += [(f"batched (chunk {c})", "batched", c) for c in chunks if c <= n]
    runs.append(("auto", "auto", None))
    best = {label: float("inf") for label, _, _ in runs}
    labels, diffs, reference = {}, {}, None
    for _ in range(repeats):  # engines interleaved, so slow phases of a shared machine spread
        for label, engine, chunk in runs:
            _sync(device)
            t0 = time.perf_counter()
            land = evaluate(model, loss, data, dirs, coords, engine=engine, chunk_size=chunk, **kw)
            _sync(device)
            seconds = time.perf_counter() - t0
            if reference is None:
                reference = land.loss
            rel = np.abs(land.loss - reference) / np.maximum(np.abs(reference), 1e-30)
            diffs[label] = max(diffs.get(label, 0.0), float(rel.max()))
            if seconds < best[label]:
                best[label] = seconds
                used = land.info["chunk_size"] if land.info["engine"] == "batched" else None
                name = label
                if engine == "auto":
                    name = f"auto -> {land.info['engine']}" + (f" (chunk {used})" if used else "")
                labels[label] = (name, used)
    rows = []
    for label, _, _ in runs:
        name, used = labels[label]
        mem = f"{per_point_bytes * used / 1e6:.0f}" if used and per_point_bytes else "-"
        rows.append((name, best[label], diffs[label], mem))

    n_params = sum(p.numel() for p in model.parameters())
    print()
    print(f"{title}: {coords.shape[0]}x{coords.shape[1]} grid ({n} points), {n_params:,} params")
    print(f"plain forward+loss of the batch: {1e3 * forward:.3g} ms; fastest of {repeats} runs")
    header = (
        f"{'engine':<28}{'seconds':>9}{'points/s':>10}{'x sequential':>14}"
        f"{'cost/point (x fwd)':>20}{'est. MB/chunk':>15}{'max rel diff':>14}"
    )
    print(header)
    print("-" * len(header))
    t_seq = rows[0][1]
    for label, seconds, diff, mem in rows:
        print(
            f"{label:<28}{seconds:>9.2f}{n / seconds:>10.1f}{t_seq / seconds:>14.2f}"
            f"{seconds / n / forward:>20.2f}{mem:>15}{diff:>14.1e}"
        )
    fastest = min(r[1] for r in rows[:-1])
    print(f"auto / best engine: {rows[-1][1] / fastest:.2f} (goal <= 1.10)")


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
