"""Torch on a machine that other work keeps busy: thread count and OpenMP wait policy.

On a 2-core machine running other CPU-bound work, torch's default (one intra-op thread per
core) slowed a landscape 30x and a Hessian 36x, far beyond a fair share of the cores. The usual
suspect: torch's intra-op work runs in OpenMP parallel regions, and each region ends at a
barrier where the threads that finished wait for the one the scheduler took a core away from;
libgomp's waiting threads spin before they sleep (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``;
the libgomp manual), so they burn the very cores the late thread needs.

This script measures a fixed torch workload (forward passes of a small GPT-NeoX-style model,
the inner loop of a language-model landscape, and the same model's Hessian-vector products)
in fresh subprocesses under every combination of: threads (1, and one per core), the wait
policy (libgomp's default, ``PASSIVE``), and competing load (0, 1 and 2 busy
``while True: pass`` processes started here, and ended here by their pid). It prints seconds
(median of ``--repeats``) and each row's slowdown against the same setting on the quiet
machine, beside the fair share (the slowdown a process would see if the cores were shared
equally among all runnable threads).

Usage: python benchmarks/threads.py [--repeats 3] [--work 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOAD = r"""
import json, sys, time, torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
threads, work = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
cfg = GPTNeoXConfig(vocab_size=2048, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                    intermediate_size=1024, attn_implementation="eager")
torch.manual_seed(0)
model = GPTNeoXForCausalLM(cfg).eval()
tokens = torch.randint(0, 2048, (4, 65), generator=torch.Generator().manual_seed(1))
def loss():
    logits = model(input_ids=tokens[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, 2048), tokens[:, 1:].reshape(-1))
with torch.no_grad():
    loss()  # warm-up
    start = time.perf_counter()
    for _ in range(work):
        loss()
    forward = time.perf_counter() - start
params = [p for p in model.parameters()]
start = time.perf_counter()
for _ in range(max(1, work // 8)):
    g = torch.autograd.grad(loss(), params, create_graph=True)
    torch.autograd.grad(g, params, [torch.ones_like(p) for p in params])
hvp = time.perf_counter() - start
print(json.dumps({"forward": forward, "hvp": hvp, "threads": torch.get_num_threads()}))
"""


def run(threads: int, policy: str | None, work: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    done = subprocess.run([sys.executable, "-c", WORKLOAD, str(threads), str(work)],
                          capture_output=True, text=True, env=env, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=int, default=40, help="forward passes per measurement")
    parser.add_argument("--loads", default="0,1,2", help="busy processes to run beside")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    settings = [(1, None), (cores, None), (1, "PASSIVE"), (cores, "PASSIVE")]
    loads = [int(x) for x in args.loads.split(",")]
    times: dict[tuple, list[float]] = {}
    for load in loads:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        try:
            time.sleep(0.5 if load else 0)
            for _ in range(args.repeats):  # interleaved: a drift in load hits every setting
                for threads, policy in settings:
                    r = run(threads, policy, args.work)
                    times.setdefault((threads, policy, load), []).append(r["forward"] + r["hvp"])
                    print(f"  measured: threads {threads}, {policy or 'default'}, busy {load}: "
                          f"{r['forward'] + r['hvp']:.2f} s", flush=True)  # fmt: skip
        finally:
            for h in hogs:
                h.kill()
                h.wait()
    print(f"{cores} cores; workload: {args.work} forwards and {max(1, args.work // 8)} HVPs of "
          f"a 4-layer GPT-NeoX (hidden 256), median of {args.repeats}; busy processes are "
          "`while True: pass`; other work on the machine is not controlled")  # fmt: skip
    print(f"{'threads':>8} {'OMP_WAIT_POLICY':<16}{'busy':>5}{'seconds':>10}{'x quiet':>9}"
          f"{'fair x':>8}")  # fmt: skip
    for threads, policy in settings:
        quiet = statistics.median(times[(threads, policy, loads[0])])
        for load in loads:
            t = statistics.median(times[(threads, policy, load)])
            fair = max(1.0, (threads + load) / cores)  # equal shares of the cores
            print(f"{threads:>8} {policy or 'default':<16}{load:>5}{t:>10.2f}{t / quiet:>9.2f}"
                  f"{fair:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
