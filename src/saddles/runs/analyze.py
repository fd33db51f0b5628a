"""One model through every stage: directions -> landscape -> graphs -> merge trees -> metrics,
beside Hessian curvature, as Xie et al. 2024 do for each of their models.

:class:`AnalysisConfig` says what to compute (a dataclass that also reads YAML);
:func:`analyze` runs it and returns an :class:`Analysis` (numpy arrays, small dicts, and the
merge trees for plotting) that writes itself to a run directory:

    run_dir/config.yaml        the resolved configuration
    run_dir/landscape-<kind>/  the landscape of each direction kind (resumable, see landscape.py)
    run_dir/metrics.json       every number, nested
    run_dir/metrics.csv        one row per direction kind x representation
    run_dir/pairs-<kind>-<representation>.npz   the persistence pairs of each merge tree
    run_dir/figures/*.png      contour, surface, merge tree, persistence diagram, density

With a span sweep (``span`` a list or ``"auto"``, :mod:`saddles.landscape.scales`) every plane
is sampled at each span: ``landscape-<kind>-span<tag>/`` and
``pairs-<kind>-span<tag>-<representation>.npz`` per span, rows keyed by ``sweep_span``, the
plane's critical span and basin radius on rows with an empty ``sweep_span``, and
``metrics.json``'s ``scales`` saying how the spans were chosen (the probes of ``auto``).

Orchestration lives here and in the experiments; every stage is a plain call into its module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from saddles.files import atomic_savez, atomic_write_text, write_csv, write_json
from saddles.runs.config import DIRECTION_KINDS, AnalysisConfig  # noqa: F401 (re-exported)
from saddles.topology.representations import GRID_REPRESENTATIONS as _GRID_CONNECTIVITY


@dataclass
class Analysis:
    """Everything :func:`analyze` computed for one model.

    ``topology[kind][representation]`` holds the metrics dict of that merge tree and
    ``trees[kind][representation]`` the tree itself (for a span sweep, the middle span's;
    ``sweep[kind][span]`` holds every span's ``(landscape, trees)`` of the shown plane and
    ``scales[kind]`` how the spans were chosen and the basin radius); ``hessian`` holds scalars (top
    eigenvalues, residuals, trace and its standard error, density moments), ``density`` the
    :class:`~saddles.hessian.SpectralDensity`; ``quality`` the model's own metrics (loss,
    error, accuracy), given by the caller.
    """

    name: str
    config: AnalysisConfig
    landscapes: dict[str, Any]
    topology: dict[str, dict[str, dict[str, float]]]
    trees: dict[str, dict[str, Any]]
    hessian: dict[str, Any]
    density: Any
    quality: dict[str, float]
    timings: dict[str, float]
    eigenpairs: Any = None
    ensembles: dict[str, list[dict[str, Any]]] | None = None
    sweep: dict[str, dict[float, tuple[Any, dict[str, Any]]]] | None = None
    scales: dict[str, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        kinds = ", ".join(self.topology) or "none"
        reps = ", ".join(self.config.representations)
        top = self.hessian.get("top_eigenvalue")
        curvature = f", top Hessian eigenvalue {top:.4g}" if top is not None else ""
        seeds = self.config.direction_seeds
        return (f"Analysis({self.name!r}: {kinds} directions x {reps}, {seeds} seed(s), "
                f"{len(self.rows())} rows{curvature})")  # fmt: skip

    def _repr_html_(self) -> str:
        """The metrics table and the first 2-D landscape's contour, for notebooks (drawn by
        :func:`saddles.report.notebook.analysis_html`; a display hook, imported when shown)."""
        from saddles.report.notebook import analysis_html

        return analysis_html(self)

    def numbers(self) -> list[dict[str, Any]]:
        """Every number, one row each (:mod:`saddles.runs.rows`' number rows): ``model``,
        ``direction``, ``representation``, ``direction_seed`` (empty for the deterministic
        kinds: hessian, given), with a span sweep ``sweep_span`` (empty on the rows of the scale
        summaries), ``metric`` and ``value``; per plane, the quality numbers, then the plane's
        metrics, then the Hessian's scalars (as ``hessian_*``)."""
        scalars = {f"hessian_{k}": v for k, v in self.hessian.items() if _is_scalar(v)}
        planes = self.ensembles or {
            kind: [{"direction_seed": None, "topology": reps}]
            for kind, reps in self.topology.items()
        }
        out = []
        for kind, entries in planes.items():
            for entry in entries:
                seed = entry["direction_seed"]
                for rep, metrics in entry["topology"].items():
                    where = {"model": self.name, "direction": kind, "representation": rep,
                             "direction_seed": "" if seed is None else seed}  # fmt: skip
                    if "span" in entry:  # a span sweep
                        where["sweep_span"] = entry["span"]
                    values = {**self.quality, **metrics, **scalars}
                    out.extend({**where, "metric": k, "value": v} for k, v in values.items())
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Plane rows (one per direction seed x direction kind x representation, a column per
        metric) for tables and CSV: the view :func:`saddles.runs.rows.to_planes` of
        :meth:`numbers`."""
        from saddles.runs.rows import to_planes

        return to_planes(self.numbers())

    def save(self, run_dir: str | Path) -> Path:
        """Write config.yaml, metrics.json, metrics.csv and density.npz into ``run_dir``
        (figures are :func:`write_figures`'s job)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(self.config.to_dict()))
        record = {
            "name": self.name,
            "quality": self.quality,
            "hessian": self.hessian,
            "topology": self.topology,
            "ensembles": self.ensembles,
            "timings": self.timings,
        }
        if self.scales:
            record["scales"] = self.scales
        write_json(run_dir / "metrics.json", record)
        rows = self.rows()
        write_csv(run_dir / "metrics.csv", rows)
        from saddles.runs.summary import seed_summary

        summary = seed_summary(rows)  # per span in a sweep
        write_csv(run_dir / "summary.csv", summary)
        for kind, trees in self.trees.items():
            coords = self.landscapes[kind].coords if kind in self.landscapes else None
            for rep, tree in trees.items():
                save_pairs(run_dir / f"pairs-{kind}-{rep}.npz", tree, coords)
        from saddles.landscape.scales import span_tag

        for kind, spans in (self.sweep or {}).items():
            for span, (land, trees) in spans.items():
                for rep, tree in trees.items():
                    save_pairs(run_dir / f"pairs-{kind}-span{span_tag(span)}-{rep}.npz", tree,
                               land.coords)  # fmt: skip
        if self.density is not None:
            d = self.density
            arrays = {"grid": d.grid, "density": d.density, "nodes": d.nodes, "weights": d.weights}
            atomic_savez(run_dir / "density.npz", arrays)
        return run_dir


def analyze(
    model,
    loss,
    data,
    config: AnalysisConfig | None = None,
    *,
    name: str = "model",
    quality: dict[str, float] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
    given: Any = None,
    eigenpairs: Any = None,
) -> Analysis:
    """Run every stage on one model (see the module docstring); ``loss(model, batch)``.

    ``given``: directions for the "given" kind (anything ``directions.from_tensors`` takes).
    ``eigenpairs``: a :class:`~saddles.hessian.Eigenpairs` already computed for this model, used
    for "hessian" directions instead of recomputing them.
    """
    import torch

    from saddles.landscape.scales import basin_radius, critical_span

    config = config or AnalysisConfig()
    if "given" in config.directions and given is None:
        raise ValueError("the 'given' direction kind needs directions passed as `given=`")
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    timings: dict[str, float] = {}
    hessian: dict[str, Any] = {}
    density = None
    eig = eigenpairs
    if config.hessian or ("hessian" in config.directions and eig is None):
        t0 = time.perf_counter()
        hessian, density, eig = hessian_metrics(model, loss, data, config, dtype)
        timings["hessian_s"] = time.perf_counter() - t0

    landscapes, topology, trees, ensembles = {}, {}, {}, {}
    sweep: dict[str, dict[float, tuple[Any, dict[str, Any]]]] = {}
    scales: dict[str, dict[str, Any]] = {}
    bottom = None  # the most negative eigenpairs, for hessian_which: top_bottom
    if "hessian" in config.directions and config.hessian_which == "top_bottom":
        bottom = bottom_eigenpairs(model, loss, data, config, dtype)
        hessian.update(bottom_record(bottom))
    if isinstance(config.eval_tokens, int):  # the landscapes and their floors see the same data
        from saddles.io.data import as_batches, cap_tokens

        land_data = cap_tokens(as_batches(data), config.eval_tokens)
    else:
        land_data = data
    for kind in config.directions:
        ensembles[kind] = []
        seeds = seed_list(config) if kind == "random" else [None]
        for seed in seeds:
            d = plane_directions(model, kind, config, seed, given, eig, bottom)
            if not config.sweeps:
                plane = _plane(model, loss, land_data, d, config, kind, seed, None, dtype,
                               progress, run_dir, timings)  # fmt: skip
                ensembles[kind].append({"direction_seed": seed, "topology": plane[2]})
                if seed is None or seed == config.seed:  # the plane shown in figures
                    landscapes[kind], trees[kind], topology[kind] = plane
                continue
            if kind not in scales:  # one sweep per kind: seeds share spans, and so rows
                scales[kind] = sweep_spans(model, loss, land_data, d, config, dtype)
            spans = scales[kind]["spans"]
            per_span = {}
            for span in spans:
                plane = _plane(model, loss, land_data, d, config, kind, seed, span, dtype,
                               progress, run_dir, timings)  # fmt: skip
                per_span[span] = plane
                ensembles[kind].append({"direction_seed": seed, "span": span,
                                        "topology": plane[2]})  # fmt: skip
            radius = basin_radius(model, loss, land_data, d, config, dtype)
            summary = {}
            for rep in config.representations:
                value, reason = critical_span([(s, p[2][rep]) for s, p in per_span.items()])
                summary[rep] = {"critical_span": value, "critical_span_reason": reason,
                                "basin_radius": radius["basin_radius"],
                                "basin_radii": radius["basin_radii"],
                                "basin_radius_reason": radius["basin_radius_reason"]}  # fmt: skip
            ensembles[kind].append({"direction_seed": seed, "span": "", "topology": summary})
            if seed is None or seed == config.seed:  # the planes shown: the middle span
                landscapes[kind], trees[kind], topology[kind] = per_span[spans[len(spans) // 2]]
                sweep[kind] = {s: (p[0], p[1]) for s, p in per_span.items()}
                scales[kind]["basin"] = radius
    analysis = Analysis(name, config, landscapes, topology, trees, hessian, density,
                        dict(quality or {}), timings, eig, ensembles, sweep or None,
                        scales or None)  # fmt: skip
    if run_dir is not None:
        analysis.save(run_dir)
    return analysis


def _plane(
    model,
    loss,
    data,
    d,
    config: AnalysisConfig,
    kind: str,
    seed,
    span,
    dtype,
    progress,
    run_dir,
    timings: dict[str, float],
):
    """One plane at one span (``span`` None: the configuration's single span): its landscape
    (with its noise floors), merge trees and metrics, ``(landscape, trees, metrics)``."""
    from saddles.landscape import evaluate
    from saddles.landscape.noise import batch_floor, batch_landscapes, noise_floor
    from saddles.topology import noise_metrics

    coords = make_coordinates(config, span)
    where = landscape_dir(kind, seed, config, span)
    tag = where.removeprefix("landscape-")
    t0 = time.perf_counter()
    plane_coords, noise = coords, None
    if config.sampling == "adaptive" and config.noise_points:
        # the target error tied to the noise floor, measured on the coarse grid first
        plane_coords, noise = noise_tied(model, loss, data, d, coords, config)
    land = evaluate(
        model, loss, data, d, plane_coords, engine=config.engine,
        chunk_size=config.chunk_size, device=config.device, dtype=dtype,
        progress=progress, run_dir=Path(run_dir) / where if run_dir else None,
        resume=True, executor=config.executor, workers=config.workers,
        params=config.params, autocast=config.autocast, eval_tokens=config.eval_tokens,
        stderr_target=config.stderr_target,
    )  # fmt: skip
    if config.noise_points and noise is None:
        noise = noise_floor(model, loss, data, d, land, n_points=config.noise_points,
                            seed=config.seed, device=config.device)  # fmt: skip
    if noise is not None:
        land.info["noise"] = noise
    parts = []
    if config.batch_floor:  # the same landscape on disjoint parts of the data
        part_dirs = [Path(run_dir) / f"{where}-part{i}" if run_dir else None
                     for i in range(config.batch_floor)]  # fmt: skip
        parts = batch_landscapes(
            model, loss, data, d, coords, config.batch_floor, run_dirs=part_dirs,
            engine=config.engine, chunk_size=config.chunk_size, device=config.device,
            dtype=dtype, progress=progress, executor=config.executor,
            workers=config.workers, params=config.params, autocast=config.autocast,
        )  # fmt: skip
    timings[f"landscape_{tag}_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    plane_trees, plane_metrics = {}, {}
    arithmetic = noise["noise_floor"] if noise is not None else float("nan")
    batch = batch_floor(parts) if parts else float("nan")  # of the values: every representation
    for rep in config.representations:
        tree, metrics = landscape_topology(land, rep, config)
        if noise is not None or parts:
            metrics.update(noise_metrics(tree, arithmetic, batch_floor=batch))
        if noise is not None:
            metrics["batch_stderr"] = noise["batch_stderr"]
        metrics.update(data_noise(land))
        plane_trees[rep], plane_metrics[rep] = tree, metrics
    timings[f"topology_{tag}_s"] = time.perf_counter() - t0
    return land, plane_trees, plane_metrics


def sweep_spans(model, loss, data, d, config: AnalysisConfig, dtype) -> dict[str, Any]:
    """The spans of a sweep: the configured list, or :func:`saddles.landscape.scales.auto_spans`
    of the plane ``d`` (its record: the rule, the probes, the flat and risen spans)."""
    from saddles.landscape.scales import auto_spans

    if isinstance(config.span, list):
        return {"spans": list(config.span), "rule": "given"}
    return auto_spans(model, loss, data, d, config, dtype)


def data_noise(landscape) -> dict[str, float]:
    """The landscape's noise from the evaluation data, per plane: the median standard error of
    its loss values over the examples (when the loss reports it) and, with
    ``eval_tokens="auto"``, the mean tokens a point used."""
    out = {}
    if landscape.loss_stderr is not None and np.isfinite(landscape.loss_stderr).any():
        out["loss_stderr_median"] = float(np.nanmedian(landscape.loss_stderr))
    if landscape.tokens is not None:
        out["tokens_per_point"] = float(np.nanmean(landscape.tokens))
    return out


def seed_list(config: AnalysisConfig) -> list[int]:
    """The random planes' seeds: ``seed, seed + 1, ..., seed + direction_seeds - 1``."""
    return [config.seed + i for i in range(config.direction_seeds)]


def landscape_dir(kind: str, seed: int | None, config: AnalysisConfig,
                  span: float | None = None) -> str:  # fmt: skip
    """Run-directory name of one plane: ``landscape-<kind>`` for the first (or only) plane,
    ``landscape-random-seed<s>`` for the other seeds; in a span sweep, ``-span<tag>``
    appended (:func:`saddles.landscape.scales.span_tag`)."""
    from saddles.landscape.scales import span_tag

    name = f"landscape-{kind}"
    if not (seed is None or seed == config.seed):
        name += f"-seed{seed}"
    return name if span is None else f"{name}-span{span_tag(span)}"


def plane_directions(model, kind: str, config: AnalysisConfig, seed, given, eig, bottom=None):
    """The directions of one plane: random (seeded), given, or Hessian eigenvectors: the top
    ones, or (``hessian_which: top_bottom``) the top ``ceil(n/2)`` then the ``floor(n/2)``
    most negative ones (``bottom``, :func:`bottom_eigenpairs`)."""
    from saddles import directions as dirs

    norm, ignore_1d, spec = config.norm, config.ignore_1d, config.params
    if kind == "random":
        return dirs.random_directions(model, config.n_directions, seed=seed, norm=norm,
                                      ignore_1d=ignore_1d, params=spec)  # fmt: skip
    if kind == "given":
        d = dirs.from_tensors(model, given, norm=norm, ignore_1d=ignore_1d,
                              info={"kind": "given"}, params=spec)  # fmt: skip
        if len(d) != config.n_directions:
            raise ValueError(f"{len(d)} given directions, but n_directions is "
                             f"{config.n_directions}")  # fmt: skip
        return d
    k = config.n_directions
    if config.hessian_which == "top_bottom":
        n_top, n_bottom = (k + 1) // 2, k // 2
        vectors = list(eig.eigenvectors[:n_top]) + list(bottom.eigenvectors[:n_bottom])
        values = eig.eigenvalues[:n_top].tolist() + bottom.eigenvalues[:n_bottom].tolist()
        info = {"kind": "hessian", "which": "top_bottom", "eigenvalues": values,
                **bottom_record(bottom)}  # fmt: skip
        return dirs.from_tensors(model, vectors, norm=norm, ignore_1d=ignore_1d, info=info,
                                 params=spec)  # fmt: skip
    return dirs.from_tensors(model, eig.eigenvectors[:k], norm=norm, ignore_1d=ignore_1d,
                             info={"kind": "hessian",
                                   "eigenvalues": eig.eigenvalues[:k].tolist()},
                             params=spec)  # fmt: skip


def bottom_eigenpairs(model, loss, data, config: AnalysisConfig, dtype):
    """The ``floor(n_directions / 2)`` (at least one) most negative Hessian eigenpairs
    (Lanczos, ``which="SA"``), for the top/bottom plane."""
    from saddles.hessian import HessianOperator, top_eigen

    op = HessianOperator(model, loss, data, dtype=dtype, device=config.device,
                         params=config.params or "all")  # fmt: skip
    k = min(max(config.n_directions // 2, 1), op.dim)
    return top_eigen(op, k, which="SA", seed=config.seed, memory=config.hessian_memory)


def bottom_record(bottom) -> dict[str, Any]:
    """What the record says of the bottom eigenpairs: ``bottom_eigenvalue`` (the most
    negative), ``bottom_eigenvalues``, its residual norm ``||H v - lambda v||`` and whether
    Lanczos converged on it, and ``bottom_note`` when it is not negative (a convex
    point: the smallest-eigenvalue direction is used all the same)."""
    smallest = float(bottom.eigenvalues[0])
    out: dict[str, Any] = {
        "bottom_eigenvalue": smallest,
        "bottom_eigenvalues": [float(v) for v in bottom.eigenvalues],
        "bottom_residual": float(bottom.residual_norms[0]),
        "bottom_converged": bool(bottom.converged[0]),
    }
    if not smallest < 0:
        out["bottom_note"] = (
            f"the smallest Hessian eigenvalue {smallest:.4g} is not "
            "negative (a convex point); its direction is used all the same"
        )
    return out


def make_coordinates(config: AnalysisConfig, span: float | None = None):
    """The sample points of an analysis: a grid, or scattered points with the origin first, on
    ``[-span, span]`` (default: the configuration's single span)."""
    from saddles.sampling import adaptive_grid, grid, scattered

    span = config.span if span is None else span
    box = (-span, span)
    if config.sampling == "grid":
        return grid(config.resolution, box, dims=config.n_directions)
    if config.sampling == "adaptive":
        return adaptive_grid(config.resolution, box, dims=config.n_directions,
                             coarse=config.adaptive_coarse, rel_target=config.adaptive_target,
                             budget=config.adaptive_budget, threshold=config.threshold)  # fmt: skip
    return scattered(config.n_points, config.n_directions, method=config.sampling, ranges=box,
                     seed=config.seed, include_center=True)  # fmt: skip


def hessian_metrics(model, loss, data, config: AnalysisConfig, dtype):
    """Top eigenpairs, trace and density of the loss Hessian: ``(scalars, density, eigenpairs)``,
    the scalars being :func:`hessian_scalars` of :func:`compute_hessian`'s record."""
    record, dens, eig = hessian_record(model, loss, data, config, dtype)
    return hessian_scalars(record), dens, eig


def hessian_record(model, loss, data, config: AnalysisConfig, dtype):
    """:func:`compute_hessian` under ``config``: ``(record, density, eigenpairs)``, the record
    being the one serialisation of Hessian results (``hessian.json``)."""
    from saddles.hessian import HessianOperator

    op = HessianOperator(model, loss, data, dtype=dtype, device=config.device,
                         params=config.params or "all")  # fmt: skip
    record, eig, dens = compute_hessian(
        op, top_k=min(config.hessian_top_k, op.dim),
        trace_matvecs=min(config.trace_matvecs, 3 * op.dim),
        n_lanczos=min(config.density_lanczos, op.dim), n_runs=config.density_runs,
        seed=config.seed, memory=config.hessian_memory,
    )  # fmt: skip
    return record, dens, eig


def compute_hessian(
    op: Any,
    *,
    top_k: int,
    which: str = "LA",
    tol: float | None = None,
    trace_method: str = "hutch++",
    trace_matvecs: int | None = 99,
    n_lanczos: int = 80,
    n_runs: int = 1,
    sigma: float | None = None,
    seed: int = 0,
    memory: int | None = None,
    progress: Any = None,
) -> tuple[dict[str, Any], Any, Any]:
    """Top eigenpairs (Lanczos), trace (Hutch++ by default; Meyer et al. 2021) and eigenvalue
    density (SLQ; Ghorbani et al. 2019) of a :class:`~saddles.hessian.HessianOperator`:
    ``(record, eigenpairs, density)``.

    The record is the one serialisation of these results (``saddles hessian`` writes it as
    ``hessian.json``; :func:`hessian_scalars` reads the table columns off it): ``dim``,
    ``params``, ``parameters``, ``dtype``, ``hvp_method``, and the sections ``eigen``
    (``which``, ``eigenvalues``, ``residual_norms``, ``converged``, ``tol``, ``n_hvps``),
    ``trace`` (``value``, ``stderr``, ``method``, ``n_matvecs``) and ``density``
    (``n_lanczos``, ``n_runs``, ``sigma``, ``mean``, ``second_moment``, ``nodes``,
    ``weights``, ``grid``, ``density``); each section also has its ``seconds``.
    ``memory`` bounds the Lanczos bases of the eigenpairs and the density (bytes; see
    :func:`saddles.hessian.krylov.krylov_plan`), and the record says how they were held.
    ``progress(text)``, when given, is told when each stage starts and ends (seconds, HVPs).
    """
    from saddles.hessian import spectral_density, top_eigen, trace

    stages: dict[str, float] = {}

    def stage(name: str, run):
        if progress is not None:
            progress(f"{name}: started")
        start, hvps = time.perf_counter(), op.n_hvps
        result = run()
        stages[name] = time.perf_counter() - start
        if progress is not None:
            progress(f"{name}: done in {stages[name]:.1f} s, {op.n_hvps - hvps} HVPs")
        return result

    eig = stage(
        "top eigenpairs",
        lambda: top_eigen(op, top_k, which=which, tol=tol, seed=seed, memory=memory),
    )
    if progress is not None:
        progress(f"top eigenpairs: {eig.strategy}, {eig.restarts} restart(s)")
    matvecs = None if trace_method == "exact" else trace_matvecs
    tr = stage("trace", lambda: trace(op, trace_method, matvecs, seed=seed))
    dens = stage(
        "density",
        lambda: spectral_density(op, n_lanczos, n_runs, sigma=sigma, seed=seed, memory=memory),
    )
    record = {
        "dim": int(op.dim),
        "params": op.params_info,
        "parameters": list(op.names),
        "dtype": str(op.dtype).replace("torch.", ""),
        "hvp_method": op.hvp_method,
        "eigen": {
            "which": eig.which,
            "eigenvalues": eig.eigenvalues.tolist(),
            "residual_norms": eig.residual_norms.tolist(),
            "converged": eig.converged.tolist(),
            "tol": eig.tol,
            "n_hvps": int(eig.n_hvps),
            "strategy": eig.strategy,
            "restarts": int(eig.restarts),
            "hvp_noise": eig.hvp_noise,
            "seconds": stages["top eigenpairs"],
        },
        "trace": {
            "value": float(tr.value),
            "stderr": float(tr.stderr),
            "method": tr.method,
            "n_matvecs": int(tr.n_matvecs),
            "seconds": stages["trace"],
        },
        "density": {
            "n_lanczos": int(dens.nodes.shape[1]),
            "n_runs": int(dens.nodes.shape[0]),
            "max_basis": int(dens.max_basis),
            "sigma": dens.sigma,
            "mean": dens.moment(1),
            "second_moment": dens.moment(2),
            "nodes": dens.nodes.tolist(),
            "weights": dens.weights.tolist(),
            "grid": dens.grid.tolist(),
            "density": dens.density.tolist(),
            "seconds": stages["density"],
        },
    }
    return record, eig, dens


def hessian_scalars(record: dict[str, Any]) -> dict[str, Any]:
    """The columns of rows and tables (``metrics.csv``, ``dynamics.csv``, comparisons) read off
    a :func:`compute_hessian` record."""
    eigen, trace, density = record["eigen"], record["trace"], record["density"]
    return {
        "top_eigenvalue": float(eigen["eigenvalues"][0]),
        "top_eigenvalues": [float(v) for v in eigen["eigenvalues"]],
        "eigen_residuals": [float(v) for v in eigen["residual_norms"]],
        "eigen_hvps": eigen["n_hvps"],
        "trace": trace["value"],
        "trace_stderr": trace["stderr"],
        "trace_matvecs": trace["n_matvecs"],
        "density_mean": density["mean"],
        "density_second_moment": density["second_moment"],
        "n_params": record["dim"],
        "n_param_tensors": int(record["params"]["n_tensors"]),
    }


def noise_tied(model, loss, data, directions, coords, config: AnalysisConfig):
    """An adaptive grid whose target error is at least the noise floor, and that floor.

    The floor (:func:`saddles.landscape.noise.noise_floor`) is measured on the coarse grid the
    refinement starts from, evaluated once more for it (``adaptive_coarse``^n points and
    ``noise_points`` re-evaluations): the target is then the larger of ``adaptive_target`` of
    the range and what the error estimate can certify above that floor
    (:func:`saddles.landscape.adaptive.noise_target`), so no cell is refined to resolve
    rounding noise.
    """
    import torch

    from saddles.landscape import evaluate
    from saddles.landscape.adaptive import Refiner
    from saddles.landscape.noise import noise_floor
    from saddles.sampling import Coordinates

    first = Refiner.from_coordinates(coords).propose()  # the coarse grid's points
    coarse = Coordinates(coords.points[first], info={"kind": "points", "n": len(first)})
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    land = evaluate(model, loss, data, directions, coarse, engine=config.engine,
                    chunk_size=config.chunk_size, device=config.device, dtype=dtype,
                    progress=False, params=config.params, autocast=config.autocast,
                    eval_tokens=config.eval_tokens)  # fmt: skip
    noise = noise_floor(model, loss, data, directions, land, n_points=config.noise_points,
                        seed=config.seed, device=config.device)  # fmt: skip
    noise["noise_note"] = "measured on the adaptive grid's coarse points; the target's floor"
    options = {**coords.info["adaptive"], "noise": float(noise["noise_floor"])}
    tied = Coordinates(coords.points, coords.shape, coords.axes,
                       {**coords.info, "adaptive": options})  # fmt: skip
    return tied, noise


def landscape_topology(landscape, representation: str, config: AnalysisConfig):
    """Merge tree and metrics of one landscape under one representation.

    The graph and tree come from :func:`saddles.topology.representations.representation_tree`,
    the same call ``saddles topology`` and ``Landscape.topology`` make.
    """
    from saddles.topology import compute_metrics, loop_metrics, loops_diagram
    from saddles.topology.representations import representation_tree

    values = np.asarray(landscape.filled(), dtype=np.float64)  # adaptive: the filled field
    tree = representation_tree(representation, values, coords=landscape.coords,
                               shape=landscape.shape, k=config.knn_k, nan_policy="max")  # fmt: skip
    metrics = compute_metrics(tree, threshold=config.threshold, relative=True)
    if landscape.is_adaptive:  # what the refinement spent, and the bound it states
        a = landscape.info["adaptive"]
        metrics.update(adaptive_evaluations=a["n_evaluations"],
                       adaptive_fraction=a["fraction_of_dense"],
                       adaptive_bound=a["bottleneck_bound"],
                       adaptive_bound_relative=a["bound_relative"])  # fmt: skip
    shape = landscape.shape
    if config.loops and representation in _GRID_CONNECTIVITY and shape and len(shape) in (2, 3):
        conn = _GRID_CONNECTIVITY[representation]
        if len(shape) == 2 or conn != "freudenthal":
            field = np.where(np.isfinite(values), values, np.nanmax(values[np.isfinite(values)]))
            metrics.update(loop_metrics(loops_diagram(field.reshape(shape), conn)))
    return tree, metrics


# --- files and notebooks ------------------------------------------------------------------


def save_pairs(path: str | Path, tree, coords: np.ndarray | None = None) -> Path:
    """The persistence pairs of ``tree`` as an ``.npz`` of the columns of
    :func:`saddles.topology.persistence_pairs` (with the points' coordinates when given)."""
    from saddles.files import atomic_savez
    from saddles.topology import persistence_pairs

    return atomic_savez(path, persistence_pairs(tree, coords=coords))


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
