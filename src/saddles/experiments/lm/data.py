"""The character corpus and its batches: text that ships with Python, as int64 token windows.

- corpus: ``pydoc_data.topics`` (the text of Python's ``help()`` topics, 464,970 characters,
  103 distinct with CPython 3.11), character-level, the first 90% for training and the last 10%
  for validation;
- batches: training batch ``i`` is a pure function of ``(seed, i)``, so every model size sees
  the same batches in the same order, and a resumed run sees what an uninterrupted one would;
  a batch is ``(x, y)``, int64 ``(B, T)``, with ``y`` the text shifted by one.

Owns the data only: imports numpy, torch and :mod:`saddles.io.data`, nothing of the model,
training or experiment modules.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from saddles.io.data import Batch


def char_corpus() -> tuple[str, str]:
    """``(text, vocab)``: the values of ``pydoc_data.topics.topics`` joined in sorted-key order,
    and the sorted string of its distinct characters (464,970 and 103 with CPython 3.11).

    The text depends on the Python version that ships it; :func:`run_lm_training` records its
    length and vocabulary in ``run.json``.
    """
    from pydoc_data.topics import topics

    text = "".join(topics[key] for key in sorted(topics))
    return text, "".join(sorted(set(text)))


def encode(text: str, vocab: str) -> torch.Tensor:
    """Characters to int64 ids (positions in ``vocab``); an unknown character is an error."""
    index = {ch: i for i, ch in enumerate(vocab)}
    try:
        return torch.tensor([index[ch] for ch in text], dtype=torch.int64)
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None


def decode(ids: torch.Tensor | Sequence[int], vocab: str) -> str:
    """Ids back to text."""
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
    return "".join(vocab[i] for i in ids)


def train_val_split(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, ...]:
    """``(train, val)``: the first ``1 - val_fraction`` of the ids and the rest (no shuffling)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_train = int(round(len(ids) * (1.0 - val_fraction)))
    return ids[:n_train], ids[n_train:]


def _windows(ids: torch.Tensor, starts: np.ndarray, block_size: int) -> Batch:
    offsets = torch.as_tensor(starts, dtype=torch.int64)[:, None] + torch.arange(block_size + 1)
    chunk = ids[offsets]
    return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()


def _check_lengths(ids: torch.Tensor, batch_size: int, block_size: int) -> None:
    if batch_size < 1 or block_size < 1:
        raise ValueError(
            f"batch_size and block_size must be positive, got {batch_size}, {block_size}"
        )
    if len(ids) < block_size + 1:
        raise ValueError(f"{len(ids)} tokens cannot fill one window of block_size {block_size}")


def batch_at(ids: torch.Tensor, step: int, batch_size: int, block_size: int, seed: int) -> Batch:
    """Training batch number ``step``: ``(x, y)``, int64 ``(batch_size, block_size)``, with
    ``y`` the next character of each position of ``x``.

    The window starts are drawn uniformly by numpy's PCG64 seeded with ``(seed, step)``: a pure
    function of its arguments, independent of the model and of any global random state.
    """
    _check_lengths(ids, batch_size, block_size)
    rng = np.random.default_rng([seed, step])
    return _windows(ids, rng.integers(0, len(ids) - block_size, size=batch_size), block_size)


def batches(
    ids: torch.Tensor, batch_size: int, block_size: int, seed: int, start: int = 0
) -> Iterator[Batch]:
    """The endless, deterministic stream of training batches ``batch_at(..., step)`` for
    ``step = start, start + 1, ...``: the same order for every model trained with ``seed``."""
    step = start
    while True:
        yield batch_at(ids, step, batch_size, block_size, seed)
        step += 1


def fixed_eval_batch(ids: torch.Tensor, batch_size: int, block_size: int, seed: int = 0) -> Batch:
    """A fixed batch for evaluation and landscapes: ``batch_size`` windows whose starts are
    drawn without replacement by PCG64 seeded with ``(seed, "eval")``, then sorted."""
    _check_lengths(ids, batch_size, block_size)
    n_starts = len(ids) - block_size
    if batch_size > n_starts:
        raise ValueError(
            f"{len(ids)} tokens hold only {n_starts} distinct windows of "
            f"block_size {block_size}, fewer than batch_size {batch_size}"
        )
    rng = np.random.default_rng([seed, 0x6576616C])  # "eval": a stream apart from batch_at's
    return _windows(ids, np.sort(rng.choice(n_starts, size=batch_size, replace=False)), block_size)
