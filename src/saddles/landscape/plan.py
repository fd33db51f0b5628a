"""How a landscape is computed: the :class:`Plan` (engine, chunk size), the rule that makes it,
and the loop that runs it chunk by chunk with progress, fallback and saving.

The rule for ``engine="auto"`` is a cost model over counts measured on the centre point
(:class:`~saddles.landscape.memory.PointCost`), never a timing: the batched engine is chosen
when the FLOPs per dispatched operator are below :data:`BATCHING_PAYS_BELOW` for the device
(the evaluation is overhead-bound, so running many points per operator pays), and the model
can be vmapped with a batching rule for every operator (checked on the first chunk, which is
recomputed sequentially if not). A plan is therefore a function of the model, the data's
shapes, the loss's code, the device type and the machine's total memory, so two runs with the
same inputs compute the same values; the plan and the counts that made it are recorded in the
landscape's ``info`` and in a run directory. Measured on one CPU thread
(``benchmarks/sampling.py``): FLOPs per operator are about 6e4 for the convection PINN and
1e5 for a small MLP (batching 1.5-7x faster), 4e6 for a small CNN, 1e7 for a character
transformer and 2e8 for ResNet-20 (batching 1.3-3x slower).

The chunk size of the batched engine keeps a chunk's working set near the CPU's caches
(:data:`CACHE_BYTES`; on CUDA up to 256 points), within the memory budget; the sequential
engine saves about every 1% of the points.

Adaptive grids (:func:`saddles.sampling.adaptive_grid`) run as rounds
(:func:`run_rounds`): each round of the refinement (:mod:`saddles.landscape.adaptive`) is a
batch of chunks through the same loop, numbered in evaluation order, so a resumed run replays
the rounds from its chunk files, proposes the same points, and is bit-identical.

Owns :class:`Plan`, :func:`make_plan`, the unit of work (:class:`ChunkTask`,
:func:`compute_chunk`), :class:`Loop` and :func:`run_rounds`. Imports the engines, the memory
counts and the problem (and, for rounds, the numpy-only refinement); must not import
:mod:`~saddles.landscape.evaluate`, the executors or the CLI.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from saddles.landscape.engines import has_batching_rules, run_batched, run_sequential
from saddles.landscape.memory import PointCost
from saddles.landscape.problem import Problem

log = logging.getLogger("saddles")

#: auto: batch when an evaluation's FLOPs per dispatched operator are below this, per device.
BATCHING_PAYS_BELOW = {"cpu": 1e6, "cuda": 1e9}
#: auto on CPU: largest power-of-two chunk whose working set stays within this many bytes.
CACHE_BYTES = 16 * 2**20
LARGEST_AUTO_CHUNK = {"cpu": 128, "cuda": 256}


class EngineFallbackWarning(UserWarning):
    """The batched engine could not run this model; the sequential engine is used instead."""


@dataclass
class Plan:
    """Which engine computes the points, in chunks of how many, and why."""

    engine: str  # "sequential" or "batched"
    chunk_size: int  # points per batched call and per saved chunk
    requested: str = "auto"  # what the caller asked for
    reason: str = ""  # the rule's inputs and verdict, for provenance
    fallback: str | None = None  # why batching was abandoned, if it was
    start: int = 0  # first point of the chunk grid (run directories keep it)

    def chunks(self, n: int) -> list[tuple[int, int]]:
        """``[start, stop)`` of every chunk of ``n`` points."""
        size = int(self.chunk_size)
        return [(a, min(a + size, n)) for a in range(int(self.start), n, size)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        requested = d.get("requested", "auto" if d.get("auto") else d["engine"])
        return cls(
            engine=d["engine"],
            chunk_size=int(d["chunk_size"]),
            requested=requested,
            reason=d.get("reason", ""),
            fallback=d.get("fallback"),
            start=int(d.get("start", 0)),
        )


def make_plan(
    engine: str,
    chunk_size: int | None,
    cost: PointCost | None,
    cap: int,
    n: int,
    device: torch.device,
) -> Plan:
    """The plan for ``n`` points: the requested engine, or for ``"auto"`` the cost rule's."""
    if engine == "sequential":
        return Plan("sequential", int(chunk_size or default_write_chunk(n)), "sequential")
    if engine == "batched":
        size = chunk_size or min(cap, 256)
        return Plan("batched", int(max(1, min(size, n))), "batched")
    kind = "cuda" if device.type == "cuda" else "cpu"
    if cost is None:
        return Plan("sequential", int(chunk_size or default_write_chunk(n)), "auto",
                    "no operator counts could be measured; sequential")  # fmt: skip
    limit = BATCHING_PAYS_BELOW[kind]
    counts = f"{cost.n_ops} operators and {cost.flops:.3g} FLOPs per point"
    if cost.flops_per_op >= limit:
        reason = f"{counts}: {cost.flops_per_op:.3g} FLOPs per operator >= {limit:.0e}, "
        reason += "compute-bound, so batching cannot pay"
        return Plan("sequential", int(chunk_size or default_write_chunk(n)), "auto", reason)
    size = chunk_size or auto_chunk(cost.bytes, cap, kind)
    reason = f"{counts}: {cost.flops_per_op:.3g} FLOPs per operator < {limit:.0e}, "
    reason += "overhead-bound, so batching pays"
    return Plan("batched", int(max(1, min(size, n))), "auto", reason)


def auto_chunk(per_point: int, cap: int, kind: str) -> int:
    """Chunk size for auto: on CPU the largest power of two whose working set fits
    :data:`CACHE_BYTES`, at least 2; at most :data:`LARGEST_AUTO_CHUNK` and ``cap``."""
    largest = min(cap, LARGEST_AUTO_CHUNK[kind])
    if kind == "cuda":
        return int(max(1, largest))
    size = 2
    while size * 2 <= largest and size * 2 * per_point <= CACHE_BYTES:
        size *= 2
    return int(max(1, min(size, largest)))


def default_write_chunk(n: int) -> int:
    """Sequential runs save about every 1% of the points (1 to 256 points per chunk)."""
    return int(min(256, max(1, -(-n // 100))))


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work: points ``[start, stop)`` and the engine to evaluate them with.

    ``probe`` marks the first batched chunk of a run: it checks that the model can be
    vmapped (and, for ``"auto"``, that every operator has a batching rule), and falls back
    to the sequential engine if not. The task carries its own points, so a worker needs
    only the :class:`~saddles.landscape.problem.Problem`.
    """

    start: int
    stop: int
    points: np.ndarray  # (stop - start, k) float64
    engine: str
    requested: str
    probe: bool = False

    def __str__(self) -> str:
        return f"chunk {self.start}-{self.stop}"


@dataclass(frozen=True)
class ChunkDone:
    """A computed chunk: its values, the engine that made them, and any fallback."""

    block: np.ndarray  # (stop - start, len(problem.columns)) float64
    engine: str
    fallback: str | None = None  # why batching was abandoned on this chunk, if it was
    warn: bool = False  # announce the fallback as an EngineFallbackWarning


def worker_problem(problem: Problem) -> Problem:
    """A worker's state: the problem as received, its parameter list bound to its own model.

    In this process that is the problem itself; on a Ray worker it is the copy that came
    through the object store, where ``params`` must be the tensors the copied model uses.
    """
    problem.params = [p for _, p in problem.model.named_parameters()]
    return problem


def sequential_values(problem: Problem, c: torch.Tensor) -> np.ndarray:
    """The sequential engine's values at points ``c``, the centre's taken as already computed.

    A point exactly at the origin is the unperturbed model, whose values the driver computed
    once (``problem.center_values``, from :func:`~saddles.landscape.problem.center_pass`): the
    same forward of the same weights, so the same bits, and one evaluation of the centre per
    run instead of two. Not in train mode, where a forward may draw random numbers (dropout)
    and each evaluation is a sample of its own.
    """
    known = problem.center_values
    if known is None or problem.model.training:
        return run_sequential(problem, c)
    at_centre = (c == 0).all(dim=1).cpu().numpy()
    if not at_centre.any():
        return run_sequential(problem, c)
    block = np.empty((c.shape[0], len(problem.columns)), dtype=np.float64)
    block[at_centre] = known
    if not at_centre.all():
        block[~at_centre] = run_sequential(problem, c[torch.as_tensor(~at_centre, device=c.device)])
    return block


def compute_chunk(problem: Problem, task: ChunkTask) -> ChunkDone:
    """Evaluate one chunk with its engine (runs on a worker; records nothing).

    A probe that fails in the batched engine means the model cannot be vmapped: the chunk is
    computed sequentially and the reason returned, so the driver switches the plan (and
    warns). The same happens, without a warning, when an ``"auto"`` plan's first chunk meets
    an operator without a batching rule (vmap would loop over it). A failure of a batched
    chunk that is not a probe is a real error (e.g. out of memory) and propagates.
    """
    c = torch.tensor(task.points, dtype=torch.float64).to(problem.device)  # a writable copy
    if task.engine == "batched" and not task.probe:
        return ChunkDone(run_batched(problem, c), "batched")
    if task.engine == "batched":
        try:
            if task.requested == "auto":
                block, fast = has_batching_rules(problem, c)
                if not fast:
                    reason = "an operator has no vmap batching rule"
                    return ChunkDone(sequential_values(problem, c), "sequential", reason)
            else:
                block = run_batched(problem, c)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            return ChunkDone(sequential_values(problem, c), "sequential", reason, warn=True)
        return ChunkDone(block, "batched")
    return ChunkDone(sequential_values(problem, c), "sequential")


class Loop:
    """Hands chunks to a pool of workers, records results (and writes them), shows progress.

    The plan is the driver's: the first batched chunk of a run goes alone, as a probe, and
    settles the engine; every later chunk is then independent, so a pool may compute them in
    any order and on any worker, and each is recorded (and saved) as it arrives.
    """

    def __init__(self, problem: Problem, points: np.ndarray, results: dict, run, console, pool):
        self.problem = problem
        self.points = np.asarray(points, dtype=np.float64)
        self.n = int(points.shape[0])
        self.results = results
        self.run = run
        self.console = console
        self.pool = pool
        self.batched_ok = False
        self.chunk_engines: list[tuple[int, int, str]] = []
        done = sum(b - a for a, b in results)
        self.bar = progress_bar(console, self.n, done) if console else None

    def first_missing(self) -> int:
        covered = np.zeros(self.n, dtype=bool)
        for a, b in self.results:
            covered[a:b] = True
        return int(np.argmin(covered)) if not covered.all() else self.n

    def run_plan(self, plan: Plan) -> None:
        """Evaluate every planned chunk not yet done, then any point no chunk covers."""
        todo = [(a, b) for a, b in plan.chunks(self.n) if (a, b) not in self.results]
        if todo and plan.engine == "batched" and not self.batched_ok:
            self.submit(todo[:1], plan, probe=True)  # settles the engine for the rest
            todo = todo[1:]
        self.submit(todo, plan)
        while (start := self.first_missing()) < self.n:  # e.g. a chunk file removed
            stop = start + 1
            while stop < self.n and stop - start < int(plan.chunk_size):
                if any(a <= stop < b for a, b in self.results):
                    break
                stop += 1
            probe = plan.engine == "batched" and not self.batched_ok
            self.submit([(start, stop)], plan, probe=probe)

    def submit(self, spans: list[tuple[int, int]], plan: Plan, probe: bool = False) -> None:
        """Run the chunks ``spans`` on the pool with the plan's engine, recording each."""
        tasks = [
            ChunkTask(a, b, self.points[a:b].copy(), plan.engine, plan.requested, probe)
            for a, b in spans
        ]
        self.pool.run(tasks, lambda task, done: self.record(task, done, plan))

    def record(self, task: ChunkTask, done: ChunkDone, plan: Plan) -> None:
        """Keep a finished chunk: switch the plan if it fell back, save it, advance the bar."""
        if done.fallback is not None:
            self.switch(plan, done.fallback, warn=done.warn)
        self.batched_ok = self.batched_ok or done.engine == "batched"
        start, stop = task.start, task.stop
        self.results[(start, stop)] = done.block
        self.chunk_engines.append((start, stop, done.engine))
        if self.run is not None:
            self.run.save_chunk(start, stop, done.block, done.engine)
        if self.bar is not None:
            self.bar[0].advance(self.bar[1], stop - start)

    def switch(self, plan: Plan, reason: str, warn: bool) -> None:
        """From here on the plan is sequential; say why (and save the plan)."""
        plan.engine, plan.fallback = "sequential", reason
        msg = (
            "the batched (vmap) engine cannot evaluate this model; falling back to the "
            f"sequential engine. Reason: {reason}"
        )
        if warn:
            warnings.warn(msg, EngineFallbackWarning, stacklevel=8)
        say(self.console, f"[yellow]{msg}[/yellow]" if warn else f"engine 'auto': {msg}")
        log.info(msg)
        if self.run is not None:
            self.run.save_plan(plan)

    def close(self) -> None:
        if self.bar is not None:
            self.bar[0].stop()


@dataclass
class Rounds:
    """An adaptive run's evaluations: ``order[p]`` is the grid index of the ``p``-th point
    evaluated (the chunk files' numbering), and the refiner that chose them."""

    order: np.ndarray
    refiner: Any

    def on_grid(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(values, measured)`` on the grid from values in evaluation order (NaN elsewhere)."""
        grid = np.full_like(values, np.nan)
        grid[self.order] = values[: len(self.order)]
        measured = np.zeros(len(values), dtype=bool)
        measured[self.order] = True
        return grid, measured

    def annotate(self, landscape) -> None:
        """Mark the landscape adaptive: measured points, leaf cells, and the refinement's
        report (evaluations, estimated error, bottleneck bound) in ``info["adaptive"]``."""
        result = self.refiner.result()
        landscape.measured = result.measured
        landscape.cells = result.cells
        landscape.info["adaptive"] = result.info


def run_rounds(loop: Loop, plan: Plan, coords) -> Rounds:
    """Evaluate an adaptive grid round by round through ``loop`` (see the module docstring).

    The ``p``-th point evaluated is the ``p``-th row of ``loop.points``; each round's chunks
    start at the round's first row, on the plan's chunk size, so the chunk grid is a function
    of the rounds, which are a function of the values.
    """
    from saddles.landscape.adaptive import Refiner

    refiner = Refiner.from_coordinates(coords)
    grid_points = np.asarray(coords.points, dtype=np.float64)
    loop.points = np.empty_like(grid_points)
    order = np.zeros(0, dtype=np.int64)
    while (new := refiner.propose()).size:
        start = len(order)
        order = np.concatenate([order, new])
        loop.points[start : len(order)] = grid_points[new]
        loop.n = len(order)
        if loop.bar is not None:  # the total grows with the rounds
            loop.bar[0].update(loop.bar[1], total=len(order))
        round_plan = Plan.from_dict({**plan.to_dict(), "start": start})
        loop.run_plan(round_plan)
        plan.engine, plan.fallback = round_plan.engine, round_plan.fallback
        loss = np.empty(len(new))  # the refinement reads the loss column only
        for (a, b), values in loop.results.items():
            if start <= a < len(order):  # this round's chunks (a resumed run has later ones)
                loss[a - start : b - start] = values[:, 0]
        refiner.record(new, loss)
    return Rounds(order, refiner)


def describe(plan: Plan) -> str:
    """One line for the console: what auto chose and why."""
    chunk = f" (chunk {plan.chunk_size})" if plan.engine == "batched" else ""
    return f"engine 'auto' chose {plan.engine}{chunk}: {plan.reason}"


def say(console, message: str) -> None:
    if console is not None:
        console.print(message)


def console():
    from rich.console import Console

    return Console(stderr=True)


def progress_bar(console, total: int, completed: int):
    """A rich progress bar with points per second and ETA: ``(progress, task)``."""
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
