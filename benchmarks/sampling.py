"""Benchmark of the landscape sampler's engines against a plain Python loop.

The baseline is the loop every user could write: set the parameters in place to
``theta_0 + a d_1 + b d_2``, run the loss, next point. For each workload the same grid and
directions (Li et al.'s filter-normalized random directions on [-1, 1]^2) are evaluated by
the loop and by saddles' sequential, batched (a few chunk sizes) and auto engines,
interleaved, several times; the fastest run of each counts. Printed: seconds, points per
second, speed as a multiple of the plain loop's (t_loop / t_engine), and the largest relative
difference from the loop's values.

Workloads:
(a) MLP 2-64-64-1 tanh on 256 points, MSE (4,417 parameters), 31 x 31;
(b) CNN: 2 conv + linear on 512 of scikit-learn's 8 x 8 digits (5,050 parameters), 31 x 31;
(c) the convection PINN (Krishnapriyan et al. 2021; 2-50x4-1 tanh, physics loss with u_t and
    u_x on 100 collocation points plus initial and boundary terms), 31 x 31;
(d) ResNet-20 (He et al. 2016, the experiment's own) on 256 random 32 x 32 images, 7 x 7;
(e) the LM experiment's largest character GPT (4 layers, d = 128) on 8 x 128 tokens of
    Python's documentation (``pydoc_data.topics``), 11 x 11.

Goal (issue "one idea per file"): auto >= 0.97x the plain loop on (a) and (b), and faster
where batching helps. Run: ``python benchmarks/sampling.py [--threads 1] [--only mlp,cnn]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from saddles import directions, sampling
from saddles.experiments.pinn import convection_data, convection_loss, make_pinn
from saddles.experiments.resnet import resnet20
from saddles.landscape import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--only", default="mlp,cnn,pinn,resnet,gpt", help="workloads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every engine")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}; "
        f"every engine runs {args.repeats} times, interleaved; the fastest run is shown"
    )
    for name in args.only.split(","):
        title, model, loss, data, res, chunks = WORKLOADS[name]()
        run_workload(title, model, loss, data, res, chunks, args.device, args.repeats)


# --- workloads ---------------------------------------------------------------------------------


def mse(model, batch):
    return nn.functional.mse_loss(model(batch[0]), batch[1])


def cross_entropy(model, batch):
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def mlp_workload():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )  # fmt: skip
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    y = torch.sin(3 * x[:, :1]) * torch.cos(2 * x[:, 1:])
    return "(a) MLP 2-64-64-1, 256 points", model, mse, (x, y), 31, (16, 32, 64)


def cnn_workload():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[:512], dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(digits.target[:512])
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )  # fmt: skip
    return "(b) CNN 2 conv + linear, 512 digits", model, cross_entropy, (x, y), 31, (8, 32)


def pinn_workload():
    model = make_pinn(seed=0)
    return ("(c) convection PINN, beta 5", model, convection_loss(5.0), convection_data(), 31,
            (16, 32, 64))  # fmt: skip


def resnet_workload():
    model = resnet20(seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(256, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (256,), generator=gen)
    return "(d) ResNet-20, 256 images", model, cross_entropy, (images, labels), 7, (4,)


def gpt_workload():
    from saddles.experiments.lm import char_corpus, encode, fixed_eval_batch, gpt_for_size, lm_loss

    text, vocab = char_corpus()
    ids = encode(text, vocab)
    batch = fixed_eval_batch(ids, batch_size=8, block_size=128, seed=0)
    model = gpt_for_size("L4-d128", len(vocab), block_size=128, seed=0).eval()
    return "(e) character GPT L4-d128, 8x128 tokens", model, lm_loss, batch, 11, (4, 16)


WORKLOADS = {
    "mlp": mlp_workload,
    "cnn": cnn_workload,
    "pinn": pinn_workload,
    "resnet": resnet_workload,
    "gpt": gpt_workload,
}


# --- measurement -------------------------------------------------------------------------------


def plain_loop(model, loss, batch, dirs, points, device) -> np.ndarray:
    """The baseline: parameters set in place per point, the loss, a float; nothing else."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)  # as in the engines: no graph through the parameters
    w0 = [p.detach().clone() for p in params]
    d1, d2 = ([t.to(device) for t in d] for d in dirs.tensors)
    out = np.empty(len(points))
    for i, (a, b) in enumerate(points):
        with torch.no_grad():
            for p, w, u, v in zip(params, w0, d1, d2, strict=True):
                p.copy_(w + a * u + b * v)
        out[i] = float(loss(model, batch))
    with torch.no_grad():
        for p, w, flag in zip(params, w0, flags, strict=True):
            p.copy_(w)
            p.requires_grad_(flag)
    return out


def run_workload(title, model, loss, data, resolution, chunks, device, repeats) -> None:
    model = model.to(device)
    batch = tuple(t.to(device) for t in (data if isinstance(data, tuple) else (data,)))
    dirs = directions.random_directions(model, 2, seed=0, norm="filter", ignore_1d=True)
    coords = sampling.grid(resolution, (-1.0, 1.0))
    n = coords.n_points
    kw = {"device": device, "progress": False}
    # Warm-up (not timed): one-time imports and vmap's first call, so no engine pays them.
    evaluate(model, loss, batch, dirs, coords.points[:3], engine="batched", **kw)
    evaluate(model, loss, batch, dirs, coords.points[:3], **kw)

    runs = [("plain loop", None, None), ("sequential", "sequential", None)]
    runs += [(f"batched (chunk {c})", "batched", c) for c in chunks if c <= n]
    runs.append(("auto", "auto", None))
    best = {label: float("inf") for label, _, _ in runs}
    diffs: dict[str, float] = {}
    auto_info: dict = {}
    reference = None
    for _ in range(repeats):  # interleaved, so slow phases of a shared machine spread out
        for label, engine, chunk in runs:
            _sync(device)
            t0 = time.perf_counter()
            if engine is None:
                values = plain_loop(model, loss, batch, dirs, coords.points, device)
            else:
                land = evaluate(model, loss, batch, dirs, coords, engine=engine,
                                chunk_size=chunk, **kw)  # fmt: skip
                values = land.loss
                if engine == "auto":
                    auto_info = land.info
            _sync(device)
            best[label] = min(best[label], time.perf_counter() - t0)
            if reference is None:
                reference = values
            rel = np.abs(values - reference) / np.maximum(np.abs(reference), 1e-30)
            diffs[label] = max(diffs.get(label, 0.0), float(rel.max()))

    n_params = sum(p.numel() for p in model.parameters())
    chosen = auto_info["engine"]
    if chosen == "batched":
        chosen += f" (chunk {auto_info['chunk_size']})"
    print()
    print(f"{title}: {coords.shape[0]}x{coords.shape[1]} grid ({n} points), {n_params:,} params")
    print(f"auto chose {chosen}: {auto_info['decision']}")
    header = f"{'engine':<22}{'seconds':>9}{'points/s':>10}{'x plain loop':>14}{'max rel diff':>14}"
    print(header)
    print("-" * len(header))
    t_loop = best["plain loop"]
    for label, _, _ in runs:
        s = best[label]
        print(f"{label:<22}{s:>9.3f}{n / s:>10.1f}{t_loop / s:>14.2f}{diffs[label]:>14.1e}")


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
