"""``evaluate``: the loss at ``theta_0 + sum_k c_k d_k`` for every point ``c``, as a Landscape.

It wires the stages of this package together, top to bottom: check the inputs
(:mod:`~saddles.landscape.problem`), evaluate the centre once while measuring what a point
costs (:mod:`~saddles.landscape.memory`), make the plan (:mod:`~saddles.landscape.plan`),
open or resume the run directory (:mod:`~saddles.landscape.rundir`), run the chunks with the
engines (:mod:`~saddles.landscape.engines`), and restore the model exactly as it was.

Guarantee: the values are a function of the inputs (model, data, directions, coordinates,
dtype, device type, and the engine settings given) and never of timing or load: ``"auto"``
decides by counting, not by timing. Explicit engines and chunk sizes reproduce across
machines; ``"auto"`` also depends on the machine's total memory, which bounds the chunk.

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

The centre is evaluated once per run: the sequential engine takes its values for a point at
the origin (:func:`~saddles.landscape.plan.sequential_values`), bit for bit what evaluating it
again would give. That pass also decides whether the points need autograd
(:func:`center_values`; ``info["grad_mode"]`` says which mode was used): it runs under
``torch.no_grad`` first, and a loss that fails there (a PINN's ``torch.autograd.grad``) is
run again, and every point with it, with autograd enabled. Values are the same bits either
way; without autograd a forward records nothing for a backward pass.

Memory: beyond the model and the directions it is given, a sequential run holds one copy of
the parameters, the centre, which also restores the model afterwards, and a buffer of ``k``
times the largest moving parameter (:mod:`~saddles.landscape.problem`,
:mod:`~saddles.landscape.engines`); ``benchmarks/lm_scale.py`` measures it.

Owns :func:`evaluate` and the centre pass around it. Imports the stages of this package and
:mod:`saddles.executors`; must not import the CLI, the pipeline or the topology package.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from saddles.directions import Directions
from saddles.executors import Executor, make_executor
from saddles.files import parse_bytes
from saddles.io.data import LossFn
from saddles.landscape.engines import run_sequential
from saddles.landscape.memory import PointCost, chunk_cap, cost_meter
from saddles.landscape.plan import (
    Loop,
    Plan,
    compute_chunk,
    console,
    describe,
    make_plan,
    run_rounds,
    say,
    worker_problem,
)
from saddles.landscape.problem import Problem, center_pass, setup
from saddles.landscape.result import Landscape
from saddles.landscape.rundir import RunDir
from saddles.landscape.tokens import DEFAULT_TARGET, pilot_rows, set_target
from saddles.names import ENGINES
from saddles.sampling import Coordinates, as_coordinates

log = logging.getLogger("saddles")


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
    executor: str | Executor | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    max_retries: int = 3,
    params: Mapping[str, Any] | None = None,
    autocast: str | None = None,
    eval_tokens: int | str | None = None,
    stderr_target: float = DEFAULT_TARGET,
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
            number of directions; an :func:`~saddles.sampling.adaptive_grid` is evaluated in
            rounds (:func:`~saddles.landscape.plan.run_rounds`), only where it refines.
        criterion: a plain function ``criterion(outputs, targets)``, instead of ``loss``.
        metrics: extra per-point values, ``{name: fn(model, batch) -> scalar}`` (accuracy...),
            averaged over batches like the loss.
        engine: ``"auto"`` (a counting rule, :mod:`saddles.landscape.plan`), ``"sequential"``
            or ``"batched"`` (:mod:`saddles.landscape.engines`).
        chunk_size: points per batched call and per saved chunk.
        max_memory: memory budget of a batched chunk, bytes or a string such as ``"2GB"``
            (default: a quarter of the machine's RAM, 40% of a GPU's memory).
        device, dtype: where and in what precision to evaluate (default: the model's).
        train_mode: evaluate in train mode (BatchNorm batch statistics, random dropout).
        run_dir: directory for resumable results (:mod:`saddles.landscape.rundir`).
        resume: continue the run found in ``run_dir`` (a finished one is loaded and returned).
        progress: show a progress bar with points per second and ETA; ``False`` is quiet.
        executor: where the chunks run (:mod:`saddles.executors`): ``None`` or ``"local"``
            in this process; ``"ray"`` on Ray actors, each holding a copy of the checked
            problem (joins ``RAY_ADDRESS`` or an initialised Ray, else starts a loopback
            cluster of ``workers`` CPUs for this call); or an
            :class:`~saddles.executors.Executor`. The plan is made here, on the driver, and
            each chunk is written to ``run_dir`` as it arrives, so the values are those of
            the local loop with the same plan (and torch thread count), and a run started
            on one executor resumes on another.
        workers: Ray actors (default: one per CPU of the cluster).
        gpus_per_worker: GPUs (or a fraction) each Ray actor reserves.
        max_retries: how often a chunk may lose its Ray worker before the run fails.
        params: a parameter selection (:mod:`saddles.io.params`): the directions' entries outside
            it are set to zero, so only the selected parameters move (and only they are
            written or swapped per point); its counts go into ``info["params"]``.
        autocast: ``"bf16"`` or ``"fp16"`` runs every forward under ``torch.autocast`` of the
            device (bf16 works on CPUs too): faster and smaller at LM scale, but it rounds
            the matrix products to 8 (bf16) or 11 (fp16) significant bits, which adds noise
            to every value. Recorded in ``info["autocast"]``; the noise floor
            (:mod:`saddles.landscape.noise`) compares with float64 without autocast, so it
            measures that noise too. Float64 tensors are never autocast.
        eval_tokens: a token budget per point: only the data's first ``eval_tokens`` tokens
            are evaluated, in whole sequences (:func:`saddles.data.cap_tokens`); recorded in
            ``info["data"]``. ``"auto"``: each point on a doubling prefix of the data until
            the standard error of its loss is at most ``stderr_target`` x the value range
            (:mod:`saddles.landscape.tokens`); the tokens each point used are
            ``Landscape.tokens``.
        stderr_target: the target of ``eval_tokens="auto"``, a fraction of the value range.

    Beside the values, ``Landscape.loss_stderr`` holds each loss value's standard error over
    the evaluation examples, from the same forwards, for losses that report it
    (:func:`saddles.io.data.with_variance`: ``causal_lm``, ``cross_entropy``, ``mse``, the
    experiments' losses); ``None`` for the others.
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
    # Made here, so that a missing Ray fails at once; it starts workers only when opened.
    ex, own_executor = make_executor(
        executor, workers=workers, gpus_per_worker=gpus_per_worker, max_retries=max_retries
    )
    coords = as_coordinates(coords)
    problem = setup(model, loss, criterion, metrics, data, directions, coords, device, dtype,
                    params=params, autocast=autocast, eval_tokens=eval_tokens,
                    stderr_target=stderr_target)  # fmt: skip
    out = console() if progress else None

    state = ModelState.capture(problem.model, problem.center)
    try:
        problem.model.train(train_mode)
        for p in problem.params:
            p.requires_grad_(False)
        run = RunDir.open(run_dir, problem, coords, train_mode, resume) if run_dir else None
        finished = run is not None and run.finished()
        plan = run.plan if run is not None else None
        # The plan needs the point's cost unless the caller fixed engine and chunk size.
        fixed = engine == "sequential" or (engine == "batched" and chunk_size is not None)
        center, cost = center_values(problem, not finished and plan is None and not fixed)
        # A grid's origin is not evaluated again; with "auto" it is evaluated like any point
        # (the centre pass used all the data).
        problem.center_values = center if problem.auto is None else None
        if run is not None:
            run.check_center(center[: problem.n_values])
        if finished:
            say(out, f"the run in {run.path} is already complete; loaded it")
            return run.load_landscape()
        if problem.auto is not None:
            auto_pilot(problem, coords.points)
        results: dict[tuple[int, int], np.ndarray] = run.load_chunks() if run else {}
        if plan is not None:
            done = sum(b - a for a, b in results)
            say(out, f"resuming the run in {run.path}: {done} of {coords.n_points} points done; "
                f"engine {plan.engine}, chunks of {plan.chunk_size} (the run's plan)")  # fmt: skip
        else:
            cap = chunk_cap(cost.bytes, budget, problem.device) if cost else 256
            plan = make_plan(engine, chunk_size, cost, cap, coords.n_points, problem.device)
            if plan.requested == "auto":
                say(out, describe(plan))
                log.info(describe(plan))
            if run is not None:
                run.save_plan(plan)
        try:
            with ex.open(worker_problem, problem, compute_chunk) as pool:
                loop = Loop(problem, coords.points, results, run, out, pool)
                try:
                    adaptive = coords.info.get("kind") == "adaptive"
                    rounds = run_rounds(loop, plan, coords) if adaptive else loop.run_plan(plan)
                finally:
                    loop.close()
                executor_info = pool.info
        finally:
            if own_executor:
                ex.close()  # e.g. the local Ray cluster started for this call
    finally:
        state.restore(problem.model)

    values = np.full((coords.n_points, len(problem.columns)), np.nan)
    for (start, stop), block in results.items():
        values[start:stop, : block.shape[1]] = block  # a chunk from before the stderr: NaN
    measured = np.ones(len(values), dtype=bool)
    if rounds is not None:  # an adaptive grid: from evaluation order to the grid's
        values, measured = rounds.on_grid(values)
    n_bad = int((~np.isfinite(values[:, 0]) & measured).sum())
    info = provenance(problem, coords, train_mode, plan, loop, center, n_bad, cost)
    info["executor"] = executor_info
    info["elapsed_s"] = time.perf_counter() - started
    names = problem.value_names
    landscape = Landscape(
        coords=coords.points.copy(),
        loss=values[:, 0].copy(),
        metrics={n: values[:, i + 1].copy() for i, n in enumerate(names[1:])},
        shape=coords.shape,
        info=info,
        loss_stderr=stderr if np.isfinite(stderr := values[:, problem.n_values]).any() else None,
        tokens=values[:, problem.n_values + 1].copy() if problem.auto is not None else None,
    )
    if rounds is not None:
        rounds.annotate(landscape)
    if n_bad:
        say(out, f"{n_bad} of {coords.n_points} points gave a non-finite loss (kept, counted)")
    if run is not None:
        run.save_landscape(landscape)
    return landscape


def auto_pilot(problem: Problem, points: np.ndarray) -> None:
    """Set the absolute target of ``eval_tokens="auto"``: the first stage's values at the
    centre and :func:`~saddles.landscape.tokens.pilot_rows` of the points, their range times
    the relative target (:func:`~saddles.landscape.tokens.set_target`). Sequential, so the
    target is the same whichever engine evaluates the points."""
    auto = problem.auto
    pilot = np.vstack([np.zeros((1, points.shape[1])), points[pilot_rows(len(points))]])
    auto.target = math.inf  # every pilot point stops at the first stage
    block = run_sequential(problem, torch.tensor(pilot, dtype=torch.float64))
    set_target(auto, block[:, 0], block[:, problem.n_values])


def center_values(problem: Problem, measure: bool) -> tuple[np.ndarray, PointCost | None]:
    """Loss and metrics of the unperturbed model and, with ``measure``, what a point costs;
    sets ``problem.grad_mode`` to the mode the points will be evaluated in.

    The pass runs without autograd first (``"no_grad"``). If that raises, the loss needs
    autograd (it differentiates its inputs): the random-number state is put back as it was
    and the pass runs again with autograd enabled (``"enable_grad"``), as every pass did
    before the mode existed. In train mode it runs with autograd from the start, so that no
    failed attempt can have drawn dropout masks or moved BatchNorm's running statistics.
    Forward values do not depend on the mode, so a mode is a question of memory only.
    """
    modes = ["enable_grad"] if problem.model.training else ["no_grad", "enable_grad"]
    rng = RandomState.capture(problem.device)
    for mode in modes:
        try:
            values, cost = measured_pass(problem, measure, mode)
        except Exception as exc:
            if mode == modes[-1]:
                raise
            log.info("the loss fails without autograd (%s); evaluating with it", exc)
            rng.restore()
            continue
        problem.grad_mode = mode
        return values, cost
    raise AssertionError("unreachable: the last mode returns or raises")


def measured_pass(
    problem: Problem, measure: bool, mode: str
) -> tuple[np.ndarray, PointCost | None]:
    """The centre pass in ``mode`` and, with ``measure``, what a point costs.

    It fails early, with a clear message, on a broken loss; measuring costs no extra forward.
    If the metered pass fails, it is repeated unmetered: a broken loss raises its own error
    there, and a meter that failed only loses its counts.
    """
    if not measure:
        return center_pass(problem, mode), None
    try:
        meter = cost_meter(problem)
        with meter:
            values = center_pass(problem, mode)
        return values, meter.cost
    except Exception as exc:
        log.info("could not measure what a point costs (%s)", exc)
        return center_pass(problem, mode), None


@dataclass
class RandomState:
    """Torch's random-number state on the CPU and, for a CUDA device, on that device."""

    device: torch.device
    cpu: torch.Tensor
    cuda: torch.Tensor | None

    @classmethod
    def capture(cls, device: torch.device) -> RandomState:
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(device, torch.get_rng_state(), cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def _all_params(problem: Problem) -> dict[str, Any]:
    """The ``info["params"]`` of a landscape without a parameter selection."""
    n = len(problem.center)
    return {"spec": {}, "n_tensors": n, "n_scalars": problem.n_params, "n_tensors_total": n,
            "n_scalars_total": problem.n_params}  # fmt: skip


@dataclass
class ModelState:
    """What a run must leave exactly as it found it: parameters, buffers, flags, modes.

    The parameters are kept as the problem's centre (``Problem.center``, flat copies taken by
    :func:`~saddles.landscape.problem.setup` and never written), so restoring them costs no
    second copy of the model.
    """

    params: list[torch.Tensor]
    buffers: list[torch.Tensor]
    requires_grad: list[bool]
    training: list[bool]

    @classmethod
    def capture(cls, model: torch.nn.Module, center: list[torch.Tensor]) -> ModelState:
        ps = list(model.parameters())
        if len(ps) != len(center):
            raise ValueError(f"the centre has {len(center)} tensors, the model {len(ps)}")
        return cls(
            params=[w0.view(p.shape) for p, w0 in zip(ps, center, strict=True)],
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


def provenance(
    problem: Problem,
    coords: Coordinates,
    train_mode: bool,
    plan: Plan,
    loop: Loop,
    center: np.ndarray,
    n_bad: int,
    cost: PointCost | None,
) -> dict[str, Any]:
    """The landscape's ``info``: what was evaluated, how, and the centre's values."""
    import saddles

    return {
        "saddles_version": saddles.__version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"class": type(problem.model).__qualname__, "n_params": problem.n_params},
        "directions": problem.directions_info,
        "coordinates": dict(coords.info),
        "data": {
            "n_batches": len(problem.batches),
            "n_samples": int(problem.n_samples),
            **(
                {"eval_tokens": problem.eval_tokens, "n_tokens": int(problem.n_tokens)}
                if problem.eval_tokens is not None
                else {}
            ),
            **(auto_info(problem.auto) if problem.auto is not None else {}),
        },
        "params": problem.directions_info.get("params", _all_params(problem)),
        "autocast": problem.autocast,
        "grad_mode": problem.grad_mode,
        "loss": problem.ids,
        "value_names": problem.value_names,
        "engine": plan.engine,
        "engine_requested": plan.requested,
        "chunk_size": int(plan.chunk_size),
        "decision": plan.reason,
        "fallback": plan.fallback,
        "chunk_engines": sorted(loop.chunk_engines),
        "memory_per_point_bytes": cost.bytes if cost else None,
        "operators_per_point": cost.n_ops if cost else None,
        "flops_per_point": cost.flops if cost else None,
        "device": str(problem.device),
        "dtype": str(problem.dtype).replace("torch.", ""),
        "train_mode": bool(train_mode),
        "center_loss": float(center[0]),
        "center_metrics": {
            n: float(v)
            for n, v in zip(problem.value_names[1:], center[1 : problem.n_values], strict=True)
        },
        "center_loss_stderr": float(center[problem.n_values]),
        "n_nonfinite": n_bad,
    }


def auto_info(auto) -> dict[str, Any]:
    """``eval_tokens="auto"``'s record: its targets, the pilot and the prefixes' tokens."""
    return {
        "stderr_target_relative": auto.relative,
        "stderr_target": auto.target,
        "pilot": auto.pilot,
        "prefix_tokens": list(auto.tokens),
    }
