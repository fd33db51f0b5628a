"""Seeded random vectors shared by the algorithms.

Owns the one rule every random start vector and probe follows: drawn on the CPU in float64 from a
``torch.Generator`` seeded by an integer, then cast and moved to the operator's dtype and device.
A seed therefore gives the same directions on every device and in every precision, and nothing
here reads or advances torch's global random state.

Imports torch only; must not import the operator or any algorithm (they import this).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class _Placed(Protocol):
    """Anything with a dtype and a device (an operator)."""

    dtype: torch.dtype
    device: torch.device


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded by ``seed`` (an integer; floats and bools are rejected)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, not {type(seed).__name__}")
    return torch.Generator().manual_seed(int(seed))


def gaussian(shape: tuple[int, ...], gen: torch.Generator, like: _Placed) -> torch.Tensor:
    """Standard normal entries, in ``like``'s dtype and on its device."""
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    return x.to(device=like.device, dtype=like.dtype)


def rademacher(shape: tuple[int, ...], gen: torch.Generator, like: _Placed) -> torch.Tensor:
    """Entries +1 or -1 with equal probability, in ``like``'s dtype and on its device."""
    x = torch.randint(0, 2, shape, generator=gen, dtype=torch.int64) * 2 - 1
    return x.to(device=like.device, dtype=like.dtype)
