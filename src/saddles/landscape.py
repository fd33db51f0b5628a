"""Evaluate a loss on points of a parameter subspace: the loss landscape.

This module owns stage 2 of the pipeline's evaluation: given a model, a loss, data, directions
``d_1..d_k`` (:mod:`saddles.directions`) and coordinates (:mod:`saddles.sampling`), it computes
``L(theta_0 + sum_k c_k d_k)`` for every point ``c`` and returns a :class:`Landscape`: numpy
arrays plus provenance, which hands itself to the topology core. It imports torch, numpy and
rich; it imports the topology package only inside :meth:`Landscape.to_graph` and
:meth:`Landscape.topology`, and it must not import the CLI.

Engines
-------
``"sequential"``
    The reference (Li et al. 2018's loop): write the perturbed weights into the model, run the
    loss over every batch, next point; the original weights are restored bit for bit at the end.
``"batched"``
    Many perturbed parameter sets per call: ``torch.func.functional_call`` swaps a point's
    parameters into the model and ``torch.vmap`` maps that over a chunk of points. This wins
    when a single evaluation is small and overhead-bound (the convection PINN: about 5x the
    sequential engine on one CPU thread, ``benchmarks/sampling.py``), and loses when one
    evaluation already saturates the hardware (ResNet-20 on 256 images: 2-2.5x slower; a
    character transformer, whose attention has no batching rule: 1.3x slower). If the model
    cannot be vmapped the run falls back to the sequential engine with an
    :class:`EngineFallbackWarning`, never silently.
``"auto"`` (default)
    Probes the candidates on the first points (sequential, then batched at chunk sizes 2, 4,
    8, ... doubling until two sizes in a row bring less than 5% per point, or a slower probe
    could waste more than 5% of the run), keeps the fastest and reports it (``info["probe"]``
    lists every measurement); with ``chunk_size`` given, that is the largest chunk it tries.
    Probe points are real results, not wasted work; each chunk records which engine computed
    it, and the engines agree to rounding (tested to 1e-5 relative). Pass an explicit engine
    for runs that must be bit-reproducible across separate invocations.

Memory: a batched chunk of ``B`` points holds ``B`` copies of the parameters plus ``B`` times a
point's activations. ``chunk_size`` fixes ``B``; otherwise ``B`` is the largest that fits
``max_memory`` (default: a quarter of the available RAM, half of the free GPU memory) according
to the peak memory measured while evaluating the centre point (live tensor storage on CPU, the
allocator's peak on CUDA).

Losses that differentiate with respect to their inputs (PINNs)
---------------------------------------------------------------
A loss that calls ``torch.autograd.grad`` or ``x.requires_grad_()`` cannot run under
``torch.vmap``; such a model falls back to the sequential engine (announced). To make it
batchable, take the input derivatives with torch.func transforms, which compose with vmap, e.g.
for ``u_t + beta u_x``::

    u, du = torch.func.jvp(model, (xt,), (tangent,))  # tangent = (beta, 1) per row of (x, t)

or ``torch.func.vmap(torch.func.jacrev(point_fn))(xt)`` for full per-point Jacobians (and
``jacfwd(jacrev(...))`` for second derivatives). The sequential engine runs either form.

Modes and precision: the model is put in eval mode (BatchNorm uses its running statistics,
dropout is off) unless ``train_mode=True``; every module's mode, every parameter, buffer and
``requires_grad`` flag is restored afterwards. ``device`` and ``dtype`` select where and in
what precision to evaluate; when they differ from the model's, a copy is moved there and the
model itself is left alone.

Run directory (resumable runs)
------------------------------
With ``run_dir``, each finished chunk is written atomically (temporary file + rename) to
``run_dir/chunks/<start>-<stop>.npz``, ``config.json`` records the configuration's hash and the
chunk plan, and the finished landscape is saved as ``run_dir/landscape.npz`` + ``.json``. A run
restarted with ``resume=True`` and the same configuration (model weights and buffers,
directions, coordinates, data, loss and metrics, dtype, device type, mode) skips the chunks on
disk and computes the rest with the same plan, so the values are bit-identical to an
uninterrupted run; a different configuration is refused, naming what differs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from saddles._files import atomic_write_text as _atomic_write_text
from saddles._files import to_jsonable
from saddles.data import (
    Batch,
    LossFn,
    as_batches,
    batch_size,
    batch_weights,
    make_loss,
    move_batches,
)
from saddles.directions import Directions, from_tensors, parameters
from saddles.sampling import Coordinates, as_coordinates

log = logging.getLogger("saddles")

ENGINES = ("auto", "sequential", "batched")
MAX_CHUNK = 1024  # largest batched chunk the probe or the memory rule will pick
PROBE_BUDGET = 0.05  # auto: stop probing when the next probe could waste > 5% of the run
RUNG_SECONDS = 0.02  # auto: time each probed chunk size on chunks worth about this long
LANDSCAPE_FORMAT = "saddles.landscape"
LANDSCAPE_VERSION = 1
RUN_FORMAT_VERSION = 1


class EngineFallbackWarning(UserWarning):
    """The batched engine could not run this model; the sequential engine is used instead."""


class _BadOutput(ValueError):
    """A loss or metric returned something other than a scalar tensor."""


# --- the result --------------------------------------------------------------------------------


@dataclass
class Landscape:
    """Loss values on points of a parameter subspace, and how they were obtained.

    Attributes:
        coords: ``(n, k)`` float64 coordinates, one row per point (C order for a grid).
        loss: ``(n,)`` float64 loss values; NaN/inf where the loss diverged.
        metrics: extra per-point values (e.g. ``"accuracy"``), each ``(n,)`` float64.
        shape: the grid's shape, or ``None`` for scattered points.
        info: provenance: directions (seed, normalization...), coordinates, model size, data
            size, engine, device, dtype, timings, ``center_loss``, ``n_nonfinite``.
    """

    coords: np.ndarray
    loss: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    shape: tuple[int, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(self.coords.shape[0])

    @property
    def dims(self) -> int:
        return int(self.coords.shape[1])

    @property
    def is_grid(self) -> bool:
        return self.shape is not None

    @property
    def n_nonfinite(self) -> int:
        """Number of points whose loss is NaN or inf."""
        return int((~np.isfinite(self.loss)).sum())

    def values(self, name: str = "loss") -> np.ndarray:
        """The loss (default) or a metric, one value per point."""
        if name == "loss":
            return self.loss
        if name not in self.metrics:
            raise KeyError(f"no values named {name!r}; have 'loss' and {sorted(self.metrics)}")
        return self.metrics[name]

    def grid(self, name: str = "loss") -> np.ndarray:
        """Values reshaped to the grid (``field[i, j]`` is at ``(axis0[i], axis1[j])``)."""
        if self.shape is None:
            raise ValueError("this landscape was sampled at scattered points, not on a grid")
        return self.values(name).reshape(self.shape)

    def to_graph(
        self,
        connectivity: str = "full",
        k: int | None = None,
        method: str = "auto",
        mode: str = "union",
        name: str = "loss",
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(values, edges)`` for the topology core: one value per point and an edge list.

        A grid is joined by ``grid_edges(shape, connectivity)`` (``"full"``, ``"faces"`` or
        ``"freudenthal"``); scattered points by ``knn_edges(coords, k, method, mode)`` with
        ``k = 4 x dimension`` by default, as in Xie et al. 2024. Non-finite values are kept;
        ``merge_tree(..., nan_policy="max")`` treats them as larger than every finite value.
        """
        from saddles.topology import grid_edges, knn_edges

        values = np.asarray(self.values(name), dtype=np.float64)
        if self.shape is not None:
            return values, grid_edges(self.shape, connectivity)
        k = 4 * self.dims if k is None else k
        return values, knn_edges(self.coords, k=k, method=method, mode=mode)

    def topology(
        self,
        connectivity: str = "full",
        k: int | None = None,
        method: str = "auto",
        mode: str = "union",
        threshold: float | None = None,
        relative: bool = False,
        nan_policy: str = "max",
        name: str = "loss",
    ) -> tuple[Any, dict[str, float | int]]:
        """Merge tree and metrics of the landscape in one call: ``(tree, metrics)``.

        Builds the graph as :meth:`to_graph`, runs ``merge_tree`` and ``compute_metrics``
        (``threshold``/``relative`` add persistence-simplified metrics). Diverged (NaN/inf)
        points are swept last (``nan_policy="max"``); pass ``"raise"`` to reject them.
        """
        from saddles.topology import compute_metrics, merge_tree

        values, edges = self.to_graph(connectivity, k=k, method=method, mode=mode, name=name)
        tree = merge_tree(values, edges, nan_policy=nan_policy)
        return tree, compute_metrics(tree, threshold=threshold, relative=relative)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (shape, metric names, info).

        The ``.npz`` holds ``coords`` (n, k), ``loss`` and ``metric__<name>``; for a grid the
        values are stored in the grid's shape, so ``saddles topology <path>.npz`` reads the
        field directly. Both files are written atomically. Returns the ``.npz`` path.
        """
        base = _strip_suffix(Path(path))
        base.parent.mkdir(parents=True, exist_ok=True)
        shape = self.shape if self.shape is not None else (self.n_points,)
        arrays = {"coords": self.coords, "loss": self.loss.reshape(shape)}
        arrays.update({f"metric__{k}": v.reshape(shape) for k, v in self.metrics.items()})
        npz = base.with_name(base.name + ".npz")
        _atomic_savez(npz, arrays)
        meta = {
            "format": LANDSCAPE_FORMAT,
            "version": LANDSCAPE_VERSION,
            "shape": list(self.shape) if self.shape is not None else None,
            "metrics": sorted(self.metrics),
            "info": self.info,
        }
        _atomic_write_text(base.with_name(base.name + ".json"), _dumps(meta))
        return npz

    @classmethod
    def load(cls, path: str | os.PathLike) -> Landscape:
        """Read a landscape written by :meth:`save` (``path`` with or without ``.npz``)."""
        base = _strip_suffix(Path(path))
        npz, side = base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")
        for p in (npz, side):
            if not p.exists():
                raise FileNotFoundError(f"landscape file {p} does not exist")
        meta = json.loads(side.read_text())
        if meta.get("format") != LANDSCAPE_FORMAT:
            raise ValueError(f"{side} is not a saddles landscape sidecar")
        if meta.get("version", 0) > LANDSCAPE_VERSION:
            raise ValueError(
                f"{side} has format version {meta['version']}; this saddles reads up to "
                f"{LANDSCAPE_VERSION}"
            )
        with np.load(npz, allow_pickle=False) as z:
            coords, loss = z["coords"], z["loss"].reshape(-1)
            metrics = {name: z[f"metric__{name}"].reshape(-1) for name in meta["metrics"]}
        shape = tuple(meta["shape"]) if meta["shape"] is not None else None
        return cls(coords, loss, metrics, shape, meta.get("info", {}))


# --- evaluation --------------------------------------------------------------------------------


def evaluate(
    model: torch.nn.Module,
    loss: LossFn | torch.nn.Module | None,
    data: Any,
    directions: Directions | Any,
    coords: Coordinates | np.ndarray,
    *,
    criterion: Callable[..., torch.Tensor] | None = None,
    metrics: Mapping[str, LossFn] | None = None,
    engine: str = "auto",
    chunk_size: int | None = None,
    max_memory: int | str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    train_mode: bool = False,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Landscape:
    """Evaluate the loss at ``theta_0 + sum_k c_k d_k`` for every point ``c`` of ``coords``.

    Args:
        model: the network; its weights are the centre ``theta_0`` and are unchanged afterwards.
        loss: ``loss(model, batch) -> scalar`` (any loss, including PINNs and language models),
            or an ``nn.Module`` criterion applied as ``criterion(model(inputs), targets)``.
            ``None`` with ``criterion=`` given.
        data: a tensor, a tuple of tensors, or an iterable of such batches (a DataLoader,
            read once); per-batch values are averaged with batch-size weights.
        directions: a :class:`~saddles.directions.Directions` or anything
            :func:`~saddles.directions.from_tensors` accepts (parameter lists, flat vectors).
        coords: a :class:`~saddles.sampling.Coordinates` or an ``(n, k)`` array, ``k`` the
            number of directions.
        criterion: a plain function ``criterion(outputs, targets)``, instead of ``loss``.
        metrics: extra per-point values, ``{name: fn(model, batch) -> scalar}`` (accuracy...),
            averaged over batches like the loss.
        engine: ``"auto"``, ``"sequential"`` or ``"batched"`` (see the module docstring).
        chunk_size: points per batched call and per saved chunk.
        max_memory: memory budget of a batched chunk, bytes or a string such as ``"2GB"``.
        device, dtype: where and in what precision to evaluate (default: the model's).
        train_mode: evaluate in train mode (BatchNorm batch statistics, random dropout).
        run_dir: directory for resumable results (see the module docstring).
        resume: continue the run found in ``run_dir`` (it must have the same configuration).
        progress: show a progress bar with points per second and ETA; ``False`` is quiet.
    """
    started = time.perf_counter()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if chunk_size is not None and (
        not isinstance(chunk_size, (int, np.integer))
        or isinstance(chunk_size, bool)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer, not {chunk_size!r}")
    budget = parse_bytes(max_memory) if max_memory is not None else None
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    coords = as_coordinates(coords)
    problem = _setup(model, loss, criterion, metrics, data, directions, coords, device, dtype)
    console = _console() if progress else None

    state = _ModelState.capture(problem.model)
    try:
        problem.model.train(train_mode)
        for p in problem.params:
            p.requires_grad_(False)
        run = _RunDir.open(run_dir, problem, coords, train_mode, resume) if run_dir else None
        finished = run is not None and run.finished()
        # Only a batched run without a fixed chunk size needs the memory estimate.
        planned = run is not None and run.plan is not None
        measure = not finished and engine != "sequential" and chunk_size is None and not planned
        center, per_point = _center_values(problem, measure)
        if run is not None:
            run.check_center(center)
        if finished:
            landscape = run.load_landscape()
            _say(console, f"run in {run.path} is already complete; loaded it")
            return landscape
        cap = _chunk_cap(per_point, budget, problem.device) if per_point else MAX_CHUNK
        results: dict[tuple[int, int], np.ndarray] = run.load_chunks() if run else {}
        loop = _Loop(problem, coords, results, run, console)
        try:
            plan = run.plan if run else None
            if plan is not None:
                done = sum(b - a for a, b in results)
                _say(
                    console,
                    f"resuming the run in {run.path}: {done} of {coords.n_points} points done; "
                    f"engine {plan['engine']}, chunks of {plan['chunk_size']} (the run's plan)",
                )
            if plan is None:
                plan = _make_plan(loop, engine, chunk_size, cap)
                if run is not None:
                    run.save_plan(plan)
            loop.run_plan(plan)
            loop.fill_gaps(plan)
        finally:
            loop.close()
    finally:
        state.restore(problem.model)

    values = np.full((coords.n_points, problem.n_values), np.nan)
    for (start, stop), block in results.items():
        values[start:stop] = block
    n_bad = int((~np.isfinite(values[:, 0])).sum())
    elapsed = time.perf_counter() - started
    info = _provenance(problem, coords, train_mode, plan, loop, center, n_bad, elapsed)
    info["memory_per_point_bytes"] = per_point
    names = problem.value_names
    landscape = Landscape(
        coords=coords.points.copy(),
        loss=values[:, 0].copy(),
        metrics={n: values[:, i + 1].copy() for i, n in enumerate(names[1:])},
        shape=coords.shape,
        info=info,
    )
    if n_bad:
        _say(console, f"{n_bad} of {coords.n_points} points gave a non-finite loss (kept, counted)")
    if run is not None:
        run.save_landscape(landscape)
    return landscape


def parse_bytes(value: int | float | str) -> int:
    """Read a memory size: a number of bytes or a string such as ``"512MB"`` or ``"2 GiB"``."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"max_memory must be positive, not {value}")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", str(value))
    if not match:
        raise ValueError(f"cannot read a memory size from {value!r}; write e.g. '2GB' or '512MiB'")
    number, unit, binary = float(match[1]), match[2].upper(), match[3]
    base = 1024 if binary else 1000
    power = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit]
    if number <= 0:
        raise ValueError(f"max_memory must be positive, not {value!r}")
    return int(number * base**power)


# --- the problem: everything both engines need -------------------------------------------------


@dataclass
class _Problem:
    model: torch.nn.Module  # the model evaluated (the user's, or a copy on another device/dtype)
    names: list[str]  # parameter names
    params: list[torch.Tensor]  # the model's parameter tensors (written by the sequential engine)
    center: list[torch.Tensor]  # theta_0, flattened per parameter: (numel,)
    basis: list[torch.Tensor]  # per parameter: (k, numel), row i = direction i's entries
    batches: list[Batch]
    weights: list[float]
    fns: list[LossFn]  # the loss first, then the metrics
    value_names: list[str]
    directions_info: dict[str, Any]
    ids: dict[str, str]  # identities of loss and metrics, for provenance and hashing
    device: torch.device
    dtype: torch.dtype
    n_samples: int

    @property
    def n_values(self) -> int:
        return len(self.fns)


def _setup(model, loss, criterion, metrics, data, directions, coords, device, dtype) -> _Problem:
    """Check every input and gather what the engines need, on the evaluation device/dtype."""
    names, params = parameters(model)
    model_device = params[0].device
    float_params = [p for p in params if p.is_floating_point()]
    if not float_params:
        raise ValueError("the model has no floating-point parameters to perturb")
    model_dtype = float_params[0].dtype
    device = torch.device(device) if device is not None else model_device
    dtype = _as_dtype(dtype) if dtype is not None else model_dtype
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    work = model
    if device != model_device or dtype != model_dtype:
        work = copy.deepcopy(model).to(device=device, dtype=dtype)
    names, params = parameters(work)

    if isinstance(loss, torch.nn.Module) and criterion is None:
        loss, criterion = None, loss
    fn = make_loss(loss=loss, criterion=criterion)
    ids = {
        "loss": _callable_id(loss) if loss is not None else f"criterion:{_callable_id(criterion)}"
    }
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
        ids[f"metric:{name}"] = _callable_id(metric)

    if data is None:
        raise ValueError("no data: give a tensor, a tuple of tensors or an iterable of batches")
    batches = as_batches(data)
    n_samples = sum(batch_size(b) for b in batches)
    weights = batch_weights(batches)
    batches = move_batches(batches, device, dtype)

    dirs = from_tensors(work, directions)
    if coords.dims != len(dirs):
        raise ValueError(
            f"coordinates have {coords.dims} column(s) but there are {len(dirs)} direction(s); "
            "each point needs one coordinate per direction"
        )
    basis = [
        torch.stack([d[j].reshape(-1) for d in dirs.tensors]).to(device=device, dtype=p.dtype)
        for j, p in enumerate(params)
    ]
    center = [p.detach().reshape(-1).clone() for p in params]
    return _Problem(
        model=work,
        names=names,
        params=params,
        center=center,
        basis=basis,
        batches=batches,
        weights=weights,
        fns=fns,
        value_names=value_names,
        directions_info=dict(dirs.info),
        ids=ids,
        device=device,
        dtype=dtype,
        n_samples=n_samples,
    )


def _perturbed(problem: _Problem, c: torch.Tensor) -> list[torch.Tensor]:
    """Parameters at points ``c`` (``(B, k)``): one ``(B, *shape)`` tensor per parameter."""
    out = []
    for w0, basis, p in zip(problem.center, problem.basis, problem.params, strict=True):
        flat = torch.addmm(w0.unsqueeze(0), c.to(basis.dtype), basis)
        out.append(flat.reshape((c.shape[0],) + tuple(p.shape)))
    return out


def _values_of(problem: _Problem, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Loss and metrics of one batch as a float64 vector (checked to be scalars)."""
    vals = []
    for name, fn in zip(problem.value_names, problem.fns, strict=True):
        v = fn(model, batch)
        if not isinstance(v, torch.Tensor) or v.numel() != 1:
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise _BadOutput(f"{name} must return a scalar tensor, got {shape}")
        vals.append(v.reshape(()).to(torch.float64))
    return torch.stack(vals)


def _center_values(problem: _Problem, measure: bool) -> tuple[np.ndarray, int | None]:
    """Loss and metrics of the unperturbed model, and (if ``measure``) bytes per batched point.

    This first evaluation fails early, with a clear message, on a broken loss. With
    ``measure`` it also records the peak memory of the pass (see :func:`_memory_meter`), so
    the estimate costs no extra forward.
    """
    if measure:
        try:
            meter = _memory_meter(problem)
            with meter:
                values = _center_pass(problem)
            params = sum(w.numel() * w.element_size() for w in problem.center)
            return values, int(params + meter.peak)
        except _BadOutput:
            raise
        except Exception as exc:  # the meter itself failed: evaluate without it
            log.info("could not measure activation memory (%s); assuming 5x the parameters", exc)
            params = sum(w.numel() * w.element_size() for w in problem.center)
            return _center_pass(problem), 5 * params
    return _center_pass(problem), None


def _center_pass(problem: _Problem) -> np.ndarray:
    total = torch.zeros(problem.n_values, dtype=torch.float64)
    with torch.enable_grad():
        for i, (batch, w) in enumerate(zip(problem.batches, problem.weights, strict=True)):
            try:
                total += w * _values_of(problem, problem.model, batch).detach().cpu()
            except _BadOutput:
                raise
            except Exception as exc:
                raise RuntimeError(
                    f"the loss failed on the unperturbed model (batch {i}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    return total.numpy()


# --- the engines -------------------------------------------------------------------------------


def _run_sequential(problem: _Problem, c: torch.Tensor) -> np.ndarray:
    """Reference engine: write each point's weights into the model, evaluate, next point."""
    out = np.empty((c.shape[0], problem.n_values))
    with torch.enable_grad():
        for i in range(c.shape[0]):
            with torch.no_grad():
                for p, w in zip(problem.params, _perturbed(problem, c[i : i + 1]), strict=True):
                    p.copy_(w[0])
            total = torch.zeros(problem.n_values, dtype=torch.float64, device=problem.device)
            for batch, weight in zip(problem.batches, problem.weights, strict=True):
                total += weight * _values_of(problem, problem.model, batch).detach()
            out[i] = total.cpu().numpy()
    with torch.no_grad():  # leave the centre in place between chunks
        for p, w0 in zip(problem.params, problem.center, strict=True):
            p.copy_(w0.reshape(p.shape))
    return out


class _Call(torch.nn.Module):
    """Wraps ``model`` so that ``functional_call`` swaps its parameters for the whole loss."""

    def __init__(self, problem: _Problem):
        super().__init__()
        self.model = problem.model
        self.problem = [problem]  # a list, so the problem is not registered as a submodule

    def forward(self, batch: Batch) -> torch.Tensor:
        return _values_of(self.problem[0], self.model, batch)


def _run_batched(problem: _Problem, c: torch.Tensor) -> np.ndarray:
    """Batched engine: ``vmap`` over ``functional_call`` with a chunk of parameter sets."""
    call = _Call(problem)
    with torch.no_grad():
        stacked = {
            f"model.{n}": t for n, t in zip(problem.names, _perturbed(problem, c), strict=True)
        }

    def one_point(params: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        return torch.func.functional_call(call, params, (batch,))

    mapped = torch.vmap(one_point, in_dims=(0, None), randomness="different")
    total = torch.zeros(c.shape[0], problem.n_values, dtype=torch.float64, device=problem.device)
    with torch.enable_grad(), warnings.catch_warnings():
        # Ops without a batching rule run in a slower loop; "auto" measures that instead.
        warnings.filterwarnings("ignore", message=".*performance drop because we have not yet")
        for batch, weight in zip(problem.batches, problem.weights, strict=True):
            total += weight * mapped(stacked, batch).detach()
    return total.cpu().numpy()


_ENGINE_FUNCS = {"sequential": _run_sequential, "batched": _run_batched}


# --- the evaluation loop: chunks, probing, fallback, progress, saving --------------------------


class _Loop:
    """Evaluates chunks in order, records results (and writes them), shows progress."""

    def __init__(self, problem, coords, results, run, console):
        self.problem = problem
        self.points = torch.as_tensor(coords.points, dtype=torch.float64)
        self.n = coords.n_points
        self.results = results
        self.run = run
        self.console = console
        self.fallback: str | None = None
        self.batched_ok = False
        self.chunk_engines: list[tuple[int, int, str]] = []
        self.probe: list[dict[str, Any]] = []
        self.bar = (
            _progress_bar(console, self.n, sum(b - a for a, b in results)) if console else None
        )

    def done(self, start: int, stop: int) -> bool:
        return (start, stop) in self.results

    def first_missing(self) -> int:
        covered = np.zeros(self.n, dtype=bool)
        for a, b in self.results:
            covered[a:b] = True
        return int(np.argmin(covered)) if not covered.all() else self.n

    def evaluate(self, start: int, stop: int, engine: str) -> float:
        """Evaluate points [start, stop) with ``engine``; return seconds per point.

        If the batched engine fails before it has succeeded once in this run, the model cannot
        be vmapped: this is announced (:class:`EngineFallbackWarning`) and this chunk and all
        later ones use the sequential engine. A failure after a success is a real error (e.g.
        out of memory) and propagates.
        """
        c = self.points[start:stop].to(self.problem.device)
        if engine == "batched" and self.fallback is None:
            t0 = time.perf_counter()
            try:
                block = _run_batched(self.problem, c)
            except Exception as exc:
                if self.batched_ok:
                    raise
                self.announce_fallback(exc)
            else:
                self.batched_ok = True
                return self.record(start, stop, "batched", block, t0)
        t0 = time.perf_counter()
        block = _run_sequential(self.problem, c)
        return self.record(start, stop, "sequential", block, t0)

    def announce_fallback(self, exc: Exception) -> None:
        self.fallback = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        msg = (
            "the batched (vmap) engine cannot evaluate this model; falling back to the "
            f"sequential engine. Reason: {self.fallback}"
        )
        warnings.warn(msg, EngineFallbackWarning, stacklevel=5)
        _say(self.console, f"[yellow]{msg}[/yellow]")

    def record(self, start: int, stop: int, engine: str, block: np.ndarray, t0: float) -> float:
        """Keep (and write) a finished chunk; return its seconds per point."""
        seconds = (time.perf_counter() - t0) / (stop - start)
        self.results[(start, stop)] = block
        self.chunk_engines.append((start, stop, engine))
        if self.run is not None:
            self.run.save_chunk(start, stop, block, engine)
        if self.bar is not None:
            self.bar[0].advance(self.bar[1], stop - start)
        return seconds

    def run_plan(self, plan: dict[str, Any]) -> None:
        """Evaluate every planned chunk not yet done, with the plan's engine."""
        for start, stop in _plan_chunks(plan, self.n):
            if self.done(start, stop):
                continue
            self.evaluate(start, stop, plan["engine"])
            if plan["engine"] == "batched" and self.fallback is not None:
                plan["engine"], plan["fallback"] = "sequential", self.fallback
                if self.run is not None:
                    self.run.save_plan(plan)

    def fill_gaps(self, plan: dict[str, Any]) -> None:
        """Evaluate points no chunk covers (e.g. a chunk file removed before a resume)."""
        while (start := self.first_missing()) < self.n:
            stop = start + 1
            while stop < self.n and stop - start < int(plan["chunk_size"]):
                if any(a <= stop < b for a, b in self.results):
                    break
                stop += 1
            self.evaluate(start, stop, plan["engine"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar[0].stop()


def _make_plan(loop: _Loop, engine: str, chunk_size: int | None, cap: int) -> dict[str, Any]:
    """Decide the engine and chunk size; for "auto", by timing candidates on the first points.

    A plan is ``{"engine", "chunk_size", "start"}``: points before ``start`` are already done
    (probe chunks), the rest is cut into chunks of ``chunk_size`` from ``start``.
    """
    n = loop.n
    start = loop.first_missing()
    if engine == "sequential":
        size = chunk_size or _default_write_chunk(n)
        return {"engine": "sequential", "chunk_size": int(size), "start": start}
    if engine == "batched":
        size = chunk_size or min(cap, 256)
        return {"engine": "batched", "chunk_size": int(max(1, min(size, n))), "start": start}

    # --- auto: probe. Each probe evaluates real points (kept), so nothing is recomputed. ---
    pos = start
    remaining = n - pos
    if remaining == 0:
        return {"engine": "sequential", "chunk_size": _default_write_chunk(n), "start": n}
    # Every size is timed on a few chunks and its fastest chunk counts: on a shared machine,
    # noise only ever adds time (and the first batched call's one-time costs drop out too).
    # Sequential: one point at a time until ~0.05 s or 4 points, at least 2.
    seq_times: list[float] = []
    while pos < n and (len(seq_times) < 2 or (sum(seq_times) < 0.05 and len(seq_times) < 4)):
        seq_times.append(loop.evaluate(pos, pos + 1, "sequential"))
        pos += 1
    t_seq = min(seq_times)
    loop.probe.append({"engine": "sequential", "chunk_size": 1, "seconds_per_point": t_seq})
    best = ("sequential", 1, t_seq)
    # Batched: chunk sizes 2, 4, 8, ..., each on up to 2 chunks (3 for the first size, whose
    # first call pays vmap's one-time costs) while they take less than RUNG_SECONDS together,
    # doubling until two sizes in a row are not 5% faster per point than the best batched size
    # before them, or a slower probe could waste more than 5% of the rest of the run.
    largest = min(cap, chunk_size or cap)
    sizes = [2**i for i in range(1, 10) if 2**i <= largest]
    if largest >= 2 and largest not in sizes and chunk_size is not None:
        sizes.append(int(largest))
    previous: float | None = None  # best batched seconds per point so far
    misses = 0
    for size in sizes:
        times: list[float] = []
        tries = 3 if previous is None else 2
        while len(times) < tries and sum(times) * size < RUNG_SECONDS and loop.fallback is None:
            left = n - pos
            last = min(times) if times else previous
            waste = size * max(0.0, last - best[2]) if last is not None else 0.0
            if size > left or waste > PROBE_BUDGET * left * best[2]:
                break
            times.append(loop.evaluate(pos, pos + size, "batched"))
            pos += size
        if not times or loop.fallback is not None:
            break  # no points or budget left, or the model cannot be vmapped
        t = min(times)
        loop.probe.append({"engine": "batched", "chunk_size": size, "seconds_per_point": t})
        if t < best[2]:
            best = ("batched", size, t)
        misses = 0 if previous is None or t <= 0.95 * previous else misses + 1
        if misses == 2:
            break  # doubling no longer pays
        previous = t if previous is None else min(previous, t)
    engine_name, size, t_best = best
    if engine_name == "sequential":
        size = chunk_size or _default_write_chunk(n)
    speedup = t_seq / t_best if t_best > 0 else float("nan")
    msg = (
        f"engine 'auto' chose {engine_name}"
        + (f" (chunk {size})" if engine_name == "batched" else "")
        + f": {1e3 * t_best:.3g} ms/point, {speedup:.2f}x the speed of the sequential engine"
    )
    _say(loop.console, msg)
    log.info(msg)
    return {"engine": engine_name, "chunk_size": int(size), "start": pos, "auto": True}


def _plan_chunks(plan: dict[str, Any], n: int) -> list[tuple[int, int]]:
    size, start = int(plan["chunk_size"]), int(plan["start"])
    return [(a, min(a + size, n)) for a in range(start, n, size)]


def _default_write_chunk(n: int) -> int:
    """Sequential runs save about every 1% of the points (1 to 256 points per chunk)."""
    return int(min(256, max(1, -(-n // 100))))


# --- memory --------------------------------------------------------------------------------


def _memory_meter(problem: _Problem):
    """A context whose ``peak`` is the peak activation memory (bytes) of the code inside it.

    Together with one parameter copy this is what a batched chunk needs per point. On CUDA it
    comes from the allocator's peak statistics; on CPU from a dispatch mode that sees every
    allocation (its first use in a process imports parts of torch, about a second).
    """
    if problem.device.type == "cuda":
        return _CudaPeak(problem.device)
    with warnings.catch_warnings(), _PeakMemory(problem):
        # The first dispatch-mode op imports parts of torch that warn about their own
        # deprecations; do it on a trivial op, so users see only their own warnings.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.zeros(1) + 1
    return _PeakMemory(problem)


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


class _PeakMemory(TorchDispatchMode):
    """Track the peak bytes of tensor storage allocated (and still alive) inside the block."""

    def __init__(self, problem: _Problem):
        super().__init__()
        self.live = 0
        self.peak = 0
        existing = [*problem.params, *problem.center, *problem.model.buffers()]
        existing += [t for b in problem.batches for t in b]
        self.seen = {t.untyped_storage().data_ptr() for t in existing}

    def _free(self, key: int, nbytes: int) -> None:
        self.seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = storage.data_ptr(), storage.nbytes()
                if nbytes and key not in self.seen:
                    self.seen.add(key)
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key, nbytes)
        return out


def _chunk_cap(per_point: int, budget: int | None, device: torch.device) -> int:
    """Largest batched chunk within the memory budget (default budget: see module docstring)."""
    if budget is None:
        budget = _default_budget(device)
    return int(max(1, min(MAX_CHUNK, budget // max(1, per_point))))


def _default_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        available = 8 * 1024**3
    return int(available * 0.25)


# --- model state: what a run must leave exactly as it found it ---------------------------------


@dataclass
class _ModelState:
    params: list[torch.Tensor]
    buffers: list[torch.Tensor]
    requires_grad: list[bool]
    training: list[bool]

    @classmethod
    def capture(cls, model: torch.nn.Module) -> _ModelState:
        ps = list(model.parameters())
        return cls(
            params=[p.detach().clone() for p in ps],
            buffers=[b.detach().clone() for b in model.buffers()],
            requires_grad=[p.requires_grad for p in ps],
            training=[m.training for m in model.modules()],
        )

    def restore(self, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for p, saved, flag in zip(
                model.parameters(), self.params, self.requires_grad, strict=True
            ):
                p.copy_(saved)
                p.requires_grad_(flag)
            for b, saved in zip(model.buffers(), self.buffers, strict=True):
                b.copy_(saved)
        for m, flag in zip(model.modules(), self.training, strict=True):
            m.training = flag


# --- run directory -----------------------------------------------------------------------------


class _RunDir:
    """A resumable run on disk: config.json, chunks/<start>-<stop>.npz, landscape.npz/json."""

    def __init__(self, path: Path, config: dict[str, Any], plan: dict[str, Any] | None):
        self.path = path
        self.config = config
        self.plan = plan

    @classmethod
    def open(cls, path, problem, coords, train_mode, resume) -> _RunDir:
        path = Path(path)
        parts = _config_parts(problem, coords, train_mode)
        digest = hashlib.sha256(_dumps(parts).encode()).hexdigest()
        config = {
            "format": "saddles.run",
            "version": RUN_FORMAT_VERSION,
            "config_hash": digest,
            "parts": parts,
            "n_points": coords.n_points,
            "value_names": problem.value_names,
            "plan": None,
        }
        cfg_file = path / "config.json"
        if cfg_file.exists():
            if not resume:
                raise FileExistsError(
                    f"{path} already holds a run; pass resume=True (CLI: --resume) to continue "
                    "it, or choose another directory"
                )
            stored = json.loads(cfg_file.read_text())
            if stored.get("config_hash") != digest:
                old = stored.get("parts", {})
                differ = [k for k in parts if old.get(k) != parts[k]] or ["format"]
                raise ValueError(
                    f"refusing to resume the run in {path}: its configuration differs in "
                    f"{', '.join(differ)}. Use the same model, directions, coordinates, data, "
                    "loss and settings, or a new directory (a shuffling DataLoader gives "
                    "different data on every run)."
                )
            run = cls(path, stored, stored.get("plan"))
            return run
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path} is not empty and holds no saddles run; choose another")
        (path / "chunks").mkdir(parents=True, exist_ok=True)
        run = cls(path, config, None)
        _atomic_write_text(cfg_file, _dumps(config))
        return run

    def check_center(self, center: np.ndarray) -> None:
        """Record the unperturbed loss (and metrics) on a new run; on a resumed one, refuse if
        it changed. The configuration hash names the loss function but cannot see into a
        closure or ``functools.partial``; the centre value catches a changed loss anyway."""
        values = [float(v) for v in np.asarray(center).ravel()]
        stored = self.config.get("center")
        if stored is None:
            self.config["center"] = values
            _atomic_write_text(self.path / "config.json", _dumps(self.config))
            return
        if len(stored) != len(values) or not np.allclose(stored, values, rtol=1e-6, atol=0,
                                                          equal_nan=True):  # fmt: skip
            raise ValueError(
                f"refusing to resume the run in {self.path}: the unperturbed loss is "
                f"{values[0]:.6g} now but was {stored[0]:.6g} when the run was made, so the "
                "loss, its parameters or the data changed; use a new directory"
            )

    def save_plan(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.config["plan"] = plan
        _atomic_write_text(self.path / "config.json", _dumps(self.config))

    def chunk_file(self, start: int, stop: int) -> Path:
        return self.path / "chunks" / f"{start:09d}-{stop:09d}.npz"

    def save_chunk(self, start: int, stop: int, block: np.ndarray, engine: str) -> None:
        _atomic_savez(self.chunk_file(start, stop), {"values": block, "engine": np.array(engine)})

    def load_chunks(self) -> dict[tuple[int, int], np.ndarray]:
        out = {}
        n, width = self.config["n_points"], len(self.config["value_names"])
        for f in sorted((self.path / "chunks").glob("*.npz")):
            match = re.fullmatch(r"(\d+)-(\d+)\.npz", f.name)
            if not match:
                continue
            start, stop = int(match[1]), int(match[2])
            with np.load(f, allow_pickle=False) as z:
                block = z["values"]
            if not (0 <= start < stop <= n) or block.shape != (stop - start, width):
                raise ValueError(f"chunk file {f} does not fit this run; remove it to recompute")
            out[(start, stop)] = block
        return out

    def finished(self) -> bool:
        return (self.path / "landscape.npz").exists() and (self.path / "landscape.json").exists()

    def load_landscape(self) -> Landscape:
        return Landscape.load(self.path / "landscape")

    def save_landscape(self, landscape: Landscape) -> None:
        landscape.info["run_dir"] = str(self.path)
        landscape.save(self.path / "landscape")


def _config_parts(problem: _Problem, coords: Coordinates, train_mode: bool) -> dict[str, str]:
    """Hashes of everything that determines the values (engine settings do not)."""
    model = hashlib.sha256(type(problem.model).__qualname__.encode())
    for name, t in problem.model.state_dict().items():
        model.update(name.encode())
        _hash_tensor(model, t)
    dirs = hashlib.sha256()
    for b in problem.basis:
        _hash_tensor(dirs, b)
    data = hashlib.sha256()
    for batch in problem.batches:
        for t in batch:
            _hash_tensor(data, t)
    pts = hashlib.sha256(np.ascontiguousarray(coords.points).tobytes())
    pts.update(str(coords.points.shape).encode())
    return {
        "model": model.hexdigest(),
        "directions": dirs.hexdigest(),
        "coordinates": pts.hexdigest(),
        "data": data.hexdigest(),
        "loss_and_metrics": json.dumps(problem.ids, sort_keys=True),
        "dtype": str(problem.dtype),
        "device": problem.device.type,
        "train_mode": str(bool(train_mode)),
    }


def _hash_tensor(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def _callable_id(fn: Any) -> str:
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


# --- provenance, files, display ----------------------------------------------------------------


def _provenance(problem, coords, train_mode, plan, loop, center, n_bad, elapsed) -> dict[str, Any]:
    import saddles

    n_params = sum(w.numel() for w in problem.center)
    info = {
        "saddles_version": saddles.__version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"class": type(problem.model).__qualname__, "n_params": int(n_params)},
        "directions": problem.directions_info,
        "coordinates": dict(coords.info),
        "data": {"n_batches": len(problem.batches), "n_samples": int(problem.n_samples)},
        "loss": problem.ids,
        "value_names": problem.value_names,
        "engine": plan["engine"],
        "engine_requested": "auto" if plan.get("auto") else plan["engine"],
        "chunk_size": int(plan["chunk_size"]),
        "probe": loop.probe,
        "fallback": plan.get("fallback") or loop.fallback,
        "chunk_engines": sorted(loop.chunk_engines),
        "device": str(problem.device),
        "dtype": str(problem.dtype).replace("torch.", ""),
        "train_mode": bool(train_mode),
        "center_loss": float(center[0]),
        "center_metrics": {
            n: float(v) for n, v in zip(problem.value_names[1:], center[1:], strict=True)
        },
        "n_nonfinite": n_bad,
        "elapsed_s": elapsed,
    }
    return info


def _strip_suffix(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in (".npz", ".json") else path


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj, nonfinite="string"), indent=1, sort_keys=True)


def _as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {
        "float32": torch.float32,
        "float64": torch.float64,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "double": torch.float64,
        "float": torch.float32,
    }
    if dtype not in table:
        raise ValueError(f"dtype must be one of {sorted(table)}, not {dtype!r}")
    return table[dtype]


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _say(console, message: str) -> None:
    if console is not None:
        console.print(message)


def _progress_bar(console, total: int, completed: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.1f} pts/s" if task.speed else "- pts/s")

    bar = Progress(
        TextColumn("landscape"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    task = bar.add_task("landscape", total=total, completed=completed)
    bar.start()
    return bar, task
