"""Topology and curvature over a training run: one analysis per checkpoint, incrementally.

:func:`discover_checkpoints` finds a run's checkpoints and orders them by training step. A
checkpoint is a state-dict file (``.safetensors``, ``.pt``, ``.pth``) or a Hugging Face
folder (``model.safetensors``, a sharded ``model.safetensors.index.json``, or
``pytorch_model.bin`` inside; e.g. one folder per revision). The step comes from a JSON sidecar
(``<name>.json`` beside it, with a ``step`` key and optionally ``tokens``, ``train_loss``,
``val_loss``), from a Trainer's ``trainer_state.json`` (``global_step``) inside a folder, or
from the name: ``step1000``, ``step_001000``, ``checkpoint-1000``, ``ckpt-5`` (else the last
integer in the name). :func:`select_steps` keeps some of them.

:func:`analyze_checkpoints` runs :func:`saddles.runs.analyze.analyze` on each checkpoint and writes
``dynamics.csv``, in one of two layouts: ``"wide"`` (one row per checkpoint: step, tokens,
losses, the main topology metrics per subspace and representation in columns
``<subspace>.<representation>.<metric>``, the Hessian's top eigenvalues and trace) or
``"long"`` (one row per checkpoint x subspace x direction seed x representation with
``step``, ``subspace`` and every metric of :meth:`saddles.runs.analyze.Analysis.rows`, the same
columns as a ``saddles run`` ``metrics.csv``). Finished checkpoints are recorded in
``<out>/<checkpoint>/row.json``; a rerun analyzes only checkpoints without one (new ones), and
refuses a directory analyzed under another configuration: another *identity*
(:meth:`saddles.runs.config.AnalysisConfig.identity`; a field added in a later schema version
with its default, or another executor, is the same configuration; a folder written before
``schema_version`` existed is read through the configuration its config.yaml holds).
``<out>/config.yaml`` records the schema version, the policy and each subspace's configuration.
:func:`saddles.report.dynamics.dynamics_report` draws every metric against the step.

A checkpoint in progress loses at most one chunk when interrupted: ``started.json`` records what
is being computed, each landscape resumes from its run directory
(``<out>/<checkpoint>/<subspace>/landscape-*``), and the Hessian (eigenpairs, trace, density)
is saved to ``hessian.npz``/``hessian.json`` as soon as computed and reused when the
configuration matches. The run prints "checkpoint k of N (step S)" with the time spent and an
estimate of the time left, and each checkpoint's result line as it finishes.

Checkpoints on workers (``executor="ray"``, ``workers=N``): each checkpoint's whole analysis
(:class:`CheckpointWork`: its weights into a fresh model from the factory, the Hessian, each
subspace, ``row.json``) is one unit of a :class:`saddles.executors.base.Pool`, so ``N`` of them
run at once; each resumes as above. The driver keeps what needs every checkpoint: discovery
and hashing (checkpoints.csv), the refusal of another configuration, the PCA policy's
directions (computed once, then sent to the workers), ``dynamics.csv`` (rewritten in step
order as each checkpoint arrives, its result line printed then) and the diagram distances.
The numbers are those of one process: the same code, seeds and data; the Ray executor gives
each worker one torch thread (:mod:`saddles.executors.threads`), and ``row.json`` records
where it ran and with how many threads (``execution``), so a one-thread process gives the
same bits. The factory, loss and data must pickle (with cloudpickle, once, on the driver;
:class:`ModelCopies` is a factory that does); the workers import from the driver's working
directory too, as ``module:function`` factories and losses need, and get absolute paths.

Weights of a Hugging Face folder are loaded into the model that the factory builds (one
architecture for the whole run), by :func:`load_state`: key names may differ by a wrapper's
prefix (``model.``), and tied weights the folder leaves out (``lm_head.weight`` tied to the
embedding) are restored through the tie.

Direction policies (recorded in every row):

``"fixed"``
    Random directions from the same seed at every checkpoint, filter-normalized to each
    checkpoint's own weights (Li et al. 2018): comparable across time.
``"hessian"``
    The top Hessian eigenvectors of each checkpoint (normalized as configured).
``"pca"``
    The principal directions of the trajectory itself (Li et al. 2018, section 7), computed
    once from all checkpoints around the last one and used at every checkpoint.

Several subspaces can be analyzed per checkpoint (``configs={"2d": ..., "4d": ...}``), e.g. a
2D grid beside 3-10 dimensional scattered samples with kNN graphs, to compare 2D against kD
topology on the same checkpoint.

Imports torch only inside functions (weights, Hessians); never imports :mod:`saddles.report`
or the command line.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from saddles.files import atomic_write_text, to_jsonable
from saddles.io.suite import (  # noqa: F401 (discovery and loading, re-exported from here)
    CHECKPOINT_SUFFIXES,
    HF_WEIGHTS,
    Checkpoint,
    check_suite,
    discover_checkpoints,
    load_state,
    select_steps,
)
from saddles.names import POLICIES
from saddles.runs.analyze import AnalysisConfig, analyze, write_csv
from saddles.runs.config import (
    SCHEMA_VERSION,
    configs_from_dict,  # noqa: F401 (re-exported)
)
from saddles.runs.registry import metrics_for
from saddles.runs.resume import (
    Identity,
    checkpoint_hessian,
    floats,
    read_settings,
    stored_hash,
)
from saddles.runs.rows import CHECKPOINT_CURVATURE, checkpoint_columns

if TYPE_CHECKING:
    from saddles.executors.base import Executor

LAYOUTS = ("wide", "long")
#: Per-representation topology metrics copied into the wide dynamics row (the registry's
#: ``wide`` view).
ROW_METRICS = tuple(metrics_for("wide"))


def analyze_checkpoints(
    model_factory: Callable[[], Any],
    checkpoints: str | Path | list[Checkpoint],
    loss,
    data,
    configs: AnalysisConfig | dict[str, AnalysisConfig],
    out_dir: str | Path,
    *,
    policy: str = "fixed",
    run_name: str = "run",
    extra: dict[str, Any] | None = None,
    progress: bool = True,
    layout: str = "wide",
    executor: str | Executor | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
) -> list[dict[str, Any]]:
    """Analyze every checkpoint not yet analyzed in ``out_dir``; return all rows by step.

    ``configs``: one :class:`AnalysisConfig` or ``{label: config}`` for several subspaces;
    the Hessian (top eigenvalues, trace, density) is computed once per checkpoint, in the
    first subspace whose config asks for it (in the ``"long"`` layout its numbers are copied
    into every subspace's rows). ``extra`` is copied into every row (e.g. the model size).
    ``layout``: ``"wide"`` or ``"long"`` rows (see the module docstring). The table is
    rewritten to ``dynamics.csv`` as soon as each checkpoint is done. ``progress``: the
    landscapes' progress bars and the checkpoint lines (see the module docstring).

    ``executor``: where whole checkpoints run. ``None`` or ``"local"``: one after another in
    this process. ``"ray"`` (or an :class:`~saddles.executors.base.Executor`): each checkpoint
    is one unit on ``workers`` workers (``gpus_per_worker`` GPUs each), with the same numbers
    (see "Checkpoints on workers" in the module docstring).
    """
    spread = executor not in (None, "local")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if isinstance(configs, AnalysisConfig):
        configs = {f"{configs.n_directions}d": configs}
    configs = {label: with_policy(cfg, policy) for label, cfg in configs.items()}
    _check_execution(configs, spread, workers, gpus_per_worker)
    if policy == "hessian":  # one eigen-solve per checkpoint serves every subspace
        k = max(c.n_directions for c in configs.values())
        first = next(iter(configs))
        configs[first] = replace(
            configs[first], hessian=True, hessian_top_k=max(k, configs[first].hessian_top_k)
        )
    ckpts = checkpoints if isinstance(checkpoints, list) else discover_checkpoints(checkpoints)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Every revision's weights hashed first: duplicated revisions are marked in every row.
    suite = check_suite(ckpts, cache=out_dir / "checkpoints.csv")
    write_csv(out_dir / "checkpoints.csv", suite)
    duplicate_of = {r["checkpoint"]: r["duplicate_of"] for r in suite}
    stored = read_settings(out_dir / "config.yaml")  # before it is rewritten: legacy folders
    settings = {"schema_version": SCHEMA_VERSION, "policy": policy,
                "subspaces": {k: c.to_dict() for k, c in configs.items()}}  # fmt: skip
    given, trajectory = None, None
    if policy == "pca":
        given = _pca_directions(model_factory, ckpts, configs)
        # The directions depend on the whole trajectory: a row made from other checkpoints
        # is stale, and is recomputed rather than mixed with fresh ones.
        trajectory = [(c.name, c.step) for c in ckpts]
    same = Identity(configs, policy, trajectory, stored)
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(settings, sort_keys=False))
    hashes = {r["checkpoint"]: r["sha256"] for r in suite}
    changed = [ck for ck in ckpts if stored_hash(out_dir / ck.name) not in (None, hashes[ck.name])]
    for ck in changed:  # the weights under this name changed since it was analyzed: start over
        shutil.rmtree(out_dir / ck.name)
    todo = [ck for ck in ckpts if not same.finished(out_dir / ck.name, layout)]
    for ck in todo:  # refuses another configuration; drops stale PCA landscapes
        same.prepare(out_dir / ck.name)
    work = CheckpointWork(  # absolute paths on workers, which start in another folder
        model_factory, loss, data, configs, out_dir.absolute() if spread else out_dir,
        policy=policy, run_name=run_name,
        extra=dict(extra or {}), given=given, hashes=hashes, stamp=same.stamp(),
        progress=progress and not spread,
        executor=executor if isinstance(executor, str) else getattr(executor, "name", "local"),
    )  # fmt: skip
    clock = _Progress(len(ckpts), len(todo), enabled=progress)

    def table() -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: r["step"])  # stable: long rows keep their order

    rows: list[dict[str, Any]] = []
    for ck in ckpts:
        if ck not in todo:
            record = floats(json.loads((out_dir / ck.name / "row.json").read_text()))
            rows.extend([record["row"]] if layout == "wide" else record["rows"])

    def keep(ck: Checkpoint, record: dict[str, Any]) -> None:
        """A finished checkpoint: its rows join the table, rewritten in step order."""
        rows.extend([record["row"]] if layout == "wide" else record["rows"])
        write_csv(out_dir / "dynamics.csv", table())
        clock.finish(result_line(ck.step, record["rows"]))

    if spread:
        _spread(work, todo, executor, workers, gpus_per_worker, keep, clock)
    else:
        for ck in todo:
            clock.start(ckpts.index(ck) + 1, ck.step)
            keep(ck, work(ck))
    rows = table()
    if layout == "long":
        add_diagram_distances(rows, out_dir)
    for r in rows:
        r["duplicate_of"] = duplicate_of.get(r["checkpoint"], "")
    write_csv(out_dir / "dynamics.csv", rows)
    return rows


class CheckpointWork:
    """One checkpoint's whole analysis, as a picklable callable: ``work(checkpoint)`` loads its
    weights into a fresh model from the factory, computes the Hessian (saved to
    ``hessian.npz`` as soon as computed), runs :func:`analyze` on each subspace into
    ``<out>/<checkpoint>/<subspace>/``, writes ``row.json`` and returns that record.

    The same object runs in this process and on a Ray worker (it travels there once per
    worker, with the factory, loss, data and the PCA directions it holds), so a checkpoint's
    numbers do not depend on where it ran. ``stamp``: the fingerprints every row.json records
    (:meth:`Identity.stamp`); ``hashes``: each checkpoint's sha256 (checkpoints.csv).
    """

    def __init__(self, model_factory: Callable[[], Any], loss, data,
                 configs: dict[str, AnalysisConfig], out_dir: Path, *, policy: str,
                 run_name: str, extra: dict[str, Any], given: Any, hashes: dict[str, str],
                 stamp: dict[str, Any], progress: bool, executor: str):  # fmt: skip
        self.model_factory, self.loss, self.data = model_factory, loss, data
        self.configs, self.out_dir, self.policy = configs, Path(out_dir), policy
        self.run_name, self.extra, self.given = run_name, extra, given
        self.hashes, self.stamp = hashes, stamp
        self.progress, self.executor = progress, executor

    def __call__(self, ck: Checkpoint) -> dict[str, Any]:
        from saddles.executors.threads import torch_threads

        configs, loss, data, policy = self.configs, self.loss, self.data, self.policy
        ck_dir = self.out_dir / ck.name
        t0 = time.perf_counter()
        model = load_state(self.model_factory(), ck)
        row: dict[str, Any] = {
            "run": self.run_name,
            "checkpoint": ck.name,
            "step": ck.step,
            "policy": policy,
            **self.extra,
        }
        for key in ("tokens", "tokens_seen", "train_loss", "val_loss"):
            if key in ck.info:
                row[key] = ck.info[key]
        owner = next((label for label, c in configs.items() if c.hessian), None)
        solved = None  # (scalars, density, eigenpairs, seconds), saved as soon as computed
        if owner is not None:
            solved = checkpoint_hessian(model, loss, data, configs[owner], ck_dir,
                                            vectors=policy == "hessian")  # fmt: skip
        hessian_done = False
        eigenpairs = solved[2] if solved else None
        long_rows: list[dict[str, Any]] = []
        head = dict(row)
        for label, cfg in configs.items():
            analysis = analyze(
                model,
                loss,
                data,
                replace(cfg, hessian=False),
                name=f"{self.run_name}@{ck.step}",
                run_dir=ck_dir / label,
                progress=self.progress,
                given=_first(self.given, cfg.n_directions),
                eigenpairs=eigenpairs,
            )
            if label == owner:  # the checkpoint's Hessian, as analyze would have computed it
                scalars, density, eig, seconds = solved
                bottom = {k: v for k, v in analysis.hessian.items() if k.startswith("bottom_")}
                analysis = replace(analysis, config=cfg, hessian={**scalars, **bottom},
                                   density=density,
                                   eigenpairs=eig,
                                   timings={"hessian_s": seconds, **analysis.timings})  # fmt: skip
                analysis.save(ck_dir / label)
            n_params = next((land.info.get("model", {}).get("n_params")
                             for land in analysis.landscapes.values()), None)  # fmt: skip
            for r in analysis.rows():
                long_rows.append({**head, "subspace": label, **r, "n_params": n_params})
            row.update(checkpoint_columns(analysis.rows(), label, list(ROW_METRICS), cfg.seed))
            if analysis.hessian and not hessian_done:
                row.update({k: v for k, v in analysis.hessian.items() if k in CHECKPOINT_CURVATURE})
                row["top_eigenvalues"] = analysis.hessian["top_eigenvalues"]
                hessian_done = True
        row["seconds"] = round(time.perf_counter() - t0, 2)
        curvature = {k: v for r in long_rows for k, v in r.items() if k.startswith("hessian_")}
        long_rows = [{**r, **curvature, "seconds": row["seconds"]} for r in long_rows]
        ck_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "schema_version": SCHEMA_VERSION,
            **self.stamp,
            "sha256": self.hashes[ck.name],
            # Where it ran (provenance only: the numbers do not depend on it).
            "execution": {"executor": self.executor, "torch_threads": torch_threads()},
            "row": row,
            "rows": long_rows,
        }
        # Through JSON either way, so a fresh row equals the same row read back on a rerun.
        record = floats(json.loads(json.dumps(to_jsonable(record, nonfinite="string"))))
        atomic_write_text(ck_dir / "row.json", json.dumps(to_jsonable(record, nonfinite="string")))
        return record


class ModelCopies:
    """A picklable model factory: a deep copy of one template model per call (a folder of
    Hugging Face revisions shares one architecture; each revision's weights are loaded into
    a fresh copy). Unlike ``lambda: copy.deepcopy(template)`` it pickles with the standard
    library, so it travels to workers as it is."""

    def __init__(self, template: Any):
        self.template = template

    def __call__(self) -> Any:
        import copy

        return copy.deepcopy(self.template)


@dataclass(frozen=True)
class _Job:
    """One checkpoint as a unit of an executor; named by the checkpoint in errors."""

    checkpoint: Checkpoint

    def __str__(self) -> str:
        return f"checkpoint {self.checkpoint.name} (step {self.checkpoint.step})"


@dataclass(frozen=True)
class _Shipped:
    """The work as it travels to the workers: pickled on the driver (cloudpickle: functions
    and classes of modules the workers cannot import go by value), with the driver's working
    directory, from which ``module:function`` factories and losses are imported."""

    blob: bytes
    cwd: str


def _ship(work: CheckpointWork) -> _Shipped:
    """The work, pickled here, so that what does not pickle is refused before any worker
    starts (one line naming the reason)."""
    import os
    import pickle

    from saddles.executors.base import one_line

    try:
        blob = _cloudpickle().dumps(work)
    except (TypeError, pickle.PicklingError) as exc:
        raise ValueError(
            "the model factory, loss and data travel to the workers, and they do not pickle: "
            f"{one_line(exc)}"
        ) from exc
    return _Shipped(blob, os.getcwd())


def _unship(shipped: _Shipped) -> CheckpointWork:
    """Each worker's state: the work, unpickled once the driver's working directory is
    importable there too (as it is on the driver)."""
    import sys

    if shipped.cwd not in sys.path:
        sys.path.append(shipped.cwd)
    return _cloudpickle().loads(shipped.blob)


def _cloudpickle():
    try:
        import cloudpickle
    except ImportError:  # Ray carries its own copy
        from ray import cloudpickle
    return cloudpickle


def _run_job(work: CheckpointWork, job: _Job) -> dict[str, Any]:
    return work(job.checkpoint)


def _check_execution(configs: dict[str, AnalysisConfig], spread: bool, workers: int | None,
                     gpus_per_worker: float) -> None:  # fmt: skip
    """Refuse execution settings that cannot be honoured, before anything is computed."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):  # fmt: skip
        raise ValueError(f"workers must be a positive integer, not {workers!r}")
    if not gpus_per_worker >= 0:
        raise ValueError(f"gpus_per_worker must be >= 0, not {gpus_per_worker!r}")
    if not spread and (workers not in (None, 1) or gpus_per_worker):
        raise ValueError("workers and gpus_per_worker need executor='ray'")
    nested = sorted(label for label, c in configs.items() if c.executor != "local")
    if spread and nested:
        raise ValueError(
            f"checkpoints run on workers, so each landscape runs in its worker: subspace(s) "
            f"{nested} ask for executor {configs[nested[0]].executor!r}; leave it local"
        )


def _spread(work: CheckpointWork, todo: list[Checkpoint], executor, workers: int | None,
            gpus_per_worker: float, keep: Callable[[Checkpoint, dict[str, Any]], None],
            clock: _Progress) -> None:  # fmt: skip
    """Every checkpoint of ``todo`` as one unit on ``executor``'s workers (one torch thread
    each, as the Ray executor sets); ``keep(checkpoint, record)`` as each one finishes."""
    from saddles.executors.base import make_executor

    if not todo:
        return
    shipped = _ship(work)
    ex, owned = make_executor(executor, workers=workers, gpus_per_worker=gpus_per_worker)
    try:
        with ex.open(_unship, shipped, _run_job) as pool:
            clock.spread(pool.info)
            pool.run([_Job(replace(ck, path=ck.path.absolute())) for ck in todo],
                     lambda job, record: keep(job.checkpoint, record))  # fmt: skip
    finally:
        if owned:
            ex.close()


def add_diagram_distances(rows: list[dict[str, Any]], out_dir: str | Path) -> None:
    """Bottleneck distances of each checkpoint's persistence diagram to the previous
    checkpoint's and to the last one's, raw and range-normalized, as columns of the long rows
    (``bottleneck_to_previous``, ``bottleneck_to_last``, ``..._normalized``).

    Diagrams are read from the ``pairs-<kind>-<representation>.npz`` each checkpoint's
    analysis wrote (TTK's diagram: essential classes paired with the maximum), per subspace,
    direction kind and representation; rows of other direction seeds than the first get NaN
    (only the first plane's pairs are saved). In a span sweep each span is its own series
    (``pairs-<kind>-span<tag>-<representation>.npz``) and the scale summaries' rows (empty
    span) get none. Distances: :mod:`saddles.topology.distances`
    (gudhi's bottleneck distance); normalized maps each diagram by its own landscape's
    ``(v - min) / (max - min)``.
    """
    import numpy as np

    from saddles.landscape.scales import span_tag
    from saddles.topology.distances import bottleneck_distance

    out_dir = Path(out_dir)
    series: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (r.get("subspace"), r.get("direction"), r.get("representation"), r.get("sweep_span"))
        series.setdefault(key, []).append(r)
    names = ("bottleneck_to_previous", "bottleneck_to_last")
    for (subspace, kind, rep, box), members in series.items():
        first_seed = min((m.get("direction_seed") for m in members
                          if m.get("direction_seed") not in ("", None)), default="")  # fmt: skip
        diagrams = []
        for m in members:
            tag = "" if box in ("", None) else f"span{span_tag(float(box))}-"  # a sweep's span
            path = out_dir / str(m["checkpoint"]) / str(subspace) / f"pairs-{kind}-{tag}{rep}.npz"
            wanted = m.get("direction_seed") in ("", None, first_seed) and "value_min" in m
            if wanted and path.is_file():
                with np.load(path, allow_pickle=False) as z:
                    raw = np.stack([z["birth"], z["death"]], axis=1)
                low, high = float(m["value_min"]), float(m["value_max"])
                span = high - low
                norm = (raw - low) / span if span > 0 else np.zeros_like(raw)
                diagrams.append((m, raw, norm))
            else:
                for n in names:
                    m[n] = m[f"{n}_normalized"] = float("nan")
        for i, (m, raw, norm) in enumerate(diagrams):
            for name, j in zip(names, (i - 1, len(diagrams) - 1), strict=True):
                if j < 0:
                    m[name] = m[f"{name}_normalized"] = float("nan")
                    continue
                m[name] = bottleneck_distance(raw, diagrams[j][1])
                m[f"{name}_normalized"] = bottleneck_distance(norm, diagrams[j][2])


def _first(directions, n: int):
    """The first ``n`` of the trajectory's principal directions."""
    if directions is None:
        return None
    if len(directions) < n:
        raise ValueError(
            f"the trajectory gives {len(directions)} principal directions (one fewer than its "
            f"checkpoints), but a subspace asks for {n}"
        )
    return replace(directions, tensors=directions.tensors[:n])


def with_policy(config: AnalysisConfig, policy: str) -> AnalysisConfig:
    """The configuration with the direction kind that ``policy`` uses."""
    kind = {"fixed": "random", "hessian": "hessian", "pca": "given"}[policy]
    return replace(config, directions=[kind])


class _Progress:
    """``checkpoint k of N (step S)`` with the time spent and an estimate of the time left
    (the mean time of the checkpoints finished so far; for display only, never in a result),
    and each checkpoint's result line as it finishes; printed and flushed at once, so a log
    file follows the run too."""

    def __init__(self, total: int, todo: int, enabled: bool):
        self.total, self.left, self.enabled = total, todo, enabled
        self.began, self.finished = time.perf_counter(), 0
        self.workers: int | None = None  # set when the checkpoints run on workers

    def start(self, index: int, step: int) -> None:
        if not self.enabled:
            return
        spent = time.perf_counter() - self.began
        left = (f", about {_duration(spent / self.finished * self.left)} left"
                if self.finished else "")  # fmt: skip
        print(f"checkpoint {index} of {self.total} (step {step}): {_duration(spent)} "
              f"elapsed{left}", flush=True)  # fmt: skip

    def spread(self, info: dict[str, Any]) -> None:
        """Checkpoints on workers: they start there, so the driver says where they run and,
        as each one finishes, how many are done (:meth:`finish`)."""
        self.workers = info.get("workers")
        if self.enabled:
            print(f"{self.left} checkpoint(s) on {self.workers} {info.get('name')} worker(s), "
                  f"{info.get('threads_per_worker')} torch thread(s) each", flush=True)  # fmt: skip

    def finish(self, line: str) -> None:
        self.finished, self.left = self.finished + 1, self.left - 1
        if self.enabled and self.workers:
            spent = time.perf_counter() - self.began
            left = (f", about {_duration(spent / self.finished * self.left)} left"
                    if self.left else "")  # fmt: skip
            print(f"{self.finished} of {self.finished + self.left} done: {_duration(spent)} "
                  f"elapsed{left}", flush=True)  # fmt: skip
        if self.enabled:
            print(line, flush=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def result_line(step: int, rows: list[dict[str, Any]]) -> str:
    """One line for a finished checkpoint: minima, saddles and average persistence of each
    subspace x direction kind x representation (the first direction seed), the top Hessian
    eigenvalue."""
    seen, parts = set(), []
    for r in rows:
        key = (r.get("subspace"), r.get("direction"), r.get("representation"))
        if key in seen or "n_minima" not in r:  # a sweep: its first span
            continue
        seen.add(key)
        persistence = _short(r.get("average_persistence"))
        parts.append(f"{key[0]} {key[1]} {key[2]}: minima {r.get('n_minima')} saddles "
                     f"{r.get('n_saddles')} persistence {persistence}")  # fmt: skip
    top = rows[0].get("hessian_top_eigenvalue") if rows else None
    curvature = f"; top eigenvalue {_short(top)}" if top is not None else ""
    return f"step {step} done: {'; '.join(parts)}{curvature}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _pca_directions(model_factory, ckpts: list[Checkpoint], configs) -> Any:
    from saddles.directions import trajectory_pca

    if len(ckpts) < 3:
        raise ValueError("the 'pca' policy needs at least three checkpoints")
    n = max(c.n_directions for c in configs.values())
    final = load_state(model_factory(), ckpts[-1])
    states = [load_state(model_factory(), ck) for ck in ckpts[:-1]]
    return trajectory_pca(final, states, n=min(n, len(states)))
