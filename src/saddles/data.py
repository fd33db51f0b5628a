"""The loss-and-data protocol shared by the landscape sampler and the Hessian code.

A *loss* is a callable ``loss(model, batch) -> scalar tensor``. That one form covers
classifiers, PINNs (whose loss differentiates the output with respect to the inputs) and
language models. A plain criterion such as ``torch.nn.CrossEntropyLoss()`` applied to
``model(inputs)`` and ``targets`` is wrapped into that form by :func:`make_loss`.

*Data* is one batch (a tensor, or a tuple/list of tensors) or an iterable of such batches
(a ``DataLoader``). The loss over several batches is their average weighted by batch size
(the size of a batch is the length of its first tensor's first dimension), so the result does
not depend on how the data was split.

This module imports torch; the topology package never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

Batch = tuple[torch.Tensor, ...]
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


def as_batches(data: Any) -> list[Batch]:
    """Normalize ``data`` into a list of batches, each a tuple of tensors.

    A tensor is one batch of one tensor; a tuple or list whose items are all tensors is one
    batch; any other iterable is a sequence of batches. Raises ``ValueError`` on empty data.
    """
    if isinstance(data, torch.Tensor):
        batches = [(data,)]
    elif (
        isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data)
    ):
        batches = [tuple(data)]
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        batches = []
        for i, b in enumerate(data):
            if isinstance(b, torch.Tensor):
                batches.append((b,))
            elif isinstance(b, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in b):
                batches.append(tuple(b))
            else:
                raise TypeError(
                    f"batch {i} of the data is a {type(b).__name__}; expected a tensor or a "
                    "tuple of tensors"
                )
    else:
        raise TypeError(
            f"data must be a tensor, a tuple of tensors, or an iterable of batches, "
            f"not {type(data).__name__}"
        )
    if not batches or any(len(b) == 0 for b in batches):
        raise ValueError("the data is empty: give at least one batch with at least one tensor")
    for i, b in enumerate(batches):
        if b[0].ndim == 0 or b[0].shape[0] == 0:
            raise ValueError(
                f"batch {i} has no samples (first tensor has shape {tuple(b[0].shape)})"
            )
    return batches


def batch_size(batch: Batch) -> int:
    """Number of samples in a batch: the first dimension of its first tensor."""
    return int(batch[0].shape[0])


def make_loss(
    loss: LossFn | None = None, criterion: Callable[..., torch.Tensor] | None = None
) -> LossFn:
    """Return a ``loss(model, batch)`` callable from exactly one of ``loss`` or ``criterion``.

    With ``criterion``, a batch is ``(inputs, targets)`` and the loss is
    ``criterion(model(inputs), targets)``.
    """
    if (loss is None) == (criterion is None):
        raise ValueError("give exactly one of `loss` (loss(model, batch)) or `criterion`")
    if loss is not None:
        if not callable(loss):
            raise TypeError("`loss` must be callable as loss(model, batch)")
        return loss

    def criterion_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        if len(batch) < 2:
            raise ValueError(
                "a criterion needs batches of (inputs, targets); this batch has "
                f"{len(batch)} tensor(s)"
            )
        return criterion(model(batch[0]), batch[1])

    return criterion_loss


def batch_weights(batches: list[Batch]) -> list[float]:
    """Weights (summing to one) that average per-batch losses into the full-data loss."""
    sizes = [batch_size(b) for b in batches]
    total = float(sum(sizes))
    return [s / total for s in sizes]


def move_batches(batches: list[Batch], device: torch.device | str, dtype: torch.dtype | None):
    """Move batches to a device; floating tensors are cast to ``dtype`` when it is given."""
    out = []
    for b in batches:
        moved = []
        for t in b:
            t = t.to(device)
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            moved.append(t)
        out.append(tuple(moved))
    return out
