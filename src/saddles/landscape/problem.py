"""The checked inputs of a landscape evaluation: :class:`Problem`, what every engine needs.

:func:`setup` checks the model, loss, metrics, data, directions and coordinates once, moves
what must move to the evaluation device and dtype (a copy of the model when they differ from
its own), and keeps each direction per parameter as a flat view, so that a point's parameters
are ``theta_0 + c @ basis`` with ``basis`` the ``(k, numel)`` stack of those views
(:func:`basis_of`). The engines then only compute.

Memory: a problem holds one copy of the parameters, the centre ``theta_0`` (the model's own
tensors are written per point), and the directions as given: without a copy when they are on
the model's device, in the model's dtype or in another one (directions stored in bfloat16,
:func:`saddles.directions.random_directions` ``dtype=``, stay half the size; each parameter's
entries are widened when used, exactly as casting the whole direction would have). The
``(k, numel)`` stack is made per parameter when it is needed (into a buffer the sequential
engine reuses), never for the whole model at once; a parameter that no direction moves keeps
no direction entries at all. The stack holds the same numbers wherever it lives, so ``addmm``
gives the same bits as with a stack made once.

Gradient mode (``Problem.grad_mode``): a loss that only evaluates the model needs no
autograd, and under ``torch.no_grad`` its forward records nothing for a backward pass; a loss
that differentiates its inputs (a PINN's ``torch.autograd.grad``) needs autograd and raises
without it ("element 0 of tensors does not require grad"). The driver finds out which on the
centre (:func:`saddles.landscape.evaluate.center_values`). Autograd does not change the
values a forward computes, so the mode changes memory, never values. ``no_grad`` rather than
``torch.inference_mode``: tensors that a model caches during an inference-mode forward (rotary
tables, masks) cannot be used by autograd afterwards (PyTorch, "Autograd mechanics",
inference mode), and the user's model must stay fit for training.

Owns :class:`Problem`, :func:`setup`, :func:`basis_of`, :func:`values_of`, :func:`weighted_sum`,
:func:`center_pass` and :func:`grad_context`. Imports :mod:`saddles.io.data`,
:mod:`saddles.directions`, :mod:`saddles.sampling` and :mod:`saddles.landscape.tokens` (the
``eval_tokens="auto"`` schedule); must not import the
engines, the plan or :mod:`~saddles.landscape.evaluate` (they import this).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from saddles.directions import Directions, from_tensors, parameters
from saddles.io.data import (
    Batch,
    LossFn,
    as_batches,
    batch_size,
    batch_weights,
    cap_tokens,
    loss_and_variance,
    make_loss,
    move_batches,
    n_tokens,
)
from saddles.landscape.tokens import AUTO, DEFAULT_TARGET, AutoTokens, auto_tokens
from saddles.names import AUTOCAST
from saddles.sampling import Coordinates

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "double": torch.float64,
    "float": torch.float32,
}
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class BadOutput(ValueError):
    """A loss or metric returned something other than a scalar tensor."""


@dataclass
class Problem:
    """Everything the engines need, on the evaluation device and dtype."""

    model: torch.nn.Module  # the model evaluated (the user's, or a copy on another device/dtype)
    names: list[str]  # parameter names
    params: list[torch.Tensor]  # the model's parameter tensors (written by the sequential engine)
    center: list[torch.Tensor]  # theta_0, flattened per parameter: (numel,)
    # per parameter, the k directions' entries as flat (numel,) views of the given tensors, in
    # their own dtype; None for a parameter whose directions are all +0.0 (nothing kept)
    rows: list[list[torch.Tensor] | None]
    batches: list[Batch]
    weights: list[float]
    fns: list[LossFn]  # the loss first, then the metrics
    value_names: list[str]
    directions_info: dict[str, Any]
    ids: dict[str, str]  # identities of loss and metrics, for provenance and hashing
    device: torch.device
    dtype: torch.dtype
    n_samples: int
    moving: list[int]  # indices of the parameters some direction moves (the others stay put)
    n_directions: int  # k
    autocast: str | None = None  # "bf16"/"fp16": forwards under torch.autocast
    eval_tokens: int | str | None = None  # the token budget the batches were cut to, or "auto"
    n_tokens: int = 0  # tokens evaluated per point (with "auto": at most)
    # eval_tokens="auto": the doubling prefixes over ``batches`` (their pieces) and the target
    auto: AutoTokens | None = None
    # The centre's values (:func:`center_pass`), once the driver has them: the sequential
    # engine takes them for a point at the origin instead of evaluating it again.
    center_values: np.ndarray | None = None
    # "enable_grad" (autograd on, as a training step has it) or "no_grad", set by the driver.
    grad_mode: str = "enable_grad"
    # The sequential engine's basis buffers, one per dtype, made on its first chunk and kept
    # for the next ones (a buffer made and freed per chunk would churn the allocator).
    basis_buffers: dict[torch.dtype, torch.Tensor] | None = None

    @property
    def n_values(self) -> int:
        return len(self.fns)

    @property
    def columns(self) -> list[str]:
        """The columns of an engine's block: the values, the loss's standard error over the
        examples (NaN where the loss does not report it) and, with ``eval_tokens="auto"``,
        the tokens each point used."""
        return [*self.value_names, "loss_stderr", *(["tokens"] if self.auto else [])]

    @property
    def n_params(self) -> int:
        return int(sum(w.numel() for w in self.center))


def setup(
    model: torch.nn.Module,
    loss: LossFn | torch.nn.Module | None,
    criterion: Callable[..., torch.Tensor] | None,
    metrics: Mapping[str, LossFn] | None,
    data: Any,
    directions: Directions | Any,
    coords: Coordinates,
    device: str | torch.device | None,
    dtype: str | torch.dtype | None,
    *,
    params: Mapping[str, Any] | None = None,
    autocast: str | None = None,
    eval_tokens: int | str | None = None,
    stderr_target: float = DEFAULT_TARGET,
) -> Problem:
    """Check every input and gather what the engines need, on the evaluation device/dtype.

    ``params`` (:mod:`saddles.io.params`) zeroes the directions outside the selection;
    ``eval_tokens`` cuts the data to its first tokens (:func:`saddles.data.cap_tokens`), or
    with ``"auto"`` into the doubling prefixes of :mod:`saddles.landscape.tokens` (target
    ``stderr_target`` x the value range); ``autocast`` is checked here and applied by
    :func:`values_of`.
    """
    spec, params = params, None  # `params` names the model's tensors below
    if autocast is not None and autocast not in AUTOCAST:
        raise ValueError(f"autocast must be None or one of {AUTOCAST}, not {autocast!r}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    names, params = parameters(model)
    model_device = params[0].device
    float_params = [p for p in params if p.is_floating_point()]
    if not float_params:
        raise ValueError("the model has no floating-point parameters to perturb")
    model_dtype = float_params[0].dtype
    device = torch.device(device) if device is not None else model_device
    dtype = as_dtype(dtype) if dtype is not None else model_dtype
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    work = model
    if device != model_device or dtype != model_dtype:
        work = copy.deepcopy(model).to(device=device, dtype=dtype)
    names, params = parameters(work)

    if isinstance(loss, torch.nn.Module) and criterion is None:
        loss, criterion = None, loss
    fn = make_loss(loss=loss, criterion=criterion)
    ids = {"loss": callable_id(loss) if loss is not None else f"criterion:{callable_id(criterion)}"}
    fns, value_names = [fn], ["loss"]
    for name, metric in (metrics or {}).items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"metric names must be identifiers, not {name!r}")
        if name == "loss":
            raise ValueError("'loss' is reserved; give the metric another name")
        if not callable(metric):
            raise TypeError(f"metric {name!r} must be callable as fn(model, batch)")
        fns.append(metric)
        value_names.append(name)
        ids[f"metric:{name}"] = callable_id(metric)

    if data is None:
        raise ValueError("no data: give a tensor, a tuple of tensors or an iterable of batches")
    auto = None
    if eval_tokens == AUTO:
        batches, auto = auto_tokens(as_batches(data), stderr_target)
    elif isinstance(eval_tokens, str):
        raise ValueError(f"eval_tokens must be a positive integer or 'auto', not {eval_tokens!r}")
    else:
        batches = cap_tokens(as_batches(data), eval_tokens)
    n_samples = sum(batch_size(b) for b in batches)
    weights = batch_weights(batches)
    batches = move_batches(batches, device, dtype)

    dirs = from_tensors(work, directions, params=spec, keep_dtype=True)
    if coords.dims != len(dirs):
        raise ValueError(
            f"coordinates have {coords.dims} column(s) but there are {len(dirs)} direction(s); "
            "each point needs one coordinate per direction"
        )
    center = [p.detach().reshape(-1).clone() for p in params]
    rows: list[list[torch.Tensor] | None] = []
    moving: list[int] = []
    for j, (name, w0, p) in enumerate(zip(names, center, params, strict=True)):
        if w0.is_floating_point() and not bool(torch.isfinite(w0).all()):
            raise ValueError(f"the model's parameter {name!r} holds NaN or inf values")
        # views of the directions, on the parameter's device and in their own dtype
        row = [d[j].detach().reshape(-1) for d in dirs.tensors]

        # Checked as used, in the parameter's dtype: a copy, one row at a time, only where the
        # cast is not exact (float64 entries can overflow float32; bfloat16 ones float16).
        def as_used(r: torch.Tensor, p=p) -> torch.Tensor:
            exact = torch.promote_types(r.dtype, p.dtype) == p.dtype
            return r if exact else r.to(p.dtype)

        if not all(bool(torch.isfinite(as_used(r)).all()) for r in row):
            raise ValueError(f"a direction holds NaN or inf values in parameter {name!r}")
        moves = any(bool(as_used(r).any()) for r in row)
        plus_zero = not moves and not any(bool(torch.signbit(as_used(r)).any()) for r in row)
        rows.append(None if plus_zero else row)
        moving += [j] if moves else []
    return Problem(
        model=work,
        names=names,
        params=params,
        center=center,
        rows=rows,
        batches=batches,
        weights=weights,
        fns=fns,
        value_names=value_names,
        directions_info=dict(dirs.info),
        ids=ids,
        device=device,
        dtype=dtype,
        n_samples=n_samples,
        moving=moving,
        n_directions=len(dirs),
        autocast=autocast,
        eval_tokens=eval_tokens,
        n_tokens=sum(n_tokens(b) for b in batches),
        auto=auto,
    )


def basis_of(
    problem: Problem,
    j: int,
    out: torch.Tensor | None = None,
    cols: slice | None = None,
) -> torch.Tensor:
    """Parameter ``j``'s ``(k, numel)`` basis, row ``i`` direction ``i``'s entries (only the
    entries ``cols`` of the flat parameter, when given): stacked into ``out`` when given (a
    reused buffer), else into a new tensor. A parameter that no direction moves has a basis of
    zeros."""
    p, row = problem.params[j], problem.rows[j]
    cols = slice(0, p.numel()) if cols is None else cols
    width = len(range(*cols.indices(p.numel())))
    shape = (problem.n_directions, width)
    if row is None:
        return torch.zeros(shape, dtype=p.dtype, device=p.device, out=out)
    pieces = [r.reshape(-1)[cols] for r in row]
    if out is None:
        if all(r.dtype == p.dtype for r in row):
            return torch.stack(pieces)
        out = torch.empty(shape, dtype=p.dtype, device=p.device)
    for i, r in enumerate(pieces):
        out[i].copy_(r)  # widened (or narrowed) to the parameter's dtype as torch's .to would
    return out


def perturbed(problem: Problem, c: torch.Tensor) -> dict[str, torch.Tensor]:
    """Parameters at points ``c`` (``(B, k)``): ``{name: (B, *shape) tensor}`` for each moving
    parameter (those with a zero direction keep the model's own tensor)."""
    out = {}
    for j in problem.moving:
        w0, basis, p = problem.center[j], basis_of(problem, j), problem.params[j]
        flat = torch.addmm(w0.unsqueeze(0), c.to(basis.dtype), basis)
        out[problem.names[j]] = flat.reshape((c.shape[0],) + tuple(p.shape))
    return out


def precision(problem: Problem) -> contextlib.AbstractContextManager:
    """``torch.autocast`` of the problem's device and ``autocast`` dtype, or a no-op."""
    if problem.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(problem.device.type, dtype=AUTOCAST_DTYPES[problem.autocast])


def values_of(problem: Problem, model: torch.nn.Module, batch: Batch) -> list[torch.Tensor]:
    """Loss and metrics of one batch, each checked to be a scalar tensor (detached), and last
    the squared standard error of the loss over the batch's examples (NaN when the loss does
    not report it; :func:`saddles.io.data.loss_and_variance`, from the same forward)."""
    vals, variance = [], None
    for i, (name, fn) in enumerate(zip(problem.value_names, problem.fns, strict=True)):
        with precision(problem):
            if i == 0:
                v, variance = loss_and_variance(fn, model, batch)
            else:
                v = fn(model, batch)
        vals.append(_scalar(name, v))
    if variance is None:
        variance = torch.full_like(vals[0], float("nan"))
    vals.append(_scalar("the loss's variance", variance).to(vals[0].dtype))
    return vals


def _scalar(name: str, v: Any) -> torch.Tensor:
    if not isinstance(v, torch.Tensor) or v.numel() != 1:
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise BadOutput(f"{name} must return a scalar tensor, got {shape}")
    return v.detach().reshape(()).float() if v.dtype in _LOW else v.detach().reshape(())


_LOW = (torch.float16, torch.bfloat16)


def weighted_sum(
    problem: Problem, per_batch: list[np.ndarray], weights: list[float] | None = None
) -> np.ndarray:
    """Combine per-batch float64 blocks (each ``(..., n_values + 1)``: the values, then the
    loss's variance, as :func:`values_of` gives them) by batch-size weights into
    ``(..., n_values + 1)``: the values, then the loss's standard error.

    Values: one batch, its values unchanged; several, ``sum_b w_b * v_b`` in batch order, in
    float64. Standard error: ``sqrt(sum_b w_b^2 var_b)``, the batches being independent draws
    (the variance of a stratified mean; Cochran, *Sampling Techniques*, 1977, section 5.3).
    ``weights``: the batches' (default ``problem.weights``). Every engine combines batches
    through this function, so none differs in this step.
    """
    weights = problem.weights if weights is None else weights
    if len(per_batch) == 1:
        total = per_batch[0].copy()
    else:
        total = np.zeros_like(per_batch[0])
        for w, v in zip(weights, per_batch, strict=True):
            total += w * v
        variance = np.zeros_like(total[..., -1])
        for w, v in zip(weights, per_batch, strict=True):
            variance += w * w * v[..., -1]
        total[..., -1] = variance
    total[..., -1] = np.sqrt(total[..., -1])
    return total


def grad_context(problem: Problem) -> contextlib.AbstractContextManager:
    """``torch.no_grad()`` or ``torch.enable_grad()``, as ``problem.grad_mode`` says."""
    return torch.no_grad() if problem.grad_mode == "no_grad" else torch.enable_grad()


def center_pass(problem: Problem, mode: str = "enable_grad") -> np.ndarray:
    """Loss and metrics of the unperturbed model and the loss's standard error, float64, on
    all the data (with ``eval_tokens="auto"`` too), failing early with a clear message.

    ``mode``: ``"enable_grad"`` or ``"no_grad"`` (see :func:`grad_context`).
    """
    per_batch = []
    with torch.no_grad() if mode == "no_grad" else torch.enable_grad():
        for i, batch in enumerate(problem.batches):
            try:
                vals = values_of(problem, problem.model, batch)
            except BadOutput:
                raise
            except Exception as exc:
                raise RuntimeError(
                    f"the loss failed on the unperturbed model (batch {i}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            per_batch.append(torch.stack(vals).to(torch.float64).cpu().numpy())
    return weighted_sum(problem, per_batch)


def callable_id(fn: Any) -> str:
    """A stable identity for a loss or metric: qualified name plus a digest of its code."""
    if isinstance(fn, torch.nn.Module):
        return f"{type(fn).__module__}.{type(fn).__qualname__}:{fn!r}"
    target = getattr(fn, "func", fn)  # functools.partial
    module = getattr(target, "__module__", "?")
    name = f"{module}.{getattr(target, '__qualname__', type(target).__qualname__)}"
    code = getattr(target, "__code__", None)
    if code is not None:
        name += ":" + hashlib.sha256(code.co_code).hexdigest()[:16]
    return name


def as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A torch dtype from its name (``"float32"``, ``"bfloat16"``...) or itself."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    return DTYPES[dtype]
