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

from saddles.names import CRITERIA

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
    loss: LossFn | None = None, criterion: Callable[..., torch.Tensor] | str | None = None
) -> LossFn:
    """Return a ``loss(model, batch)`` callable from exactly one of ``loss`` or ``criterion``.

    With ``criterion``, a batch is ``(inputs, targets)`` and the loss is
    ``criterion(model(inputs), targets)``; ``criterion`` is a callable such as
    ``torch.nn.CrossEntropyLoss()`` or a name from :data:`CRITERIA` (``"cross_entropy"``,
    ``"mse"``: torch's functional losses of those names, averaged over the batch).
    """
    if (loss is None) == (criterion is None):
        raise ValueError("give exactly one of `loss` (loss(model, batch)) or `criterion`")
    if isinstance(criterion, str):
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, not {criterion!r}")
        label, criterion = criterion, _CRITERIA[criterion]
    elif criterion is not None:
        label = getattr(criterion, "__qualname__", None) or repr(criterion)
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

    # The criterion in the name, so that a run directory's record of its loss tells them apart.
    criterion_loss.__qualname__ = f"make_loss(criterion={label})"
    return criterion_loss


_CRITERIA = {"cross_entropy": torch.nn.functional.cross_entropy,
              "mse": torch.nn.functional.mse_loss}  # fmt: skip


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (None stays None), checked before anything is computed.

    Raises ``ValueError`` naming the device when torch does not know it (``"bogus"``) or when
    it is not available here (``"cuda"`` without CUDA, ``"cuda:3"`` on a machine with two GPUs,
    ``"mps"`` off Apple silicon), instead of torch's later, less direct errors.
    """
    if device is None or isinstance(device, torch.device) and device.type == "cpu":
        return device
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda, cuda:<index> or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: there are only {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} was requested but MPS is not available")
    return dev


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
