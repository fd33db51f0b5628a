"""Torch's CPU thread count in a worker: set once when the worker starts, and recorded.

Workers that share a machine each get a share of its cores; left alone, every worker's torch
would start one thread per core and they would fight. Torch is imported only if present.
"""

from __future__ import annotations

import os


def set_torch_threads(n: int) -> None:
    """Limit this process to ``n`` torch (and OpenMP) threads."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(int(n))


def torch_threads() -> int | None:
    """Torch's current thread count in this process (``None`` without torch)."""
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())
