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

Orchestration lives here and in the experiments; every stage is a plain call into its module.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from saddles._files import atomic_write_text, to_jsonable
from saddles.topology.representations import GRID_REPRESENTATIONS as _GRID_CONNECTIVITY
from saddles.topology.representations import REPRESENTATIONS

DIRECTION_KINDS = ("random", "hessian", "given")


@dataclass
class AnalysisConfig:
    """What :func:`analyze` computes. Every field has a default; YAML files may set any subset.

    Directions: ``directions`` lists the kinds ("random": Gaussian, normalized by ``norm``,
    seeded by ``seed``; "hessian": the top ``n_directions`` Hessian eigenvectors, then
    normalized by ``norm`` too, so both kinds have filter-wise comparable scales by default;
    "given": directions passed to :func:`analyze`, e.g. a trajectory's PCA, normalized too).
    Sampling: ``"grid"``, a ``resolution``-per-axis grid on ``[-span, span]^n_directions``
    (1 to 3 directions); or ``"sobol"``/``"lhs"``/``"uniform"``, ``n_points`` scattered points
    in that box (1 to 10 directions, the origin included), for graph representations only.
    Representations: names from :data:`REPRESENTATIONS` (see
    :mod:`saddles.topology.representations`); ``knn_k`` neighbours for kNN graphs, None (the
    default) for the paper authors' ``4 x n_directions``.
    Topology: ``threshold`` (relative to the value range) adds simplified metrics; ``loops``
    adds 1-dimensional persistence (``n_loops``, ...) for grid representations in 2D and 3D.
    Hessian: top ``hessian_top_k`` eigenvalues, Hutch++ trace with ``trace_matvecs`` HVPs,
    SLQ density with ``density_lanczos`` steps x ``density_runs`` runs.
    """

    directions: list[str] = field(default_factory=lambda: ["random", "hessian"])
    n_directions: int = 2
    norm: str = "filter"
    ignore_1d: bool = True
    seed: int = 0
    sampling: str = "grid"
    resolution: int = 41
    n_points: int = 4096
    span: float = 1.0
    representations: list[str] = field(default_factory=lambda: ["grid-full", "grid-ttk", "knn"])
    knn_k: int | None = None
    threshold: float | None = 0.01
    loops: bool = True
    hessian: bool = True
    hessian_top_k: int = 5
    trace_matvecs: int = 99
    density_lanczos: int = 80
    density_runs: int = 1
    engine: str = "auto"
    chunk_size: int | None = None
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        # Types first, so a YAML typo ("7" for 7, a bare string for a list) is named clearly.
        for name in ("directions", "representations"):
            value = getattr(self, name)
            setattr(self, name, [value] if isinstance(value, str) else list(value))
        ints = {
            "n_directions": 1,
            "seed": None,
            "resolution": 3,
            "n_points": 2,
            "knn_k": 1,
            "hessian_top_k": 1,
            "trace_matvecs": 1,
            "density_lanczos": 2,
            "density_runs": 1,
        }
        for name, low in ints.items():
            value = getattr(self, name)
            if name == "knn_k" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, not {value!r}")
            if low is not None and value < low:
                raise ValueError(f"{name} must be at least {low}, not {value}")
        for name in ("span", "threshold"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not np.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"{name} must be a non-negative number, not {value!r}")
        if self.chunk_size is not None and (
            not isinstance(self.chunk_size, int) or self.chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be a positive integer, not {self.chunk_size!r}")
        bad = [d for d in self.directions if d not in DIRECTION_KINDS]
        if bad or not self.directions:
            raise ValueError(
                f"directions must be a non-empty subset of {DIRECTION_KINDS}, not {bad}"
            )
        bad = [r for r in self.representations if r not in REPRESENTATIONS]
        if bad or not self.representations:
            raise ValueError(
                f"unknown representation(s) {bad}; choose from {', '.join(REPRESENTATIONS)}"
            )
        if self.sampling not in ("grid", "sobol", "lhs", "uniform"):
            raise ValueError(f"sampling must be grid, sobol, lhs or uniform, not {self.sampling!r}")
        if self.sampling == "grid" and not 1 <= self.n_directions <= 3:
            raise ValueError(
                f"a grid takes 1 to 3 directions, not {self.n_directions}; "
                "use scattered sampling (sampling: sobol) for more"
            )
        if not 1 <= self.n_directions <= 10:
            raise ValueError(f"n_directions must be 1 to 10, not {self.n_directions}")
        grids = [r for r in self.representations if r in _GRID_CONNECTIVITY]
        if self.sampling != "grid" and grids:
            raise ValueError(f"{grids} need grid sampling; scattered points take knn, delaunay, "
                             "gabriel or knn-approx")  # fmt: skip
        if not self.span > 0:
            raise ValueError(f"span must be positive, not {self.span}")
        if "hessian" in self.directions and self.hessian_top_k < self.n_directions:
            self.hessian_top_k = self.n_directions
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, not {self.dtype!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AnalysisConfig:
        """Build from a dict, rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown analysis setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AnalysisConfig:
        return cls.from_dict(_read_yaml(path).get("analysis", {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def short_id(self) -> str:
        """8 hex digits naming this configuration, for per-configuration run directories."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


@dataclass
class Analysis:
    """Everything :func:`analyze` computed for one model.

    ``topology[kind][representation]`` holds the metrics dict of that merge tree and
    ``trees[kind][representation]`` the tree itself; ``hessian`` holds scalars (top
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

    def __repr__(self) -> str:
        kinds = ", ".join(self.topology) or "none"
        reps = ", ".join(self.config.representations)
        top = self.hessian.get("top_eigenvalue")
        curvature = f", top Hessian eigenvalue {top:.4g}" if top is not None else ""
        return (f"Analysis({self.name!r}: {kinds} directions x {reps}, "
                f"{len(self.rows())} rows{curvature})")  # fmt: skip

    def _repr_html_(self) -> str:
        """The metrics table and the first 2-D landscape's contour, for notebooks."""
        from saddles.report import TABLE_COLUMNS, _table

        rows = self.rows()
        wanted = [*TABLE_COLUMNS, "smad", "largest_basin_share"]
        columns = [c for c in wanted if any(c in r for r in rows)]
        image = _contour_png(self)
        img = f"<img src='data:image/png;base64,{image}' style='max-width:420px'/>" if image else ""
        return f"<div><b>{_escape(repr(self))}</b>{_table(rows, columns)}{img}</div>"

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows, one per direction kind x representation, for tables and CSV."""
        scalars = {f"hessian_{k}": v for k, v in self.hessian.items() if _is_scalar(v)}
        out = []
        for kind, reps in self.topology.items():
            for rep, metrics in reps.items():
                out.append({"model": self.name, "direction": kind, "representation": rep,
                            **self.quality, **metrics, **scalars})  # fmt: skip
        return out

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
            "timings": self.timings,
        }
        atomic_write_text(run_dir / "metrics.json", json.dumps(to_jsonable(record), indent=2))
        write_csv(run_dir / "metrics.csv", self.rows())
        for kind, trees in self.trees.items():
            coords = self.landscapes[kind].coords if kind in self.landscapes else None
            for rep, tree in trees.items():
                save_pairs(run_dir / f"pairs-{kind}-{rep}.npz", tree, coords)
        if self.density is not None:
            np.savez(run_dir / "density.npz", grid=self.density.grid,
                     density=self.density.density, nodes=self.density.nodes,
                     weights=self.density.weights)  # fmt: skip
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

    from saddles import directions as dirs
    from saddles.landscape import evaluate

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

    landscapes, topology, trees = {}, {}, {}
    coords = make_coordinates(config)
    for kind in config.directions:
        if kind == "random":
            d = dirs.random_directions(model, config.n_directions, seed=config.seed,
                                       norm=config.norm, ignore_1d=config.ignore_1d)  # fmt: skip
        elif kind == "given":
            d = dirs.from_tensors(model, given, norm=config.norm, ignore_1d=config.ignore_1d,
                                  info={"kind": "given"})  # fmt: skip
            if len(d) != config.n_directions:
                raise ValueError(f"{len(d)} given directions, but n_directions is "
                                 f"{config.n_directions}")  # fmt: skip
        else:
            d = dirs.from_tensors(model, eig.eigenvectors[: config.n_directions],
                                  norm=config.norm, ignore_1d=config.ignore_1d,
                                  info={"kind": "hessian",
                                        "eigenvalues": eig.eigenvalues[: config.n_directions]
                                        .tolist()})  # fmt: skip
        t0 = time.perf_counter()
        landscapes[kind] = evaluate(
            model, loss, data, d, coords, engine=config.engine, chunk_size=config.chunk_size,
            device=config.device, dtype=dtype, progress=progress,
            run_dir=Path(run_dir) / f"landscape-{kind}" if run_dir else None, resume=True,
        )  # fmt: skip
        timings[f"landscape_{kind}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        trees[kind], topology[kind] = {}, {}
        for rep in config.representations:
            tree, metrics = landscape_topology(landscapes[kind], rep, config)
            trees[kind][rep], topology[kind][rep] = tree, metrics
        timings[f"topology_{kind}_s"] = time.perf_counter() - t0
    analysis = Analysis(name, config, landscapes, topology, trees, hessian, density,
                        dict(quality or {}), timings, eig)  # fmt: skip
    if run_dir is not None:
        analysis.save(run_dir)
    return analysis


def make_coordinates(config: AnalysisConfig):
    """The sample points of an analysis: a grid, or scattered points with the origin first."""
    from saddles.sampling import grid, scattered

    box = (-config.span, config.span)
    if config.sampling == "grid":
        return grid(config.resolution, box, dims=config.n_directions)
    return scattered(config.n_points, config.n_directions, method=config.sampling, ranges=box,
                     seed=config.seed, include_center=True)  # fmt: skip


def hessian_metrics(model, loss, data, config: AnalysisConfig, dtype):
    """Top eigenpairs, trace and density of the loss Hessian: ``(scalars, density, eigenpairs)``."""
    from saddles.hessian import HessianOperator, spectral_density, top_eigen, trace

    op = HessianOperator(model, loss, data, dtype=dtype, device=config.device)
    eig = top_eigen(op, k=min(config.hessian_top_k, op.dim), seed=config.seed)
    tr = trace(op, "hutch++", n_matvecs=min(config.trace_matvecs, 3 * op.dim), seed=config.seed)
    dens = spectral_density(op, n_lanczos=min(config.density_lanczos, op.dim),
                            n_runs=config.density_runs, seed=config.seed)  # fmt: skip
    scalars = {
        "top_eigenvalue": float(eig.eigenvalues[0]),
        "top_eigenvalues": [float(v) for v in eig.eigenvalues],
        "eigen_residuals": [float(v) for v in eig.residual_norms],
        "eigen_hvps": int(eig.n_hvps),
        "trace": float(tr.value),
        "trace_stderr": float(tr.stderr),
        "trace_matvecs": int(tr.n_matvecs),
        "density_mean": dens.moment(1),
        "density_second_moment": dens.moment(2),
        "n_params": int(op.dim),
    }
    return scalars, dens, eig


def landscape_topology(landscape, representation: str, config: AnalysisConfig):
    """Merge tree and metrics of one landscape under one representation.

    The graph and tree come from :func:`saddles.topology.representations.representation_tree`,
    the same call ``saddles topology`` and ``Landscape.topology`` make.
    """
    from saddles.topology import compute_metrics, loop_metrics, loops_diagram
    from saddles.topology.representations import representation_tree

    values = np.asarray(landscape.loss, dtype=np.float64)
    tree = representation_tree(representation, values, coords=landscape.coords,
                               shape=landscape.shape, k=config.knn_k, nan_policy="max")  # fmt: skip
    metrics = compute_metrics(tree, threshold=config.threshold, relative=True)
    shape = landscape.shape
    if config.loops and representation in _GRID_CONNECTIVITY and shape and len(shape) in (2, 3):
        conn = _GRID_CONNECTIVITY[representation]
        if len(shape) == 2 or conn != "freudenthal":
            field = np.where(np.isfinite(values), values, np.nanmax(values[np.isfinite(values)]))
            metrics.update(loop_metrics(loops_diagram(field.reshape(shape), conn)))
    return tree, metrics


# --- figures and summaries --------------------------------------------------------------

#: Metrics the relations table correlates: TDA metrics (x) against model and Hessian metrics (y).
TDA_METRICS = ["n_minima", "n_saddles", "average_persistence", "average_finite_persistence",
               "max_finite_persistence", "persistence_entropy"]  # fmt: skip
CURVATURE_METRICS = ["hessian_top_eigenvalue", "hessian_trace"]


def write_figures(analysis: Analysis, fig_dir: str | Path) -> dict[str, Path]:
    """PNG figures of one analysis; returns ``{label: path}`` in reading order.

    For each direction kind: the loss contour and 3D surface with the (simplified) merge tree's
    minima and saddles, the merge tree, and the persistence diagram of the first
    representation; then the Hessian density.
    """
    from saddles import plots
    from saddles.topology import simplify

    fig_dir = Path(fig_dir)
    out: dict[str, Path] = {}
    cfg = analysis.config
    rep = cfg.representations[0]
    span = cfg.span
    for kind, landscape in analysis.landscapes.items():
        tree = analysis.trees[kind][rep]
        shown = simplify(tree, cfg.threshold, relative=True) if cfg.threshold else tree
        label = f"{kind} directions"
        marks = (
            f"critical points after simplification at {cfg.threshold:g} of the range"
            if (cfg.threshold)
            else "all critical points"
        )
        if landscape.shape is not None and len(landscape.shape) == 2:
            field = landscape.grid()  # field[i, j] at (direction 1 = i, direction 2 = j)
            extent = (-span, span, -span, span)
            out[f"{label}: contour ({marks})"] = plots.save(
                plots.field_figure(
                    field, shown, extent, f"{analysis.name}, {label}", indexing="ij"
                ),
                fig_dir / f"{kind}-contour.png",
            )
            out[f"{label}: surface ({marks})"] = plots.save(
                plots.surface_figure(
                    field, shown, extent, f"{analysis.name}, {label}", indexing="ij"
                ),
                fig_dir / f"{kind}-surface.png",
            )
        out[f"{label}: merge tree ({rep}, {marks})"] = plots.save(
            plots.merge_tree_figure(shown, title=f"merge tree, {label}, {rep}"),
            fig_dir / f"{kind}-merge-tree.png",
        )
        out[f"{label}: persistence diagram ({rep})"] = plots.save(
            plots.persistence_diagram_figure(tree, title=f"persistence, {label}, {rep}"),
            fig_dir / f"{kind}-persistence.png",
        )
    if analysis.density is not None:
        from saddles.hessian_plots import plot_density

        fig = plot_density(analysis.density, title=f"{analysis.name}: Hessian eigenvalue density")
        out["Hessian eigenvalue density"] = plots.save(fig, fig_dir / "hessian-density.png")
    return out


def summarize(
    analyses: list[Analysis],
    out_dir: str | Path,
    *,
    x_key: str,
    title: str,
    y_metrics: list[str],
    categorical: bool = False,
    figures: dict[str, dict[str, Path]] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Across models: the combined metrics.csv, the relations table (every TDA metric against
    ``x_key``, ``y_metrics`` and the Hessian metrics, per direction kind and representation),
    relation plots, and report.html. Returns the paths written."""
    from saddles import plots
    from saddles.relations import relations_table
    from saddles.report import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for a in analyses for r in a.rows()]
    paths = {"metrics": write_csv(out_dir / "metrics.csv", rows)}
    numeric_x = all(_is_scalar(r.get(x_key)) for r in rows)
    ys = [*([x_key] if numeric_x else []), *y_metrics, *CURVATURE_METRICS]
    relations = []
    for kind in analyses[0].config.directions:
        for rep in analyses[0].config.representations:
            sub = [r for r in rows if r["direction"] == kind and r["representation"] == rep]
            for c in relations_table(sub, TDA_METRICS, ys):
                relations.append({"direction": kind, "representation": rep, **c.as_row()})
    paths["relations"] = write_csv(out_dir / "relations.csv", relations)
    rel_figs = {}
    rep = analyses[0].config.representations[0]
    for kind in analyses[0].config.directions:
        sub = [r for r in rows if r["direction"] == kind and r["representation"] == rep]
        fig = plots.relation_figure(
            sub, x_key, [*TDA_METRICS[:4], *y_metrics, *CURVATURE_METRICS],
            title=f"{title}: metrics against {x_key} ({kind} directions, {rep})",
            categorical=categorical,
        )  # fmt: skip
        rel_figs[f"{kind} directions, {rep}"] = plots.save(fig, out_dir / f"relations-{kind}.png")
    paths["report"] = write_report(
        out_dir / "report.html", title=title, config=analyses[0].config.to_dict(),
        analyses=analyses, figures=figures or {}, rows=rows, relations=relations,
        relation_figures=rel_figs, info=info or {},
    )  # fmt: skip
    return paths


# --- files ---------------------------------------------------------------------------------


def save_pairs(path: str | Path, tree, coords: np.ndarray | None = None) -> Path:
    """The persistence pairs of ``tree`` as an ``.npz`` of the columns of
    :func:`saddles.topology.persistence_pairs` (with the points' coordinates when given)."""
    from saddles._files import atomic_savez
    from saddles.topology import persistence_pairs

    return atomic_savez(path, persistence_pairs(tree, coords=coords))


def _contour_png(analysis: Analysis) -> str | None:
    """A base64 PNG of the first 2-D landscape's contour, drawn with matplotlib's object API
    (``Figure`` and its Agg canvas: no pyplot state, no backend switch); None without one."""
    import base64
    import io

    from matplotlib.figure import Figure

    from saddles.topology import simplify

    for kind, land in analysis.landscapes.items():
        if land.shape is None or len(land.shape) != 2:
            continue
        field = land.grid()
        grid = land.coords.reshape(*land.shape, 2)
        fig = Figure(figsize=(4.5, 3.6))
        ax = fig.add_subplot()
        cs = ax.contourf(grid[..., 0], grid[..., 1], np.where(np.isfinite(field), field, np.nan),
                         levels=30, cmap="viridis")  # fmt: skip
        fig.colorbar(cs, ax=ax, label="loss")
        tree = analysis.trees.get(kind, {}).get(analysis.config.representations[0])
        if tree is not None:  # the critical points write_figures marks
            threshold = analysis.config.threshold
            tree = simplify(tree, threshold, relative=True) if threshold else tree
            for verts, style in ((tree.minima, dict(marker="o", color="white")),
                                 (tree.saddles, dict(marker="X", color="red"))):  # fmt: skip
                pts = land.coords[verts]
                ax.scatter(pts[:, 0], pts[:, 1], s=30, edgecolor="k", linewidths=0.6, **style)
        ax.set(xlabel="direction 1", ylabel="direction 2", title=f"{analysis.name}, {kind}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        return base64.b64encode(buf.getvalue()).decode("ascii")
    return None


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows (dicts) as CSV with the union of their keys as columns (lists as JSON)."""
    path = Path(path)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
            )
    tmp.replace(path)
    return path


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such configuration file: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
