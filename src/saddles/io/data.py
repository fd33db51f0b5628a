"""The loss-and-data protocol shared by the landscape sampler and the Hessian code.

A *loss* is a callable ``loss(model, batch) -> scalar tensor``. That one form covers
classifiers, PINNs (whose loss differentiates the output with respect to the inputs) and
language models. A plain criterion such as ``torch.nn.CrossEntropyLoss()`` applied to
``model(inputs)`` and ``targets`` is wrapped into that form by :func:`make_loss`, and so is
the built-in ``"causal_lm"`` (next-token cross-entropy, :func:`causal_lm_loss`).

*Data* is one batch or an iterable of batches (a ``DataLoader``), or a file read by
:func:`read_data` (``.pt``, ``.safetensors``, ``.npy``, ``.npz``; never unpickling objects).
A *batch* reaches the loss as the user made it:

- a tuple (or list, passed on as a tuple) of tensors, e.g. ``(inputs, targets)``;
- a dict of tensors with string keys, e.g. ``{"input_ids": ..., "attention_mask": ...}`` as
  tokenizers and Hugging Face datasets give them: it stays a dict, keys and order untouched;
- a single tensor, which becomes the 1-tuple ``(tensor,)`` (so ``batch[0]`` is the tensor).

The loss over several batches is their average weighted by batch size. The size of a batch is
the first dimension of its first tensor (for a dict: of ``input_ids`` when it has that key,
else of its first value), so the result does not depend on how the data was split.

*Standard errors*. A loss that is a mean over examples may also say how noisy that mean is:
``loss.with_variance(model, batch) -> (value, variance)`` gives the same value, bit for bit,
and the squared standard error of it over the batch's examples, from the same forward pass
(:func:`loss_and_variance` reads it; losses without it give NaN). The built-in ones do:
``causal_lm`` and :func:`next_token_loss` per *sequence* (tokens of one sequence are not
independent draws; :func:`ratio_variance`), ``cross_entropy`` and ``mse`` per sample
(:func:`mean_variance`).

:func:`split_batches`, :func:`check_tokens` and :func:`check_loss` check data against a
model and a loss before anything is computed (one ``ValueError`` line each);
:func:`take_samples` and :func:`split_parts` take samples of the data in order (prefixes for
``eval_tokens="auto"``, disjoint parts for the batch noise floor).

This module imports torch; the topology package never imports it. It must not import the CLI,
the landscape or the Hessian packages.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from saddles.names import CRITERIA

Batch = tuple[torch.Tensor, ...] | dict[str, torch.Tensor]
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]

#: The label HF models and :func:`causal_lm_loss` ignore (``torch.nn.CrossEntropyLoss``'s).
IGNORE_INDEX = -100


def _as_batch(b: Any) -> Batch | None:
    """``b`` as a batch (tensor -> 1-tuple, list -> tuple, dict of tensors kept), else None."""
    if isinstance(b, torch.Tensor):
        return (b,)
    if isinstance(b, (tuple, list)) and b and all(isinstance(t, torch.Tensor) for t in b):
        return tuple(b)
    if isinstance(b, Mapping) and b and all(isinstance(t, torch.Tensor) for t in b.values()):
        bad = [k for k in b if not isinstance(k, str)]
        if bad:
            raise TypeError(f"a dict batch needs string keys, not {bad[0]!r}")
        return dict(b)
    return None


def as_batches(data: Any) -> list[Batch]:
    """Normalize ``data`` into a list of batches (see the module docstring for their forms).

    A tensor, a tuple/list whose items are all tensors, or a dict of tensors is one batch; any
    other iterable is a sequence of batches (a list of dicts is several dict batches). Raises
    ``TypeError`` on something else and ``ValueError`` on empty data.
    """
    one = _as_batch(data) if not isinstance(data, (str, bytes)) else None
    if one is not None:
        batches = [one]
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
        batches = []
        for i, b in enumerate(data):
            batch = _as_batch(b)
            if batch is None:
                raise TypeError(
                    f"batch {i} of the data is a {type(b).__name__}; expected a tensor, a "
                    "tuple of tensors or a dict of tensors"
                )
            batches.append(batch)
    else:
        raise TypeError(
            "data must be a tensor, a tuple of tensors, a dict of tensors, or an iterable of "
            f"batches, not {type(data).__name__}"
        )
    if not batches:
        raise ValueError("the data is empty: give at least one batch with at least one tensor")
    for i, b in enumerate(batches):
        first = _first_tensor(b)
        if first.ndim == 0 or first.shape[0] == 0:
            raise ValueError(f"batch {i} has no samples (first tensor has shape "
                             f"{tuple(first.shape)})")  # fmt: skip
    return batches


def tensors_of(batch: Batch) -> list[torch.Tensor]:
    """The tensors of a batch, in its own order (a dict's values in key order)."""
    return list(batch.values()) if isinstance(batch, Mapping) else list(batch)


def map_batch(batch: Batch, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
    """A batch of the same form (tuple or dict, same keys) with ``fn`` applied to each tensor."""
    if isinstance(batch, Mapping):
        return {k: fn(t) for k, t in batch.items()}
    return tuple(fn(t) for t in batch)


def _first_tensor(batch: Batch) -> torch.Tensor:
    if isinstance(batch, Mapping):
        return batch["input_ids"] if "input_ids" in batch else next(iter(batch.values()))
    return batch[0]


def batch_size(batch: Batch) -> int:
    """Number of samples in a batch: the first dimension of its first tensor (for a dict, of
    ``input_ids`` when present, else of its first value)."""
    return int(_first_tensor(batch).shape[0])


def n_tokens(batch: Batch) -> int:
    """Tokens in a batch: samples x sequence length of its first tensor (samples for 1-D)."""
    first = _first_tensor(batch)
    return int(first.shape[0]) * (int(first.shape[1]) if first.ndim >= 2 else 1)


def cap_tokens(batches: list[Batch], eval_tokens: int | None) -> list[Batch]:
    """The first ``eval_tokens`` tokens of the data, in whole sequences (samples).

    Batches are kept in order until the budget is reached; the batch that crosses it is cut
    at a sequence boundary (every tensor of the batch along its first dimension), so a
    sequence is never split. ``None``: the data as it is. A budget smaller than one sequence
    is an error naming the sequence length.
    """
    if eval_tokens is None:
        return batches
    if not isinstance(eval_tokens, int) or isinstance(eval_tokens, bool) or eval_tokens < 1:
        raise ValueError(f"eval_tokens must be a positive integer, not {eval_tokens!r}")
    out, left = [], eval_tokens
    for b in batches:
        per_sample = n_tokens(b) // batch_size(b)
        keep = min(batch_size(b), left // per_sample)
        if keep == 0:
            break
        out.append(b if keep == batch_size(b) else map_batch(b, lambda t, k=keep: t[:k]))
        left -= keep * per_sample
    if not out:
        raise ValueError(
            f"eval_tokens={eval_tokens} is less than one sequence "
            f"({n_tokens(batches[0]) // batch_size(batches[0])} tokens)"
        )
    return out


def take_samples(batches: list[Batch], start: int, stop: int) -> list[Batch]:
    """Samples ``[start, stop)`` of the data, counted over its batches in order, as slices of
    those batches (a batch is never reordered or joined with another). Every tensor of a batch
    is cut along its first dimension, so each must hold one row per sample: a batch whose
    tensors have other first dimensions (a PINN's point sets) is refused, naming it."""
    out, offset = [], 0
    for i, b in enumerate(batches):
        size = batch_size(b)
        a, z = max(start - offset, 0), min(stop - offset, size)
        if a < z:
            rows = {int(t.shape[0]) if t.ndim else -1 for t in tensors_of(b)}
            if rows != {size}:
                raise ValueError(
                    f"batch {i} cannot be cut into examples: its tensors' first dimensions "
                    f"are {sorted(rows)}, not all {size} (one row per example is needed to "
                    "take part of the data)"
                )
            out.append(b if (a, z) == (0, size) else map_batch(b, lambda t, a=a, z=z: t[a:z]))
        offset += size
    return out


def split_parts(batches: list[Batch], parts: int) -> list[list[Batch]]:
    """The data's samples cut, in order, into ``parts`` disjoint parts of nearly equal size
    (``numpy.array_split``'s sizes), each a list of slices of the batches
    (:func:`take_samples`); for the batch noise floor of :mod:`saddles.landscape.noise`."""
    total = sum(batch_size(b) for b in batches)
    if not isinstance(parts, int) or isinstance(parts, bool) or not 2 <= parts <= total:
        raise ValueError(f"the data ({total} samples) cannot be cut into {parts!r} parts; "
                         f"give 2 to {total}")  # fmt: skip
    bounds = [0]
    for j in range(parts):
        bounds.append(bounds[-1] + total // parts + (1 if j < total % parts else 0))
    return [take_samples(batches, a, z) for a, z in zip(bounds, bounds[1:], strict=False)]


# --- per-example noise ----------------------------------------------------------------------


def with_variance(loss: LossFn, stats: Callable[[torch.nn.Module, Batch], Any]) -> LossFn:
    """Attach ``stats(model, batch) -> (value, variance)`` to ``loss`` as ``loss.with_variance``.

    ``value`` must be what ``loss(model, batch)`` returns, bit for bit, and ``variance`` the
    squared standard error of that value over the batch's examples, both from one forward
    pass, so that a landscape gets its standard errors at no extra cost."""
    loss.with_variance = stats  # type: ignore[attr-defined]
    return loss


def loss_and_variance(
    fn: LossFn, model: torch.nn.Module, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(value, variance)`` from ``fn.with_variance`` when the loss has it, else
    ``(fn(model, batch), None)`` (the variance is then unknown)."""
    stats = getattr(fn, "with_variance", None)
    if stats is None:
        return fn(model, batch), None
    return stats(model, batch)


def mean_variance(per_example: torch.Tensor) -> torch.Tensor:
    """Squared standard error of the mean of ``per_example`` (one value per example, any
    shape flattened): ``var / n`` with the unbiased (``n - 1``) variance; NaN for one example.
    Written without data-dependent control flow, so it runs under ``torch.vmap``."""
    x = per_example.reshape(-1)
    if x.shape[0] < 2:
        return torch.full((), float("nan"), dtype=x.dtype, device=x.device)
    return x.var(correction=1) / x.shape[0]


def ratio_variance(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Squared standard error of the ratio ``R = sum(sums) / sum(counts)`` over ``n`` clusters
    (cluster ``i`` holding ``counts[i]`` items whose losses sum to ``sums[i]``):
    ``n / (n - 1) * sum_i (sums_i - R counts_i)^2 / (sum counts)^2``, the linearised
    (cluster-robust) variance of a ratio estimator (Cochran, *Sampling Techniques*, 1977,
    section 6.4). With equal counts it is ``var(cluster means) / n``; NaN for one cluster."""
    counts = counts.to(sums.dtype)
    n = sums.shape[0]
    if n < 2:
        return torch.full((), float("nan"), dtype=sums.dtype, device=sums.device)
    total = counts.sum().clamp_min(1)
    ratio = sums.sum() / total
    return n / (n - 1) * ((sums - ratio * counts) ** 2).sum() / total**2


# --- data files -----------------------------------------------------------------------------

#: The data files :func:`read_data` reads.
DATA_SUFFIXES = (".pt", ".pth", ".safetensors", ".npy", ".npz")
_DATA_HOLDS = "tensors (a tensor, a tuple/list/dict of tensors, or a list of such batches)"
_DATA_SAVE = "save torch tensors (torch.from_numpy(array)), or use .safetensors or .npz"


def read_data(path: str | os.PathLike) -> Any:
    """The data in the file ``path``, as stored: one batch or a list of batches.

    - ``.pt``/``.pth`` (:func:`saddles.io.checkpoints.read_tensors`, the one safe reader): a
      tensor, a tuple/list of tensors or a dict of tensors (one batch, a dict kept with its
      keys), or a list of such batches (a list of dicts, a list of tuples);
    - ``.safetensors``: its named tensors, one dict batch;
    - ``.npy``: one array (token ids, say), one batch;
    - ``.npz``: one dict batch when it holds ``input_ids`` (a token file), else a tuple of its
      arrays in file order (``np.savez(f, x, y)``: inputs, targets).

    Never unpickles objects (``np.load(allow_pickle=False)``); every problem is one
    ``ValueError`` (or ``FileNotFoundError``) line naming the file.
    """
    import numpy as np

    from saddles.io.checkpoints import read_tensors

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix not in DATA_SUFFIXES:
        raise ValueError(f"unsupported data file {path.name!r}: use {', '.join(DATA_SUFFIXES)}")
    if path.suffix not in (".npy", ".npz"):
        obj = read_tensors(path, what="data file", suffixes=DATA_SUFFIXES, holds=_DATA_HOLDS,
                           save=_DATA_SAVE)  # fmt: skip
        try:
            as_batches(obj)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path} must hold a tensor, a tuple/list/dict of tensors, or a "
                             f"list of such batches: {exc}") from exc  # fmt: skip
        return obj
    try:
        if path.suffix == ".npy":
            arrays = {"": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"cannot read {path}: {_first_line(exc)}") from exc
    if not arrays:
        raise ValueError(f"{path} holds no arrays")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in arrays.items()}
    if path.suffix == ".npy":
        return tensors[""]
    return tensors if "input_ids" in tensors else tuple(tensors.values())


def split_batches(data: Any, size: int) -> list[Batch]:
    """Every batch of ``data`` split along the first dimension into batches of ``size``
    samples (a dict batch into dicts with the same keys); the loss stays the same."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"the batch size must be a positive integer, not {size!r}")
    out = []
    for batch in as_batches(data):
        for i in range(0, batch_size(batch), size):
            out.append(map_batch(batch, lambda t, i=i: t[i : i + size]))
    return out


def check_tokens(model: torch.nn.Module, data: Any) -> None:
    """Token ids of every batch (a dict's ``input_ids``) within the model's vocabulary
    (:func:`check_token_ids`), checked before anything is computed; errors name the batch."""
    for i, batch in enumerate(as_batches(data)):
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        if ids is None or ids.is_floating_point():
            continue
        try:
            check_token_ids(model, ids)
        except ValueError as exc:
            raise ValueError(f"batch {i}: {exc}") from exc


def check_loss(model: torch.nn.Module, loss: LossFn, data: Any) -> None:
    """Evaluate the loss once, on the first batch, so that data the loss cannot use (no
    targets, the wrong shape or dtype) is refused (``ValueError``) before anything is
    computed; so is a loss that returns no scalar tensor. The model is put in eval mode for
    this (no batch-norm statistics change) and back. Out of memory is raised as it is."""
    first = as_batches(data)[0]
    training = model.training
    model.eval()
    try:
        value = loss(model, first)
    except (MemoryError, torch.OutOfMemoryError):
        raise  # too big to try is not a wrong input
    except Exception as exc:
        raise ValueError(
            f"the loss cannot be computed on the data's first batch: {_first_line(exc)}"
        ) from exc
    finally:
        model.train(training)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError(
            f"the loss must return a scalar tensor, not {type(value).__name__}"
            + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else "")
        )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else "no details"


# --- losses ----------------------------------------------------------------------------------


def make_loss(
    loss: LossFn | None = None,
    criterion: Callable[..., torch.Tensor] | str | None = None,
    *,
    inputs_key: str | None = None,
    targets_key: str | None = None,
) -> LossFn:
    """Return a ``loss(model, batch)`` callable from exactly one of ``loss`` or ``criterion``.

    With ``criterion``, a tuple batch is ``(inputs, targets)`` and the loss is
    ``criterion(model(inputs), targets)``; ``criterion`` is a callable such as
    ``torch.nn.CrossEntropyLoss()`` or a name from :data:`CRITERIA` (``"cross_entropy"``,
    ``"mse"``: torch's functional losses of those names, averaged over the batch;
    ``"causal_lm"``: :func:`causal_lm_loss`, which reads its own keys). A dict batch is never
    reordered: its inputs and targets are the entries named ``inputs_key`` and ``targets_key``
    (default ``"inputs"`` and ``"targets"``), and a dict without them is an error naming its
    keys.
    """
    if (loss is None) == (criterion is None):
        raise ValueError("give exactly one of `loss` (loss(model, batch)) or `criterion`")
    if loss is not None:
        if not callable(loss):
            raise TypeError("`loss` must be callable as loss(model, batch)")
        return loss
    if criterion == "causal_lm":
        return causal_lm_loss
    if isinstance(criterion, str):
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, not {criterion!r}")
        label, criterion = criterion, _CRITERIA[criterion]
    else:
        label = getattr(criterion, "__qualname__", None) or repr(criterion)
    keys = (inputs_key or "inputs", targets_key or "targets")

    def inputs_targets(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, Mapping):
            missing = [k for k in keys if k not in batch]
            if missing:
                raise ValueError(
                    f"a criterion on a dict batch needs the keys {list(keys)}; this batch has "
                    f"{sorted(batch)} (name them with --inputs-key/--targets-key, YAML "
                    "inputs_key/targets_key)"
                )
            return batch[keys[0]], batch[keys[1]]
        if len(batch) < 2:
            raise ValueError(
                "a criterion needs batches of (inputs, targets); this batch has "
                f"{len(batch)} tensor(s)"
            )
        return batch[0], batch[1]

    # kept as it was: its code's digest names the loss in run directories
    def criterion_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        if isinstance(batch, Mapping):
            missing = [k for k in keys if k not in batch]
            if missing:
                raise ValueError(
                    f"a criterion on a dict batch needs the keys {list(keys)}; this batch has "
                    f"{sorted(batch)} (name them with --inputs-key/--targets-key, YAML "
                    "inputs_key/targets_key)"
                )
            return criterion(model(batch[keys[0]]), batch[keys[1]])
        if len(batch) < 2:
            raise ValueError(
                "a criterion needs batches of (inputs, targets); this batch has "
                f"{len(batch)} tensor(s)"
            )
        return criterion(model(batch[0]), batch[1])

    # The criterion (and keys) in the name, so that a run directory's record of its loss
    # tells them apart.
    named = f", keys={list(keys)}" if inputs_key or targets_key else ""
    criterion_loss.__qualname__ = f"make_loss(criterion={label}{named})"
    per_example = _PER_EXAMPLE.get(label)
    if per_example is None:  # a criterion of the user's: its examples are not known
        return criterion_loss

    def criterion_stats(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = inputs_targets(batch)
        out = model(inputs)  # one forward; the value exactly as criterion_loss computes it
        return criterion(out, targets), per_example(out, targets)

    return with_variance(criterion_loss, criterion_stats)


_CRITERIA = {"cross_entropy": torch.nn.functional.cross_entropy,
              "mse": torch.nn.functional.mse_loss}  # fmt: skip


def cross_entropy_variance(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared standard error of the mean cross-entropy over the batch's samples (a sample's
    positions, for outputs with extra dimensions, form one cluster; ignored targets count no
    items)."""
    per = torch.nn.functional.cross_entropy(out, targets, reduction="none")
    per = per.reshape(per.shape[0], -1)
    if targets.is_floating_point():  # class probabilities: every position counts
        return mean_variance(per.mean(dim=1))
    valid = (targets != IGNORE_INDEX).reshape(per.shape[0], -1)
    return ratio_variance(per.sum(dim=1), valid.sum(dim=1))


def mse_variance(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared standard error of the mean squared error over the batch's samples."""
    per = torch.nn.functional.mse_loss(out, targets, reduction="none")
    return mean_variance(per.reshape(per.shape[0], -1).mean(dim=1))


#: The per-example variance of each named criterion (see :func:`with_variance`).
_PER_EXAMPLE = {"cross_entropy": cross_entropy_variance, "mse": mse_variance}


def _causal_lm_logits(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The shifted logits and targets of :func:`causal_lm_loss` (one forward pass)."""
    if isinstance(batch, Mapping):
        if "input_ids" not in batch:
            raise ValueError(
                f"the causal_lm criterion needs a dict batch with 'input_ids' (and optionally "
                f"'attention_mask', 'labels'); this batch has {sorted(batch)}"
            )
        ids, mask, labels = batch["input_ids"], batch.get("attention_mask"), batch.get("labels")
    elif len(batch) == 1:
        ids, mask, labels = batch[0], None, None
    else:
        raise ValueError(
            f"the causal_lm criterion takes a dict batch (input_ids, attention_mask, labels) or "
            f"one tensor of token ids; this batch is a tuple of {len(batch)} tensors"
        )
    if ids.ndim != 2 or ids.is_floating_point() or ids.shape[1] < 2:
        raise ValueError(f"input_ids must be (batch, sequence >= 2) integers, not "
                         f"{ids.dtype} {tuple(ids.shape)}")  # fmt: skip
    check_token_ids(model, ids)
    if _takes_input_ids(model):
        kwargs = {"input_ids": ids} if mask is None else {"input_ids": ids, "attention_mask": mask}
        out = model(**kwargs)
    else:
        out = model(ids)
    targets = (ids if labels is None else labels)[:, 1:]
    if mask is not None:
        targets = targets.masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
    return _logits(out)[:, :-1], targets


def causal_lm_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Mean next-token cross-entropy, as Hugging Face's causal LMs compute it.

    ``batch`` is a dict with ``input_ids`` (``(B, T)`` integers) and optionally
    ``attention_mask`` (0 = padding) and ``labels`` (default: ``input_ids``; ``-100`` is
    ignored), or a tensor / 1-tuple of ``input_ids``. The logits at position ``t`` predict the
    label at ``t + 1`` (the shift HF applies); padded and ``-100`` positions are left out of
    the mean. The model is called as ``model(input_ids=..., attention_mask=...)`` when its
    ``forward`` takes ``input_ids`` (HF models), else ``model(input_ids)``, and may return
    logits ``(B, T, V)``, a tuple starting with them, or an object/dict with ``.logits``.

    The mean is written with ``log_softmax`` and ``gather`` (no data-dependent indexing), so it
    runs under ``torch.vmap`` and double backward wherever the model does. Token ids at or past
    the model's vocabulary (``get_input_embeddings()``) are refused before the forward pass.
    ``causal_lm_loss.with_variance`` also gives the squared standard error over sequences
    (the same parsing, in :func:`_causal_lm_logits`; this body is kept as it was, since its
    code's digest names the loss in run directories).
    """
    if isinstance(batch, Mapping):
        if "input_ids" not in batch:
            raise ValueError(
                f"the causal_lm criterion needs a dict batch with 'input_ids' (and optionally "
                f"'attention_mask', 'labels'); this batch has {sorted(batch)}"
            )
        ids, mask, labels = batch["input_ids"], batch.get("attention_mask"), batch.get("labels")
    elif len(batch) == 1:
        ids, mask, labels = batch[0], None, None
    else:
        raise ValueError(
            f"the causal_lm criterion takes a dict batch (input_ids, attention_mask, labels) or "
            f"one tensor of token ids; this batch is a tuple of {len(batch)} tensors"
        )
    if ids.ndim != 2 or ids.is_floating_point() or ids.shape[1] < 2:
        raise ValueError(f"input_ids must be (batch, sequence >= 2) integers, not "
                         f"{ids.dtype} {tuple(ids.shape)}")  # fmt: skip
    check_token_ids(model, ids)
    if _takes_input_ids(model):
        kwargs = {"input_ids": ids} if mask is None else {"input_ids": ids, "attention_mask": mask}
        out = model(**kwargs)
    else:
        out = model(ids)
    targets = (ids if labels is None else labels)[:, 1:]
    if mask is not None:
        targets = targets.masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
    return next_token_loss(_logits(out)[:, :-1], targets)


def _causal_lm_stats(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    return next_token_loss_and_variance(*_causal_lm_logits(model, batch))


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` ``(B, T, V)`` against ``targets`` ``(B, T)`` (already
    shifted: ``targets[:, t]`` is the token after position ``t``), positions whose target is
    ``IGNORE_INDEX`` left out; the one next-token loss of saddles (:func:`causal_lm_loss`, the
    language-model experiment's ``lm_loss``). Low-precision logits are averaged in float32, as
    Hugging Face does; ``log_softmax`` and ``gather`` (no data-dependent indexing) keep it
    working under ``torch.vmap`` and double backward."""
    picked, valid = _picked(logits, targets)
    return -(picked * valid).sum() / valid.sum().clamp_min(1)


def next_token_loss_and_variance(
    logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`next_token_loss` (the same bits) and its squared standard error over the batch's
    sequences: each sequence is one cluster of tokens (:func:`ratio_variance`), since the
    tokens of one text are not independent draws."""
    picked, valid = _picked(logits, targets)
    value = -(picked * valid).sum() / valid.sum().clamp_min(1)
    return value, ratio_variance(-(picked * valid).sum(dim=-1), valid.sum(dim=-1))


def _picked(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each target ``(B, T)`` and the mask of the counted positions."""
    valid = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits.float() if logits.dtype in _LOW else logits, dim=-1)
    return logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1), valid


_LOW = (torch.float16, torch.bfloat16)  # logits averaged in float32, as HF does

with_variance(causal_lm_loss, _causal_lm_stats)


def check_token_ids(model: torch.nn.Module, ids: torch.Tensor) -> None:
    """Refuse token ids outside ``[0, vocabulary)`` of the model's input embedding, by value."""
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    vocab = getattr(emb, "num_embeddings", None)
    if vocab is None:
        return
    low, high = int(ids.min()), int(ids.max())
    if high >= vocab or low < 0:
        raise ValueError(
            f"token ids range from {low} to {high}, but the model's vocabulary has {vocab} "
            f"entries (ids 0 to {vocab - 1}); the data was tokenized for another model"
        )


def _takes_input_ids(model: torch.nn.Module) -> bool:
    try:
        return "input_ids" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _logits(out: Any) -> torch.Tensor:
    """Logits from a model's output: a tensor, a tuple starting with them, or ``.logits``."""
    if isinstance(out, torch.Tensor):
        logits = out
    else:
        logits = getattr(out, "logits", None)
        if logits is None and isinstance(out, Mapping):
            logits = out.get("logits")
        if logits is None and isinstance(out, (tuple, list)) and out:
            logits = out[0]
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3:
        raise TypeError(f"the model returned {type(out).__name__}, not logits (batch, sequence, "
                        "vocabulary) for the causal_lm criterion")  # fmt: skip
    return logits


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


def move_batches(
    batches: list[Batch], device: torch.device | str, dtype: torch.dtype | None
) -> list[Batch]:
    """Move batches to a device, keeping their form (tuple or dict); floating tensors are cast
    to ``dtype`` when it is given (integer token ids and masks are not)."""

    def move(t: torch.Tensor) -> torch.Tensor:
        t = t.to(device)
        return t.to(dtype) if dtype is not None and t.is_floating_point() else t

    return [map_batch(b, move) for b in batches]
