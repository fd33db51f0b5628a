"""Benchmark for a CUDA machine: the landscape engines and Hessian-vector products on a GPU.

For each workload, one table: seconds and points per second of a plain loop (parameters set in
place per point), the sequential engine, the batched engine at a few chunk sizes and auto
(``benchmarks/sampling.py``'s measurement, run on ``cuda``: interleaved repeats, the fastest
counts, synchronised before every clock read), then milliseconds per gradient and per
Hessian-vector product (:class:`saddles.hessian.HessianOperator`, double backward through a
cached graph) and their ratio.

Workloads:
(c) the convection PINN (``saddles.experiments.pinn``), 2-50x4-1 tanh, 1,000 collocation
    points, 41 x 41 grid;
(d) ResNet-20 (``saddles.experiments.resnet``) on 1,024 random 32 x 32 images, 15 x 15;
(e) the largest character GPT (``gpt_for_size("L4-d128")``) on 32 x 128 tokens, 15 x 15;
(f) a GPT-NeoX of about 100M parameters (``transformers.GPTNeoXConfig``: 12 layers, width 768,
    12 heads, vocabulary 8,192, eager attention) on 8 x 256 random tokens, 7 x 7.

About 5-8 minutes on one H200 in all (``--only`` picks workloads, ``--repeats`` the runs of
each engine). It stops at once, with a message, where CUDA is not available; ``--smoke`` runs
tiny versions of every workload on the CPU instead, to check the script itself.

Run: ``python benchmarks/gpu.py [--only pinn,resnet,gpt,neox] [--repeats 2] [--smoke]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import torch

from saddles.hessian import HessianOperator


def load_sampling_benchmark():
    """``benchmarks/sampling.py`` (its plain loop and engine table), imported by path."""
    path = Path(__file__).with_name("sampling.py")
    spec = importlib.util.spec_from_file_location("bench_sampling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="pinn,resnet,gpt,neox", help="workloads")
    parser.add_argument("--repeats", type=int, default=2, help="runs of every engine")
    parser.add_argument("--hvps", type=int, default=10, help="timed gradients and HVPs")
    parser.add_argument("--smoke", action="store_true", help="tiny workloads on the CPU")
    args = parser.parse_args()
    if args.smoke:
        device = "cpu"
    elif not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA GPU and torch.cuda.is_available() is False; "
                 "nothing was measured (--smoke checks the script on the CPU)")  # fmt: skip
    else:
        device = "cuda"
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 as on the CPU
        torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (smoke run)"
    print(f"torch {torch.__version__}, {name}; every engine runs {args.repeats} times")
    bench = load_sampling_benchmark()
    started = time.perf_counter()
    for key in args.only.split(","):
        t0 = time.perf_counter()
        title, model, loss, data, res, chunks = WORKLOADS[key](args.smoke)
        bench.run_workload(title, model, loss, data, res, chunks, device, args.repeats)
        hvp_rows(model, loss, data, device, args.hvps)
        print(f"({time.perf_counter() - t0:.0f} s)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


# --- workloads: (title, model, loss, batch, grid side, batched chunk sizes) --------------------


def pinn(smoke: bool):
    from saddles.experiments.pinn import convection_data, convection_loss, make_pinn

    data = convection_data(n_f=100 if smoke else 1000)
    res = 5 if smoke else 41
    return ("(c) convection PINN, beta 5", make_pinn(seed=0), convection_loss(5.0), data, res,
            (16, 64, 256))  # fmt: skip


def resnet(smoke: bool):
    from saddles.experiments.resnet import resnet20

    n = 16 if smoke else 1024
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    return (f"(d) ResNet-20, {n} images", resnet20(seed=0).eval(), cross_entropy,
            (images, labels), 3 if smoke else 15, (4, 16))  # fmt: skip


def gpt(smoke: bool):
    from saddles.experiments.lm import char_corpus, encode, fixed_eval_batch, gpt_for_size, lm_loss

    text, vocab = char_corpus()
    rows, block = (2, 32) if smoke else (32, 128)
    batch = fixed_eval_batch(encode(text, vocab), batch_size=rows, block_size=block, seed=0)
    model = gpt_for_size("L4-d128", len(vocab), block_size=block, seed=0).eval()
    return (f"(e) character GPT L4-d128, {rows}x{block} tokens", model, lm_loss, batch,
            3 if smoke else 15, (4, 16, 64))  # fmt: skip


def neox(smoke: bool):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    width, layers, heads, vocab, rows, block = (
        (64, 2, 4, 256, 2, 32) if smoke else (768, 12, 12, 8192, 8, 256)
    )
    config = GPTNeoXConfig(
        vocab_size=vocab, hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * width,
        max_position_embeddings=block, use_cache=False, attn_implementation="eager",
    )  # fmt: skip
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(config).eval()
    ids = torch.randint(0, vocab, (rows, block), generator=torch.Generator().manual_seed(0))
    n = sum(p.numel() for p in model.parameters())
    return (f"(f) GPT-NeoX {n / 1e6:.1f}M, {rows}x{block} tokens", model, neox_loss, (ids,),
            3 if smoke else 7, (4, 16))  # fmt: skip


def cross_entropy(model, batch):
    return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])


def neox_loss(model, batch):
    return model(input_ids=batch[0], labels=batch[0]).loss


WORKLOADS = {"pinn": pinn, "resnet": resnet, "gpt": gpt, "neox": neox}


# --- gradient against Hessian-vector product ---------------------------------------------------


def hvp_rows(model, loss, data, device, repeats: int) -> None:
    """Milliseconds per gradient and per HVP (after one untimed call of each)."""
    model = model.to(device)
    batch = tuple(t.to(device) for t in (data if isinstance(data, tuple) else (data,)))
    params = [p for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)

    def gradient():
        return torch.autograd.grad(loss(model, batch), params)

    op = HessianOperator(model, loss, [batch], device=device)
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(0)).to(device, op.dtype)
    t_grad = per_call(gradient, device, repeats)
    t_hvp = per_call(lambda: op.matvec(v), device, repeats)
    print(f"{'gradient':<22}{t_grad * 1e3:>9.2f} ms")
    print(f"{'HVP (double backward)':<22}{t_hvp * 1e3:>9.2f} ms  = {t_hvp / t_grad:.2f} gradients")


def per_call(fn, device, repeats: int) -> float:
    fn()  # warm-up: kernels, the cached graph, the operator's determinism check
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats


def sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
