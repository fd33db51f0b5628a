"""What one point of a batched chunk costs: memory, dispatched operators and FLOPs.

One evaluation of the centre point runs under :func:`cost_meter`, which records

- the peak activation memory (bytes): on CUDA from the allocator's peak statistics; on CPU
  from a dispatch mode that sees every allocation (its first use in a process imports parts
  of torch, about a second). With one parameter copy this is what a batched chunk needs per
  point, and :func:`chunk_cap` turns it into the largest chunk within the memory budget;
- the number of tensor operators dispatched and the FLOPs of the matrix products and
  convolutions (``torch.utils.flop_counter``), which :mod:`saddles.landscape.plan` uses to
  decide whether batching can pay.

These counts are functions of the model, the data's shapes and the loss's code, never of
timing. The default memory budget is a fixed share of the machine's *total* memory (not of
what happens to be free), so a plan does not change with the machine's load either.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from saddles.files import parse_bytes  # noqa: F401 (its old home; re-exported)
from saddles.io.data import tensors_of
from saddles.landscape.problem import Problem

MAX_CHUNK = 1024  # largest batched chunk the memory rule will pick


@dataclass(frozen=True)
class PointCost:
    """What evaluating one point costs, measured on the centre point."""

    bytes: int  # one parameter copy + peak activation memory
    n_ops: int  # tensor operators dispatched (all batches, loss and metrics)
    flops: int  # FLOPs of matrix products, convolutions and attention

    @property
    def flops_per_op(self) -> float:
        return self.flops / max(1, self.n_ops)


class cost_meter:
    """Context that measures a :class:`PointCost` of the code inside it (``.cost`` after)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.cost: PointCost | None = None

    def __enter__(self) -> cost_meter:
        self.peak = _CudaPeak(self.problem.device) if self.problem.device.type == "cuda" else None
        if self.peak is None:
            _warm_dispatch_mode()
            problem = self.problem
            existing = [*problem.params, *problem.center, *problem.model.buffers()]
            existing += [t for b in problem.batches for t in tensors_of(b)]  # tuples or dicts
            self.peak = PeakMemory(t.untyped_storage().data_ptr() for t in existing)
        self.counter = _OpCounter()
        self.flops = FlopCounterMode(display=False)
        self.peak.__enter__()
        self.counter.__enter__()
        self.flops.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        self.flops.__exit__(*exc)
        self.counter.__exit__(*exc)
        self.peak.__exit__(*exc)
        params = sum(w.numel() * w.element_size() for w in self.problem.center)
        self.cost = PointCost(
            bytes=int(params + self.peak.peak),
            n_ops=int(self.counter.n),
            flops=int(self.flops.get_total_flops()),
        )
        return False


def _warm_dispatch_mode() -> None:
    # The first dispatch-mode op imports parts of torch that warn about their own
    # deprecations; do it on a trivial op, so users see only their own warnings.
    with warnings.catch_warnings(), _OpCounter():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.zeros(1) + 1


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


class _CudaPeak:
    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize(self.device)
        self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        return False


class PeakMemory(TorchDispatchMode):
    """Track the peak bytes of tensor storage allocated (and still alive) inside the block;
    the storages whose data pointers are in ``existing`` are not counted."""

    def __init__(self, existing: Iterable[int]):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.seen = set(existing)

    def _free(self, key: int, nbytes: int) -> None:
        self.seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                try:
                    storage = t.untyped_storage()
                    key, nbytes = storage.data_ptr(), storage.nbytes()
                except (RuntimeError, NotImplementedError):  # a wrapper without storage
                    continue
                if nbytes and key not in self.seen:
                    self.seen.add(key)
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key, nbytes)
        return out


def chunk_cap(per_point: int, budget: int | None, device: torch.device) -> int:
    """Largest batched chunk within the memory budget (default: :func:`default_budget`)."""
    if budget is None:
        budget = default_budget(device)
    return int(max(1, min(MAX_CHUNK, budget // max(1, per_point))))


def default_budget(device: torch.device) -> int:
    """A quarter of the machine's total RAM; on CUDA, 40% of the device's total memory."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * 0.4)
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    return int(total * 0.25)
