"""Relating finished runs: metrics of several analyzed models against a per-run quantity.

A run is a folder written by ``saddles run`` (``metrics.csv``, with each model's
``config.yaml`` in ``<name>/`` or beside it), by ``saddles dynamics`` or
:func:`saddles.runs.series.analyze_checkpoints` (``dynamics.csv`` and ``config.yaml``; the last
checkpoint is used unless a step is chosen; both layouts are read), or an experiment's output
(``metrics.csv`` of several models: one run per model). :func:`load_runs` reads them into
:class:`Run` records; every row gets a ``subspace`` label (``<n_directions>d`` for a single
analysis, the dynamics' own labels otherwise), so series match across kinds of run.

:func:`run_value` finds a per-run quantity: a column of a ``--meta`` table (keyed by the run's
name), the parameter count ``n_params`` (a row's ``n_params`` or ``hessian_n_params``, else the
landscape's ``landscape.json``), a column constant over the run's rows (``loss``, ``step``),
or a value of its analysis configuration. :func:`compare_runs` correlates every metric with
it per subspace (and span, in a span sweep) x direction kind x representation
(:func:`saddles.runs.relate.relations_from_rows`: Fisher-z intervals, over seed ensembles
widened by the seed spread), adjusts every p-value by Holm over the whole table
(:func:`saddles.runs.relate.mark_significant`), and fits power laws of metrics against model
size (:func:`saddles.runs.relate.power_laws`). :func:`setting_warnings` names the settings
that change the numbers (AnalysisConfig's identity fields; a run's criterion, loss, batch size,
... from its run.yaml) in which the runs differ, and dynamics runs taken at different steps
(offering the largest step they share): their metrics are then not comparable.
Runs that differ only by training seed (named ``<configuration>-seed<N>``,
:func:`training_group`) are one configuration: the relations take each run as one
observation, and the comparison's ``summary`` gives each configuration's mean over its
training runs, then their direction seeds (hierarchical bootstrap, each level's variance
share).
:func:`write_comparison` writes ``compare.csv``, ``power_laws.csv`` and ``report.html``.

numpy, csv and YAML only; never imports torch.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from saddles.runs.config import AnalysisConfig, default_of, identity_fields
from saddles.runs.registry import metrics_for
from saddles.runs.relate import mark_significant, power_laws, relations_from_rows
from saddles.runs.rows import as_number as _number
from saddles.runs.rows import planes_from_checkpoints
from saddles.runs.schema import IDENTITY_KEYS

#: Settings whose difference makes two runs' metrics incomparable: the identity fields of
#: AnalysisConfig (those that change the numbers), less those that only say which rows or
#: metrics there are (each row names its direction kind and representation).
LANDSCAPE_SETTINGS = tuple(
    f for f in identity_fields() if f not in ("directions", "representations", "hessian", "loops")
)
#: Run-level settings that change the numbers (saddles.runs.schema), read from run.yaml: a
#: loss file by its content (two copies of one file are the same loss), the data likewise.
RUN_SETTINGS = (*IDENTITY_KEYS, "data_sha256")
#: Settings a configuration may lack (written before they existed): their default then.
OPTIONAL_SETTINGS = {f.name: default_of(f) for f in fields(AnalysisConfig)}
#: Metrics fitted against model size by default (the registry's ``fit`` view).
FIT_METRICS = tuple(metrics_for("fit"))
ALPHA = 0.05


@dataclass
class Run:
    """One analyzed model: its rows (one per subspace x direction seed x direction kind x
    representation), its configuration per subspace, where it came from."""

    name: str
    path: Path
    kind: str  # "run" or "dynamics"
    rows: list[dict[str, Any]]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    step: int | None = None
    steps: list[int] = field(default_factory=list)  # a dynamics run's checkpoints

    @property
    def subspaces(self) -> list[str]:
        return list(dict.fromkeys(r["subspace"] for r in self.rows))


def load_runs(paths: list[str | Path], step: int | None = None) -> list[Run]:
    """The runs in ``paths`` (see the module docstring); ``step`` picks a dynamics run's
    checkpoint (default: its last). Refuses a folder that holds no results, a step a dynamics
    run lacks, and two runs with one name."""
    runs: list[Run] = []
    for p in paths:
        runs.extend(load_run(p))
    if step is not None:  # every dynamics run at that step, or one line naming what they share
        series = [r for r in runs if r.kind == "dynamics"]
        lacking = [r.name for r in series if step not in r.steps]
        if lacking:
            common = set.intersection(*(set(r.steps) for r in series))
            offer = (f"; the steps they all have are {sorted(common)[-6:]} (the largest "
                     f"{max(common)})" if common else "; they share no step")  # fmt: skip
            raise ValueError(f"no checkpoint at step {step} in {lacking}{offer}")
        runs = [r if r.kind != "dynamics" else _dynamics_run(r.path, step) for r in runs]
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"several runs are named {dupes}; give folders with distinct names")
    if not runs:
        raise ValueError("no runs to compare")
    return runs


def load_run(path: str | Path, step: int | None = None) -> list[Run]:
    """The run(s) of one folder: one per model of a ``metrics.csv``, or the dynamics run."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder at {path}")
    if (path / "dynamics.csv").is_file():
        return [_dynamics_run(path, step)]
    if not (path / "metrics.csv").is_file():
        raise FileNotFoundError(f"{path} holds neither metrics.csv (saddles run) nor "
                                "dynamics.csv (saddles dynamics)")  # fmt: skip
    rows = read_table(path / "metrics.csv")
    models = list(dict.fromkeys(r.get("model") for r in rows))
    out = []
    for model in models:
        own = [dict(r) for r in rows if r.get("model") == model]
        config = _read_config(path / str(model) / "config.yaml") or (
            _read_config(path / "config.yaml") if len(models) == 1 else {}
        )
        label = f"{config.get('n_directions', 2)}d"
        for r in own:
            r.setdefault("subspace", label)
        name = path.name if len(models) == 1 else f"{path.name}/{model}"
        run = Run(name, path, "run", own, {label: {**_run_settings(path), **config}})
        _fill_n_params(run, [path / str(model), path])
        out.append(run)
    return out


def _dynamics_run(path: Path, step: int | None) -> Run:
    rows = read_table(path / "dynamics.csv")
    if not rows:
        raise ValueError(f"{path / 'dynamics.csv'} holds no rows")
    config = _read_config(path / "config.yaml")
    settings = config.get("subspaces", {}) if isinstance(config.get("subspaces"), dict) else {}
    own_run = _run_settings(path)
    settings = {k: {**own_run, **v} for k, v in settings.items() if isinstance(v, dict)}
    if "representation" not in rows[0]:
        rows = _long_rows(rows)
    steps = sorted({int(r["step"]) for r in rows})
    chosen = steps[-1] if step is None else step
    if chosen not in steps:
        raise ValueError(f"{path.name} has no checkpoint at step {chosen}; its steps are {steps}")
    own = [r for r in rows if int(r["step"]) == chosen]
    for r in own:
        r.setdefault("direction", {"hessian": "hessian", "pca": "given"}.get(r.get("policy"),
                                                                            "random"))  # fmt: skip
    run = Run(path.name, path, "dynamics", own, settings, chosen, steps)
    ck = own[0].get("checkpoint")
    _fill_n_params(run, [path / str(ck) / s for s in run.subspaces] if ck else [])
    return run


def _run_settings(path: Path) -> dict[str, Any]:
    """The run-level settings that change the numbers (:data:`RUN_SETTINGS`) from the run
    folder's run.yaml (empty for a run written before it existed)."""
    stored = _read_config(path / "run.yaml")
    if stored.get("loss_sha256"):  # a loss file is the same loss wherever its copy lies
        stored["loss"] = stored["loss_sha256"]
    return {k: stored[k] for k in RUN_SETTINGS if k in stored}


#: Rows of the ``"wide"`` dynamics layout read back as plane rows (the long layout).
_long_rows = planes_from_checkpoints


def _fill_n_params(run: Run, folders: list[Path]) -> None:
    """Give every row ``n_params``: its own, ``hessian_n_params``, or a landscape's info."""
    value = next((_number(r.get(k)) for r in run.rows for k in ("n_params", "hessian_n_params")
                  if math.isfinite(_number(r.get(k)))), math.nan)  # fmt: skip
    if not math.isfinite(value):
        for folder in folders:
            for info in sorted(folder.glob("landscape-*/landscape.json")):
                try:
                    found = json.loads(info.read_text())["info"]["model"]["n_params"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
                value = _number(found)
                break
            if math.isfinite(value):
                break
    if math.isfinite(value):
        for r in run.rows:
            r["n_params"] = int(value)


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """A CSV file's rows, numbers parsed (``""`` stays ``""``; JSON lists stay text)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_meta(path: str | Path) -> dict[str, dict[str, Any]]:
    """A ``--meta`` table: ``{run name: {column: value}}``, keyed by its first column."""
    rows = read_table(path)
    if not rows:
        raise ValueError(f"{path} holds no rows")
    key = next(iter(rows[0]))
    return {str(r[key]): r for r in rows}


def run_value(run: Run, key: str, meta: dict[str, dict[str, Any]] | None = None) -> Any:
    """The run's value of ``key`` (see the module docstring for where it is looked up);
    ``LookupError`` naming the places when none has it."""
    if meta is not None:
        entry = meta.get(run.name) or meta.get(run.path.name)
        if entry is not None and key in entry:
            return entry[key]
    values = {_hashable(r.get(key)) for r in run.rows if key in r}
    if len(values) == 1:
        return run.rows[0][key]
    if len(values) > 1:
        raise ValueError(f"{key} is not one value per run: {run.name} has {len(values)}")
    configured = {_hashable(cfg[key]) for cfg in run.settings.values() if key in cfg}
    if len(configured) == 1:
        return next(cfg[key] for cfg in run.settings.values() if key in cfg)
    where = "its rows, its configuration" + (" or the meta table" if meta is not None else "")
    raise LookupError(f"run {run.name} has no value of {key!r} in {where}")


def setting_warnings(runs: list[Run]) -> list[str]:
    """One line per setting that changes the numbers in which the runs differ, naming the
    values: the analysis's (:data:`LANDSCAPE_SETTINGS`, per subspace; a setting a
    configuration lacks counts as its default) and the run's (:data:`RUN_SETTINGS`, from
    run.yaml); and one line when dynamics runs are taken at different steps, offering the
    largest step they all have. Such metrics are not comparable."""
    lines = []
    labels = list(dict.fromkeys(s for r in runs for s in r.settings))
    for label in labels:
        have = [r for r in runs if label in r.settings  # runs whose configuration is known
                and any(k in r.settings[label] for k in OPTIONAL_SETTINGS)]  # fmt: skip
        for key in LANDSCAPE_SETTINGS:
            values = {r.name: r.settings[label].get(key, OPTIONAL_SETTINGS[key]) for r in have}
            where = f" ({label} subspace)" if len(labels) > 1 else ""
            lines.extend(_differ(key, values, where))
    for key in RUN_SETTINGS:  # once per run: every subspace holds the same
        values = {r.name: next(iter(r.settings.values()))[key] for r in runs
                  if r.settings and key in next(iter(r.settings.values()))}  # fmt: skip
        lines.extend(_differ(key, values, ""))
    steps = {r.name: r.step for r in runs if r.kind == "dynamics"}
    if len(set(steps.values())) > 1:
        shown = ", ".join(f"{n} at step {s}" for n, s in steps.items())
        common = set.intersection(*(set(r.steps) for r in runs if r.kind == "dynamics"))
        offer = (f"; --step {max(common)} is the largest step they all have" if common
                 else "; they share no step")  # fmt: skip
        lines.append(f"runs compared at different steps: {shown}{offer}")
    return lines


def _differ(key: str, values: dict[str, Any], where: str) -> list[str]:
    if len({_hashable(v) for v in values.values()}) <= 1:
        return []
    shown = ", ".join(f"{n}={v}" for n, v in values.items())
    return [f"runs analyzed with different {key}{where}: {shown}; their metrics are not "
            "comparable"]  # fmt: skip


@dataclass
class Comparison:
    """What :func:`compare_runs` found: the relations table, the power-law fits, the
    warnings, and the rows it used (one per run x subspace x seed x kind x representation)."""

    by: str
    relations: list[dict[str, Any]]
    power_laws: list[dict[str, Any]]
    warnings: list[str]
    rows: list[dict[str, Any]]
    runs: list[str]
    loaded: list[Run] = field(default_factory=list, repr=False)  # the runs themselves
    #: per subspace x configuration x direction kind x representation, over training seeds
    #: (runs named ``<configuration>-seed<N>``), then direction seeds
    #: (:func:`saddles.runs.summary.seed_summary`)
    summary: list[dict[str, Any]] = field(default_factory=list)


def compare_runs(
    runs: list[Run],
    by: str = "n_params",
    *,
    meta: dict[str, dict[str, Any]] | None = None,
    metrics: list[str] | None = None,
    fit: list[str] | None = None,
    n_boot: int = 1000,
    n_perm: int = 2000,
) -> Comparison:
    """Relate every metric to ``by`` across ``runs`` (see the module docstring).

    ``metrics``: the metrics correlated (default: the TDA and curvature metrics of
    :mod:`saddles.runs.summary` that the rows have); ``fit``: the metrics fitted against the
    parameter count (default :data:`FIT_METRICS`; fits need ``n_params`` of at least two
    distinct sizes; the offset ``c`` is fitted from four). Rows' ``model`` is the run's name.
    """
    from saddles.runs.summary import CURVATURE_METRICS, TDA_METRICS, seed_summary

    if len(runs) < 2:
        raise ValueError(f"comparing needs at least two runs, got {len(runs)}")
    rows = []
    for run in runs:
        value = run_value(run, by, meta)
        if not math.isfinite(_number(value)):
            raise ValueError(f"{by} must be a number to correlate with; run {run.name} has "
                             f"{value!r}")  # fmt: skip
        sizes = {"n_params": run.rows[0]["n_params"]} if "n_params" in run.rows[0] else {}
        group, train_seed = training_group(run.name)
        for r in run.rows:
            seed = {} if _has_seed(r) else {"train_seed": train_seed}
            rows.append({**r, **sizes, **seed, "model": group, "run": run.name, by: value})
    # the scale summaries of span sweeps too, where rows have them
    scales = metrics_for("compare_figure", stage="scales")
    chosen = metrics or [m for m in (*TDA_METRICS, *scales, *CURVATURE_METRICS) if m != by
                         and any(math.isfinite(_number(r.get(m))) for r in rows)]  # fmt: skip
    if metrics:
        absent = [m for m in metrics if not any(m in r for r in rows)]
        if absent:
            raise ValueError(f"no run has metric(s) {absent}")
    table: list[dict[str, Any]] = []
    for sub, span in dict.fromkeys((r["subspace"], r.get("sweep_span")) for r in rows):
        own = [r for r in rows if r["subspace"] == sub and r.get("sweep_span") == span]
        where = {"subspace": sub} if span is None else {"subspace": sub, "sweep_span": span}
        here = [m for m in chosen if m != by and (  # a sweep's spans and summaries: their own
            span is None or any(math.isfinite(_number(r.get(m))) for r in own))]  # fmt: skip
        for r in relations_from_rows(own, here, [by],
                                     n_boot=n_boot, n_perm=n_perm):  # fmt: skip
            table.append({**where, **r})
    mark_significant(table)  # Holm over the whole table, every subspace
    spans = list(dict.fromkeys(r.get("sweep_span") for r in rows))  # a sweep: per span
    laws = [{**({} if span is None else {"sweep_span": span}), **law} for span in spans
            for law in power_laws([r for r in rows if r.get("sweep_span") == span],
                                  list(fit or FIT_METRICS), n_boot=n_boot)]  # fmt: skip
    summary = [{"subspace": sub, **r}
               for sub in dict.fromkeys(r["subspace"] for r in rows)
               for r in seed_summary([r for r in rows if r["subspace"] == sub],
                                     n_boot=n_boot)]  # fmt: skip
    return Comparison(by, table, laws, setting_warnings(runs), rows, [r.name for r in runs],
                      runs, summary)  # fmt: skip


#: A run name that ends in its training seed: ``<configuration>-seed<N>`` (also ``_seed``,
#: ``-train-seed``, ``seed=N``); the configuration part is the key that groups runs that
#: differ only by training seed.
TRAIN_SEED_NAME = re.compile(r"^(?P<config>.+?)[-_.]?(?:train[-_]?)?seed[-_=]?(?P<seed>\d+)$")


def training_group(name: str) -> tuple[str, Any]:
    """``(configuration, training seed)`` of a run's name: runs named
    ``<configuration>-seed<N>`` (:data:`TRAIN_SEED_NAME`) are training runs of one
    configuration, compared as one model measured over training seeds (the summary's
    hierarchical interval; each run one observation of the relations); any other name is its
    own configuration with an empty seed. A run whose rows carry ``train_seed`` (an
    experiment trained with several) keeps its rows' seeds."""
    m = TRAIN_SEED_NAME.match(name)
    if m is None:
        return name, ""
    return m["config"], int(m["seed"])


def _has_seed(row: dict[str, Any]) -> bool:
    return row.get("train_seed") not in (None, "")


def pairs_file(
    run: Run, direction: str, representation: str, subspace: str, span: float | None = None
) -> Path | None:
    """Where a run's saved persistence pairs of one plane are (``pairs-<kind>-<rep>.npz``,
    written by every analysis; in a span sweep ``pairs-<kind>-span<tag>-<rep>.npz`` per
    ``span``, the tag of :func:`saddles.landscape.scales.span_tag`), or None: for
    ``saddles run`` in the model's folder, for ``saddles dynamics`` in the compared
    checkpoint's subspace folder."""
    tag = "" if span is None else f"span{float(span):g}-".replace(".", "p")
    name = f"pairs-{direction}-{tag}{representation}.npz"
    if run.kind == "dynamics":
        ck = run.rows[0].get("checkpoint")
        candidates = [run.path / str(ck) / subspace / name] if ck else []
    else:
        model = run.rows[0].get("model")
        candidates = [run.path / str(model) / name, run.path / name]
    return next((c for c in candidates if c.is_file()), None)


def distance_matrix(
    runs: list[Run], direction: str, representation: str, subspace: str,
    span: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Pairwise bottleneck distances between the runs' persistence diagrams of one plane
    (the first direction seed's; in a span sweep, at ``span``), raw and range-normalized
    (each diagram mapped by its own ``(v - min) / (max - min)``);
    :func:`saddles.topology.distances.bottleneck_distance`.
    A distance below 1e-12 of the diagrams' largest value is round-off of 0 and set to 0.
    Runs without saved pairs are left out (and named in ``missing``)."""
    import numpy as np

    from saddles.topology.distances import bottleneck_distance

    names, raw, norm, missing = [], [], [], []
    for run in runs:
        path = pairs_file(run, direction, representation, subspace, span)
        if path is None:
            missing.append(run.name)
            continue
        with np.load(path, allow_pickle=False) as z:
            d = np.stack([z["birth"], z["death"]], axis=1)
        low, high = float(d.min(initial=np.inf)), float(d.max(initial=-np.inf))
        width = high - low
        names.append(run.name)
        raw.append(d)
        norm.append((d - low) / width if width > 0 else np.zeros_like(d))
    n = len(names)
    out = {"names": names, "missing": missing, "bottleneck": np.zeros((n, n)),
           "bottleneck_normalized": np.zeros((n, n))}  # fmt: skip
    # Round-off of a zero distance (e.g. 2.23e-308 between identical diagrams) is 0: below
    # 1e-12 of the largest value any diagram holds.
    scale = {"bottleneck": max((float(np.abs(d).max(initial=0.0)) for d in raw), default=0.0),
             "bottleneck_normalized": 1.0}  # fmt: skip
    for i in range(n):
        for j in range(i + 1, n):
            for key, ds in (("bottleneck", raw), ("bottleneck_normalized", norm)):
                d = bottleneck_distance(ds[i], ds[j])
                d = 0.0 if abs(d) <= 1e-12 * scale[key] else d
                out[key][i, j] = out[key][j, i] = d
    return out


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    return data if isinstance(data, dict) else {}


def _parse(text: str | None) -> Any:
    if text is None or text == "":
        return "" if text == "" else None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if text in ("True", "False"):
        return text == "True"
    return text


def _hashable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v
