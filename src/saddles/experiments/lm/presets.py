"""The experiment's model sizes and training presets.

Parameter counts of :data:`SIZES` (vocabulary 103; the position table is the only part that
depends on ``block_size``):

======== ======= ====== ======= ============ =============
name     layers  width  heads   block 64     block 128
======== ======= ====== ======= ============ =============
L1-d32   1       32     2       21,408       23,456
L2-d64   2       64     4       117,376      121,472
L3-d96   3       96     6       361,632      367,776
L4-d128  4       128    8       827,904      836,096
======== ======= ====== ======= ============ =============

Owns the numbers that define a family of runs: imports torch and
:mod:`saddles.experiments.lm.model`, nothing of data, training or the experiment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from saddles.experiments.lm.model import GPT


@dataclass(frozen=True)
class GPTSize:
    """Depth, width and heads of one model size (head dimension 16 throughout)."""

    n_layer: int
    n_embd: int
    n_head: int


#: The model sizes, smallest first: width and depth grow together (``n_embd = 32 n_layer``).
SIZES: dict[str, GPTSize] = {
    "L1-d32": GPTSize(1, 32, 2),
    "L2-d64": GPTSize(2, 64, 4),
    "L3-d96": GPTSize(3, 96, 6),
    "L4-d128": GPTSize(4, 128, 8),
}


def _size_name(name_or_index: str | int) -> str:
    names = list(SIZES)
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
        if not -len(names) <= name_or_index < len(names):
            raise IndexError(f"size index {name_or_index} out of range; {len(names)} sizes")
        return names[name_or_index]
    if name_or_index not in SIZES:
        raise KeyError(f"unknown size {name_or_index!r}; choose one of {names}")
    return str(name_or_index)


def gpt_for_size(name_or_index: str | int, vocab_size: int, block_size: int, seed: int = 0) -> GPT:
    """The :class:`GPT` of size ``SIZES[name]`` (or the ``index``-th size), initialized after
    ``torch.manual_seed(seed)``."""
    size = SIZES[_size_name(name_or_index)]
    torch.manual_seed(seed)
    return GPT(vocab_size, size.n_layer, size.n_head, size.n_embd, block_size)


@dataclass(frozen=True)
class LMPreset:
    """Sizes and training settings of a family of runs (same data order and schedule)."""

    sizes: tuple[str, ...]
    steps: int
    batch_size: int
    block_size: int
    lr: float
    weight_decay: float
    warmup: int
    n_checkpoints: int
    eval_batch_size: int
    device: str  # "cpu", "cuda" or "auto" (cuda when available)


PRESETS: dict[str, LMPreset] = {
    # CPU-sized: all four sizes, about 2.5 minutes of training per training seed on one CPU
    # thread (see run_lm_training).
    "small": LMPreset(
        sizes=tuple(SIZES),
        steps=1000,
        batch_size=16,
        block_size=64,
        lr=4e-3,
        weight_decay=0.1,
        warmup=50,
        n_checkpoints=12,
        eval_batch_size=32,
        device="cpu",
    ),
    # GPU-sized: all four sizes, 128-character contexts, 12.3M training tokens per size (about
    # 29 passes over the training text); L4-d128 takes about 0.5 s per step on one CPU thread.
    "full": LMPreset(
        sizes=tuple(SIZES),
        steps=3000,
        batch_size=32,
        block_size=128,
        lr=3e-3,
        weight_decay=0.1,
        warmup=100,
        n_checkpoints=15,
        eval_batch_size=64,
        device="auto",
    ),
}
