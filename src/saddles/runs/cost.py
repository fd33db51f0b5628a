"""What a run will cost before it starts: time and peak memory, predicted from measurements.

:func:`probe` measures, on the run's own model and data, a forward pass (no autograd), a
gradient and a Hessian-vector product: the peak memory each adds above what the process held
before (first call) and its seconds (second call). :func:`landscape_cost` and
:func:`hessian_cost` turn those into predicted seconds and peak memory by counting what a
run does (points, noise re-evaluations, HVPs of the eigen-solve, the trace and the density;
the Krylov storage of
:func:`saddles.hessian.krylov.krylov_plan`), and :func:`analysis_cost` adds them up for an
:class:`~saddles.runs.config.AnalysisConfig` (every direction kind, seed and subspace), per
checkpoint. ``--dry-run`` on ``saddles landscape``, ``hessian`` and ``run`` prints the table
(:func:`cost_table`) and stops; ``saddles run`` records the prediction beside what was
measured in ``cost.json``.

The rules (each a line below, so they can be checked against a benchmark): a landscape point
costs one forward over every batch (the sequential engine; the batched engine is chosen only
where it is faster); the noise floor re-evaluates ``noise_points`` points about three times
(float32, float64 and the batch spread); the top-k eigen-solve takes about ``8 + 9 k`` HVPs
(measured on MLPs, CNNs and a 10.5M-parameter LM: 11 for k = 1, 41-56 for k = 5), a third more
when the memory budget restarts it; the trace ``trace_matvecs`` and the density
``density_lanczos x density_runs``. Memory is the largest of the stages' peaks: a forward's
activations plus the centre and the directions (one parameter copy each), or an HVP's working
set plus the Krylov storage. Times are wall-clock on this machine under its current load, so a
prediction is an estimate (the benchmark ``benchmarks/lm_scale.py`` prints it beside the
measured cost), never part of a result.

Imports torch only inside :func:`probe`.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from saddles.names import GRID_SAMPLINGS

#: HVPs of a top-k eigen-solve: ``EIGEN_HVPS[0] + EIGEN_HVPS[1] * k``, capped by max_hvps.
EIGEN_HVPS = (8, 9)
#: Extra share of HVPs when the memory budget makes the eigen-solve restart: top-5 within the
#: default 12-vector window took 68-69 HVPs at 10.5M and 14M parameters and 121 and 146 on the
#: clustered tops of Pythia-70M- and -160M-shaped models at initialization
#: (``benchmarks/lm_scale.py``); 1.75 puts the prediction (98) within 1.5x of each.
RESTART_FACTOR = 1.75
#: Evaluations of one noise point (float32, float64, the batch spread).
NOISE_EVALUATIONS = 3


@dataclass(frozen=True)
class Probe:
    """One forward, one gradient and one HVP measured on the run's model and data.

    Seconds are wall-clock; ``*_bytes`` the peak memory each added above what the process
    held before it (resident set size on a CPU, allocated memory on a GPU).
    """

    n_params: int
    param_bytes: int
    itemsize: int
    n_batches: int
    forward_s: float
    gradient_s: float
    hvp_s: float
    forward_bytes: int
    gradient_bytes: int
    hvp_bytes: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """The predicted cost of one stage: ``count`` evaluations or HVPs, seconds, peak bytes."""

    stage: str
    count: int
    unit: str
    seconds: float
    peak_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(model, loss, data, *, params: Any = "all", dtype=None, device=None) -> Probe:
    """Measure one forward pass (under ``no_grad``), one gradient and one HVP of ``loss`` over
    every batch of ``data`` on ``model``, each twice (memory from the first, time from the
    second). The model's gradients are cleared afterwards."""
    import torch

    from saddles.hessian import HessianOperator
    from saddles.io.data import as_batches

    batches = as_batches(data)
    n_params = sum(p.numel() for p in model.parameters())
    first = next(model.parameters())
    itemsize = torch.empty((), dtype=dtype or first.dtype).element_size()
    cuda = first.is_cuda

    def peak() -> int:
        if cuda:
            return int(torch.cuda.max_memory_allocated(first.device))
        return peak_rss_bytes()

    def timed(fn) -> tuple[float, int]:
        if cuda:
            torch.cuda.synchronize(first.device)
            torch.cuda.reset_peak_memory_stats(first.device)
        before = peak()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(first.device)
        return time.perf_counter() - start, max(peak() - before, 0)

    def forward() -> None:
        with torch.no_grad():
            for b in batches:
                loss(model, b)

    def gradient() -> None:
        for b in batches:
            loss(model, b).backward()

    # Each is run twice: the first call's peak memory (a process's peak only grows, so the
    # second would show none), the second call's time (without one-off initialisation).
    forward_bytes = timed(forward)[1]
    forward_s = timed(forward)[0]
    gradient_bytes = timed(gradient)[1]
    gradient_s = timed(gradient)[0]
    for p in model.parameters():
        p.grad = None
    op = HessianOperator(model, loss, batches, params=params, dtype=dtype, device=device)
    v = torch.ones(op.dim, dtype=op.dtype, device=op.device) / math.sqrt(op.dim)
    hvp_bytes = timed(lambda: op.matvec(v))[1]
    hvp_s = timed(lambda: op.matvec(v))[0]
    return Probe(n_params=int(n_params), param_bytes=int(n_params * itemsize),
                 itemsize=int(itemsize), n_batches=len(batches), forward_s=forward_s,
                 gradient_s=gradient_s, hvp_s=hvp_s, forward_bytes=forward_bytes,
                 gradient_bytes=gradient_bytes, hvp_bytes=hvp_bytes,
                 device=str(first.device))  # fmt: skip


def landscape_cost(
    probe: Probe, n_points: int, n_directions: int, noise_points: int = 0, stage: str = "landscape"
) -> Estimate:
    """A landscape of ``n_points`` points on ``n_directions`` directions, with its noise floor:
    one forward per point, ``NOISE_EVALUATIONS`` per noise point; memory: a forward's peak plus
    the centre and the directions (one parameter copy each)."""
    evaluations = n_points + NOISE_EVALUATIONS * min(noise_points, n_points)
    copies = (n_directions + 1) * probe.param_bytes
    return Estimate(stage, int(evaluations), "forwards", evaluations * probe.forward_s,
                    probe.forward_bytes + copies)  # fmt: skip


def hessian_cost(
    probe: Probe,
    *,
    top_k: int,
    trace_matvecs: int,
    density_lanczos: int,
    density_runs: int = 1,
    memory: int | None = None,
    max_hvps: int | None = None,
) -> Estimate:
    """Top-k eigenpairs, Hutch++ trace and SLQ density: their HVPs (see the module docstring)
    and the peak of an HVP plus the Krylov storage the memory budget allows."""
    from saddles.hessian.krylov import default_memory, krylov_plan
    from saddles.hessian.slq import SLQ_K

    dim = probe.n_params
    k = max(1, min(top_k, dim))
    cap = max_hvps or min(dim, max(300, 20 * k))
    plan = krylov_plan(dim, probe.itemsize, k, cap, memory)
    eigen = min(cap, EIGEN_HVPS[0] + EIGEN_HVPS[1] * k)
    if plan.restarts and eigen > plan.window:
        eigen = min(cap, math.ceil(eigen * RESTART_FACTOR))
    if not plan.products:
        eigen += k  # the true residuals
    density = min(density_lanczos, dim) * density_runs
    hvps = eigen + min(trace_matvecs, 3 * dim) + density
    vector = dim * probe.itemsize
    budget = memory if memory is not None else default_memory(dim, probe.itemsize, SLQ_K)
    slq_basis = min(density_lanczos, dim, budget // vector) * vector
    storage = max(plan.storage_bytes(eigen, k), slq_basis)
    return Estimate("hessian", int(hvps), "HVPs", hvps * probe.hvp_s, probe.hvp_bytes + storage)


#: The spans a ``span: auto`` sweep is assumed to take before its probes have run.
AUTO_SPANS = 6


def analysis_cost(probe: Probe, config: Any, *, checkpoints: int = 1) -> list[Estimate]:
    """Every stage of :func:`saddles.runs.analyze.analyze` under ``config`` (an
    :class:`~saddles.runs.config.AnalysisConfig`), per checkpoint, and the total over
    ``checkpoints``: one row per direction kind (its seeds together), the Hessian, the total."""
    # An adaptive grid evaluates at most its dense grid (and at most its budget).
    points = (config.resolution**config.n_directions if config.sampling in GRID_SAMPLINGS
              else config.n_points)  # fmt: skip
    if config.sampling == "adaptive" and config.adaptive_budget is not None:
        points = min(points, config.adaptive_budget)
    rows = []
    # A span sweep samples every plane once per span; "auto" chooses its spans by probing,
    # so its count is a guess (AUTO_SPANS) until the probes have run.
    spans = getattr(config, "span", 1.0)
    n_spans = len(spans) if isinstance(spans, list) else AUTO_SPANS if spans == "auto" else 1
    at = (f", {n_spans} spans" if isinstance(spans, list) else
          f", auto: about {n_spans} spans" if spans == "auto" else "")  # fmt: skip
    for kind in config.directions:
        planes = (config.direction_seeds if kind == "random" else 1) * n_spans
        one = landscape_cost(probe, points, config.n_directions, config.noise_points)
        rows.append(Estimate(f"landscape ({kind}, {planes} plane{'s' * (planes > 1)}{at})",
                             one.count * planes, one.unit, one.seconds * planes,
                             one.peak_bytes))  # fmt: skip
        parts = getattr(config, "batch_floor", None)
        if parts:  # each part's landscape sees 1/parts of the data: about one more landscape
            rows.append(Estimate(f"batch floor ({kind}, {parts} parts)", points * parts * planes,
                                 "forwards on 1/parts of the data",
                                 points * planes * probe.forward_s, one.peak_bytes))  # fmt: skip
    if config.hessian or "hessian" in config.directions:
        rows.append(hessian_cost(probe, top_k=config.hessian_top_k,
                                 trace_matvecs=config.trace_matvecs,
                                 density_lanczos=config.density_lanczos,
                                 density_runs=config.density_runs,
                                 memory=config.hessian_memory))  # fmt: skip
    return with_total(rows, checkpoints)


def with_total(rows: list[Estimate], checkpoints: int = 1) -> list[Estimate]:
    """``rows`` and a total line: seconds summed (times ``checkpoints``), the largest peak."""
    total = Estimate(
        "total" if checkpoints == 1 else f"total ({checkpoints} checkpoints)",
        sum(r.count for r in rows) * checkpoints, "",
        sum(r.seconds for r in rows) * checkpoints, max((r.peak_bytes for r in rows), default=0),
    )  # fmt: skip
    return [*rows, total]


def cost_table(probe: Probe, rows: list[Estimate]) -> str:
    """The prediction as text: what was measured, then one line per stage."""
    mib = 2**20
    head = (f"measured on {probe.n_params:,} parameters ({probe.param_bytes / mib:.1f} MiB), "
            f"{probe.n_batches} batch(es), {probe.device}: forward {probe.forward_s:.3g} s "
            f"(+{probe.forward_bytes / mib:.0f} MiB), gradient {probe.gradient_s:.3g} s "
            f"(+{probe.gradient_bytes / mib:.0f} MiB), HVP {probe.hvp_s:.3g} s "
            f"(+{probe.hvp_bytes / mib:.0f} MiB)")  # fmt: skip
    lines = [head, f"{'stage':<34}{'count':>10} {'unit':<9}{'predicted s':>12}{'peak MiB':>10}"]
    for r in rows:
        lines.append(f"{r.stage:<34}{r.count:>10} {r.unit:<9}{r.seconds:>12.1f}"
                     f"{r.peak_bytes / mib:>10.0f}")  # fmt: skip
    lines.append("peak MiB: above the process with the model and data loaded; predicted from "
                 "one forward, gradient and HVP (an estimate, not a result)")  # fmt: skip
    return "\n".join(lines)


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale
