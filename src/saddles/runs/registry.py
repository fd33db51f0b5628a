"""The metric registry: every number a stage puts into a row, declared once.

A :class:`Metric` says what a column means (description, unit, kind), which way is better,
whether it is measured per plane (one random plane, one direction kind, one representation)
or per checkpoint (the Hessian, the losses), which stage computes it, and where it is shown:
``shown_in`` names the views (:data:`VIEWS`) whose tables, figures and fits list it. Every
table, report, fit and printed summary reads its metrics from :func:`metrics_for` instead of
keeping a list of its own, so a new metric touches its computing function
(:mod:`saddles.topology.metrics`, :func:`saddles.runs.analyze.hessian_metrics`) and this file.

Families: :func:`saddles.topology.compute_metrics` repeats every statistic of a simplified
tree with the suffix ``_simplified`` and divides every persistence by the landscape's value
range (suffix ``_relative``); a metric's ``variants`` say which of these it has, and
:func:`lookup` resolves such names (an explicit declaration, e.g. of a variant shown in a
view, wins).

Within a view, metrics come in the order declared here; a view marked ``by_stage`` (the
per-plane table) orders them by stage first (raw topology, simplified counts, curvature).

Plain Python; imports nothing of saddles and never imports numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Where a metric can be shown, and how each view orders its metrics.
VIEWS: dict[str, str] = {
    "table": "the report's per-plane table and the notebook table (by stage)",
    "notebook": "extra columns of the notebook table, after the table's",
    "summary": "the report's seed-summary table (mean and interval over seeds)",
    "headline": "the report's result section and headline figure",
    "relate": "metrics correlated with what was varied (summary relations, compare)",
    "relation_figure": "metrics drawn against what was varied in the relation figures",
    "fit": "metrics fitted against the parameter count (power laws)",
    "cli": "the summary table `saddles experiment` prints",
    "dynamics": "metrics drawn against the training step on the dynamics page",
    "dynamics_table": "columns of the dynamics page's table",
    "wide": "per-representation columns of the per-checkpoint (wide) dynamics row",
    "compare_figure": "metrics drawn against the compared quantity on the compare page",
}
#: Views whose metrics are ordered by stage (then declaration order).
BY_STAGE = ("table",)
#: Stages in pipeline order; a metric's ``stage`` is one of them.
STAGES = ("sampling", "topology", "simplified", "noise", "scales", "loops", "distances",
          "hessian", "training")  # fmt: skip
KINDS = ("count", "raw", "relative", "scale-free", "curvature", "loss", "info")


@dataclass(frozen=True)
class Metric:
    """One column of the rows: ``name`` as it appears there (Hessian numbers carry the
    ``hessian_`` prefix), a one-line ``description`` and ``unit``; ``kind``: ``count``,
    ``raw`` (in loss units), ``relative`` (divided by the value range), ``scale-free``,
    ``curvature``, ``loss`` or ``info`` (bookkeeping, never related); ``better``:
    ``"higher"``, ``"lower"`` or None (no preferred direction); ``per``: ``"plane"`` or
    ``"checkpoint"``; ``stage``: what computes it (:data:`STAGES`); ``label``: a short name
    for printed tables; ``variants``: ``"simplified"`` and/or ``"relative"`` (see the module
    docstring)."""

    name: str
    description: str
    unit: str
    kind: str
    stage: str
    shown_in: frozenset[str] = frozenset()
    better: str | None = None
    per: str = "plane"
    label: str = ""
    variants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.stage not in STAGES:
            raise ValueError(f"metric {self.name}: stage must be one of {STAGES}, not "
                             f"{self.stage!r}")  # fmt: skip
        unknown = sorted(set(self.shown_in) - set(VIEWS))
        if unknown:
            raise ValueError(f"metric {self.name}: unknown view(s) {unknown}; views are "
                             f"{list(VIEWS)}")  # fmt: skip
        if self.better not in ("higher", "lower", None):
            raise ValueError(f"metric {self.name}: better must be 'higher', 'lower' or None")
        if self.per not in ("plane", "checkpoint"):
            raise ValueError(f"metric {self.name}: per must be 'plane' or 'checkpoint'")


def _m(name, description, unit, kind, stage, shown_in=(), **kw) -> Metric:
    return Metric(name, description, unit, kind, stage, frozenset(shown_in), **kw)


_TOPO, _SIMPLE, _REL = "topology", "simplified", ("simplified", "relative")
_CK = "checkpoint"

#: Every declared metric, in the order views list them.
METRICS: tuple[Metric, ...] = (
    # The merge tree of one plane (saddles.topology.metrics.compute_metrics).
    _m("n_minima", "local minima of the sampled landscape (raw)", "count", "count", _TOPO,
       ("table", "summary", "relate", "relation_figure", "dynamics", "dynamics_table", "wide",
        "compare_figure"), variants=("simplified",)),
    _m("n_saddles", "saddles: merges of two basins (raw)", "count", "count", _TOPO,
       ("table", "summary", "headline", "relate", "relation_figure", "fit", "cli", "dynamics",
        "dynamics_table", "wide", "compare_figure"), label="saddles raw",
       variants=("simplified",)),
    _m("n_merge_events", "persistence pairs of the merge tree", "count", "count", _TOPO,
       ("wide",), variants=("simplified",)),
    _m("n_minima_simplified", "local minima after simplification at the threshold", "count",
       "count", _SIMPLE, ("table",)),
    _m("n_saddles_simplified", "saddles after simplification at the threshold", "count",
       "count", _SIMPLE, ("table", "summary", "relate", "relation_figure", "cli"),
       label="saddles 1%"),
    _m("n_saddles_above_noise", "saddles whose persistence is at least twice the noise floor",
       "count", "count", "noise", ("summary", "headline", "relate", "relation_figure", "cli",
                                   "dynamics", "wide"), label="saddles >noise"),
    _m("average_persistence", "mean persistence, essential classes paired with the maximum "
       "(TTK)", "loss", "raw", _TOPO, ("table", "summary", "headline", "relate",
                                       "relation_figure", "fit", "cli", "dynamics",
                                       "dynamics_table", "wide", "compare_figure"),
       label="avg pers", variants=_REL),
    _m("average_persistence_relative", "mean persistence divided by the value range", "1",
       "relative", _TOPO, ("summary", "headline", "relate", "relation_figure", "fit", "cli",
                           "dynamics", "compare_figure"), label="avg pers / range"),
    _m("average_finite_persistence", "mean persistence of the finite pairs", "loss", "raw",
       _TOPO, ("table", "relate", "wide"), variants=_REL),
    _m("average_finite_persistence_relative", "mean finite persistence divided by the value "
       "range", "1", "relative", _TOPO, ("relate",)),
    _m("max_finite_persistence", "largest finite persistence", "loss", "raw", _TOPO,
       ("relate", "wide"), variants=_REL),
    _m("max_finite_persistence_relative", "largest finite persistence divided by the value "
       "range", "1", "relative", _TOPO, ("relate",)),
    _m("persistence_entropy", "Shannon entropy of the normalized persistences", "nats",
       "scale-free", _TOPO, ("table", "relate", "dynamics", "dynamics_table", "wide",
                             "compare_figure"), variants=("simplified",)),
    _m("n_vertices", "samples of the landscape", "count", "info", _TOPO),
    _m("n_components", "connected components of the graph", "count", "count", _TOPO,
       variants=("simplified",)),
    _m("n_nonfinite", "samples whose loss was NaN or inf", "count", "info", _TOPO),
    _m("total_persistence", "sum of persistences", "loss", "raw", _TOPO, variants=_REL),
    _m("max_persistence", "largest persistence (an essential class)", "loss", "raw", _TOPO,
       variants=_REL),
    _m("median_persistence", "median persistence", "loss", "raw", _TOPO, variants=_REL),
    _m("total_finite_persistence", "sum of finite persistences", "loss", "raw", _TOPO,
       variants=_REL),
    _m("median_finite_persistence", "median finite persistence", "loss", "raw", _TOPO,
       variants=_REL),
    _m("finite_persistence_entropy", "entropy of the finite persistences", "nats",
       "scale-free", _TOPO, variants=("simplified",)),
    _m("value_min", "lowest sampled loss", "loss", "loss", _TOPO),
    _m("value_max", "highest sampled loss", "loss", "loss", _TOPO),
    _m("smad", "saddle-minimum average distance (loss units)", "loss", "raw", _TOPO,
       ("notebook",), variants=("simplified",)),
    _m("smad_normalized", "smad divided by the value range", "1", "relative", _TOPO,
       variants=("simplified",)),
    _m("smad_basin_weighted", "smad weighted by basin size", "loss", "raw", _TOPO,
       variants=("simplified",)),
    _m("largest_basin_share", "share of the samples in the largest basin", "1", "scale-free",
       _TOPO, ("notebook",), variants=("simplified",)),
    _m("simplification_threshold", "absolute simplification threshold used", "loss", "info",
       _SIMPLE),
    _m("basin_sizes", "samples per basin, largest first (a list)", "count", "info", _SIMPLE),
    # Adaptive sampling (saddles.landscape.adaptive): what it spent and the bound it states.
    _m("adaptive_evaluations", "points an adaptive grid evaluated", "count", "info",
       "sampling"),
    _m("adaptive_fraction", "adaptive evaluations as a fraction of the dense grid's", "1",
       "info", "sampling"),
    _m("adaptive_bound", "stated bound on the bottleneck distance to the dense grid's "
       "diagram: the estimated sup-norm interpolation error", "loss", "info", "sampling"),
    _m("adaptive_bound_relative", "adaptive_bound divided by the value range", "1", "info",
       "sampling"),
    # Noise (saddles.landscape.noise, saddles.topology.noise_metrics).
    _m("noise_floor", "the floor the _above_noise counts use: the larger of the arithmetic "
       "and the batch floors", "loss", "loss", "noise", ("summary", "wide")),
    _m("noise_floor_source", "which floor noise_floor is: arithmetic, batch (or none)", "name",
       "info", "noise", ("wide",)),
    _m("arithmetic_floor", "largest |float32 - float64| difference of the loss (rounding)",
       "loss", "loss", "noise"),
    _m("batch_floor", "error bound of the values from the evaluation data: the largest "
       "spread (ptp / 2) of the difference between landscapes on disjoint parts of the data, "
       "over sqrt(2 x parts)",
       "loss", "loss", "noise"),
    _m("noise_threshold", "persistence a feature needs to count as above the noise", "loss",
       "info", "noise"),
    _m("n_minima_above_noise", "minima whose persistence is at least twice the noise floor",
       "count", "count", "noise"),
    _m("batch_stderr", "standard error of the loss over evaluation batches", "loss", "loss",
       "noise"),
    _m("loss_stderr_median", "median over the plane of each loss value's standard error over "
       "the evaluation examples", "loss", "loss", "noise"),
    _m("tokens_per_point", "mean tokens a point was evaluated on (eval_tokens auto)", "tokens",
       "info", "noise"),
    # Scales of a span sweep (saddles.landscape.scales): rows with an empty span.
    _m("critical_span", "smallest span of the sweep with a saddle/minimum pair above the "
       "noise floor (NaN: none, see critical_span_reason)", "span", "raw", "scales",
       ("summary", "dynamics", "dynamics_table", "wide", "compare_figure")),
    _m("critical_span_reason", "why critical_span is NaN (empty when it is not)", "name",
       "info", "scales"),
    _m("basin_radius", "smallest over the directions of the distance from the centre at "
       "which the loss first rises by basin_rise x the centre loss", "span", "raw", "scales",
       ("summary", "dynamics", "dynamics_table", "wide", "compare_figure")),
    _m("basin_radii", "each direction's basin radius (the nearer of its two signs; a list)",
       "span", "info", "scales"),
    _m("basin_radius_reason", "why a basin radius is NaN (empty when none is)", "name", "info",
       "scales"),
    # Loops of 2-D and 3-D grids (saddles.topology.persistence.loop_metrics).
    _m("n_loops", "one-dimensional classes (loops) of the sublevel sets", "count", "count",
       "loops", ("dynamics", "wide")),
    _m("average_loop_persistence", "mean persistence of the loops", "loss", "raw", "loops",
       ("wide",)),
    _m("total_loop_persistence", "sum of loop persistences", "loss", "raw", "loops"),
    _m("max_loop_persistence", "largest loop persistence", "loss", "raw", "loops"),
    # Between checkpoints (saddles.runs.series.add_diagram_distances).
    _m("bottleneck_to_previous", "bottleneck distance to the previous checkpoint's diagram",
       "loss", "raw", "distances"),
    _m("bottleneck_to_previous_normalized", "the same between range-normalized diagrams", "1",
       "relative", "distances"),
    _m("bottleneck_to_last", "bottleneck distance to the last checkpoint's diagram", "loss",
       "raw", "distances"),
    _m("bottleneck_to_last_normalized", "the same between range-normalized diagrams", "1",
       "relative", "distances"),
    # The Hessian of the loss (saddles.runs.analyze.hessian_metrics), once per checkpoint.
    _m("hessian_top_eigenvalue", "largest Hessian eigenvalue (Lanczos)", "loss/param^2",
       "curvature", "hessian", ("table", "relate", "fit", "dynamics", "dynamics_table",
                                "compare_figure"), per=_CK, label="H top eig"),
    _m("hessian_trace", "Hessian trace (Hutch++)", "loss/param^2", "curvature", "hessian",
       ("table", "relate", "fit", "dynamics", "dynamics_table", "compare_figure"), per=_CK),
    _m("hessian_trace_stderr", "standard error of the trace estimate", "loss/param^2", "info",
       "hessian", per=_CK),
    _m("hessian_trace_matvecs", "Hessian-vector products of the trace estimate", "count",
       "info", "hessian", per=_CK),
    _m("hessian_eigen_hvps", "Hessian-vector products of the eigen-solve", "count", "info",
       "hessian", per=_CK),
    _m("hessian_bottom_eigenvalue", "most negative Hessian eigenvalue (Lanczos SA; with "
       "hessian_which: top_bottom)", "loss/param^2", "curvature", "hessian", per=_CK),
    _m("hessian_bottom_residual", "residual norm ||H v - lambda v|| of the most negative "
       "eigenpair", "loss/param^2", "info", "hessian", per=_CK),
    _m("hessian_density_mean", "mean of the spectral density (trace / n)", "loss/param^2",
       "curvature", "hessian", per=_CK),
    _m("hessian_density_second_moment", "second moment of the spectral density",
       "(loss/param^2)^2", "curvature", "hessian", per=_CK),
    _m("hessian_n_params", "parameters the Hessian acts on", "count", "info", "hessian",
       per=_CK),
    _m("hessian_n_param_tensors", "parameter tensors the Hessian acts on", "count", "info",
       "hessian", per=_CK),
    # Training (a checkpoint's sidecar).
    _m("train_loss", "training loss recorded with the checkpoint", "loss", "loss", "training",
       ("dynamics", "dynamics_table"), per=_CK, better="lower"),
    _m("val_loss", "validation loss recorded with the checkpoint", "loss", "loss", "training",
       ("dynamics", "dynamics_table"), per=_CK, better="lower"),
)  # fmt: skip

_BY_NAME = {m.name: m for m in METRICS}
if len(_BY_NAME) != len(METRICS):
    raise RuntimeError("a metric is declared twice in saddles.runs.registry")


def lookup(name: str) -> Metric:
    """The declared metric ``name``, or the variant of one (``<name>_simplified``,
    ``<name>_relative``, ``<name>_simplified_relative``); ``KeyError`` naming it otherwise."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    base, relative = (name[: -len("_relative")], True) if name.endswith("_relative") else (
        name, False)  # fmt: skip
    base, simplified = (base[: -len("_simplified")], True) if base.endswith("_simplified") else (
        base, False)  # fmt: skip
    root = _BY_NAME.get(base)
    wanted = {v for v, on in (("relative", relative), ("simplified", simplified)) if on}
    if root is None or not wanted or not wanted <= set(root.variants):
        raise KeyError(f"metric {name!r} is not declared in saddles.runs.registry")
    what = [w for w, on in (("after simplification", simplified),
                            ("divided by the value range", relative)) if on]  # fmt: skip
    return replace(root, name=name, description=f"{root.description}, {' and '.join(what)}",
                   kind="relative" if relative else root.kind, unit="1" if relative else root.unit,
                   stage="simplified" if simplified else root.stage, shown_in=frozenset(),
                   label="", variants=())  # fmt: skip


def is_declared(name: str) -> bool:
    """Whether ``name`` is a declared metric or a variant of one."""
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def metrics_for(
    view: str, *, stage: str | None = None, exclude_stage: str | None = None
) -> list[str]:
    """Names of the metrics shown in ``view`` (:data:`VIEWS`), in the view's order;
    ``stage``/``exclude_stage`` keep or drop one stage (e.g. the Hessian's)."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; views are {list(VIEWS)}")
    chosen = [m for m in METRICS if view in m.shown_in and (stage is None or m.stage == stage)
              and (exclude_stage is None or m.stage != exclude_stage)]  # fmt: skip
    if view in BY_STAGE:
        chosen.sort(key=lambda m: STAGES.index(m.stage))  # stable: declaration order within
    return [m.name for m in chosen]


def label(name: str) -> str:
    """A metric's short label for printed tables (its name when it has none)."""
    found = _BY_NAME.get(name)
    return (found.label or name) if found else name
