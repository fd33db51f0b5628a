"""Topology and curvature over a training run: one analysis per checkpoint, incrementally.

:func:`discover_checkpoints` finds a run's checkpoints (``.safetensors`` or ``.pt`` state
dicts) and orders them by training step, read from a JSON sidecar (``<name>.json`` with a
``step`` key, and optionally ``tokens``, ``train_loss``, ``val_loss``) or else from the last
integer in the file name. :func:`analyze_checkpoints` runs :func:`saddles.pipeline.analyze` on
each checkpoint and writes one row per checkpoint to ``dynamics.csv``: step, tokens, losses,
every topology metric per subspace and representation (columns ``<subspace>.<representation>
.<metric>``), and the Hessian's top eigenvalues and trace. Finished checkpoints are recorded
in ``<out>/<checkpoint>/row.json``; a rerun analyzes only checkpoints without one (new ones),
and refuses a directory analyzed under another configuration.

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
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from saddles.files import atomic_write_text, to_jsonable
from saddles.names import POLICIES
from saddles.pipeline import AnalysisConfig, analyze, write_csv

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
#: Per-representation topology metrics copied into the dynamics table.
ROW_METRICS = (
    "n_minima",
    "n_saddles",
    "n_merge_events",
    "average_persistence",
    "average_finite_persistence",
    "max_finite_persistence",
    "persistence_entropy",
    "n_loops",
    "average_loop_persistence",
)


@dataclass(frozen=True)
class Checkpoint:
    """A state-dict file, its training step, and whatever its sidecar says (tokens, losses)."""

    path: Path
    step: int
    info: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.stem


def discover_checkpoints(directory: str | Path) -> list[Checkpoint]:
    """Checkpoints in ``directory``, ordered by step (see the module docstring)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    found = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in CHECKPOINT_SUFFIXES or not path.is_file():
            continue
        sidecar = path.with_suffix(".json")
        info: dict[str, Any] = {}
        if sidecar.exists():
            try:
                info = json.loads(sidecar.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"sidecar {sidecar} is not valid JSON: {exc}") from exc
        if "step" in info:
            step = int(info["step"])
        else:
            numbers = re.findall(r"\d+", path.stem)
            if not numbers:
                raise ValueError(
                    f"cannot tell the training step of {path.name}: put it in the name "
                    f"(e.g. step_000100{path.suffix}) or in a sidecar {sidecar.name} with 'step'"
                )
            step = int(numbers[-1])
        found.append(Checkpoint(path, step, info))
    if not found:
        raise FileNotFoundError(f"no checkpoints ({', '.join(CHECKPOINT_SUFFIXES)}) in {directory}")
    found.sort(key=lambda c: c.step)
    steps = [c.step for c in found]
    dupes = sorted({s for s in steps if steps.count(s) > 1})
    if dupes:
        raise ValueError(f"several checkpoints claim step(s) {dupes} in {directory}")
    return found


def load_state(model, checkpoint: Checkpoint | str | Path):
    """Load a checkpoint's state dict into ``model`` (:func:`saddles.checkpoints.load_into`:
    safetensors, or ``torch.load`` with ``weights_only=True``, never arbitrary objects)."""
    from saddles.checkpoints import load_into

    path = checkpoint.path if isinstance(checkpoint, Checkpoint) else Path(checkpoint)
    return load_into(model, path)


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
) -> list[dict[str, Any]]:
    """Analyze every checkpoint not yet analyzed in ``out_dir``; return all rows by step.

    ``configs``: one :class:`AnalysisConfig` or ``{label: config}`` for several subspaces;
    the Hessian (top eigenvalues, trace, density) is computed once per checkpoint, in the
    first subspace whose config asks for it. ``extra`` is copied into every row (e.g. the
    model size). Each row is written to ``dynamics.csv`` as soon as its checkpoint is done.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    if isinstance(configs, AnalysisConfig):
        configs = {f"{configs.n_directions}d": configs}
    configs = {label: with_policy(cfg, policy) for label, cfg in configs.items()}
    if policy == "hessian":  # one eigen-solve per checkpoint serves every subspace
        k = max(c.n_directions for c in configs.values())
        first = next(iter(configs))
        configs[first] = replace(
            configs[first], hessian=True, hessian_top_k=max(k, configs[first].hessian_top_k)
        )
    ckpts = checkpoints if isinstance(checkpoints, list) else discover_checkpoints(checkpoints)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(configs, policy)
    given = None
    if policy == "pca":
        given = _pca_directions(model_factory, ckpts, configs)
        # The directions depend on the whole trajectory: a row made from other checkpoints
        # is stale, and is recomputed rather than mixed with fresh ones.
        trajectory = [(c.name, c.step) for c in ckpts]
        fingerprint = _fingerprint(configs, policy, trajectory)
    rows = []
    for ck in ckpts:
        ck_dir = out_dir / ck.name
        done = ck_dir / "row.json"
        if done.exists():
            record = json.loads(done.read_text())
            if record.get("fingerprint") == fingerprint:
                rows.append(record["row"])
                continue
            if record.get("config_fingerprint") != _fingerprint(configs, policy):
                raise ValueError(
                    f"{ck_dir} was analyzed with another configuration or policy; use another "
                    "output directory or delete it"
                )
            shutil.rmtree(ck_dir)  # same configuration, but the trajectory (PCA) changed
        t0 = time.perf_counter()
        model = load_state(model_factory(), ck)
        row: dict[str, Any] = {
            "run": run_name,
            "checkpoint": ck.name,
            "step": ck.step,
            "policy": policy,
            **(extra or {}),
        }
        for key in ("tokens", "tokens_seen", "train_loss", "val_loss"):
            if key in ck.info:
                row[key] = ck.info[key]
        hessian_done = False
        eigenpairs = None
        for label, cfg in configs.items():
            cfg = replace(cfg, hessian=cfg.hessian and not hessian_done)
            analysis = analyze(
                model,
                loss,
                data,
                cfg,
                name=f"{run_name}@{ck.step}",
                run_dir=ck_dir / label,
                progress=progress,
                given=_first(given, cfg.n_directions),
                eigenpairs=eigenpairs,
            )
            eigenpairs = eigenpairs or analysis.eigenpairs
            for kind, reps in analysis.topology.items():
                for rep, metrics in reps.items():
                    prefix = (
                        f"{label}.{rep}" if len(cfg.directions) == 1 else f"{label}.{kind}.{rep}"
                    )
                    for m in ROW_METRICS:
                        if m in metrics:
                            row[f"{prefix}.{m}"] = metrics[m]
            if analysis.hessian and not hessian_done:
                row.update(
                    {
                        k: v
                        for k, v in analysis.hessian.items()
                        if k in ("top_eigenvalue", "trace", "trace_stderr")
                    }
                )
                row["top_eigenvalues"] = analysis.hessian["top_eigenvalues"]
                hessian_done = True
        row["seconds"] = round(time.perf_counter() - t0, 2)
        ck_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "fingerprint": fingerprint,
            "config_fingerprint": _fingerprint(configs, policy),
            "row": row,
        }
        atomic_write_text(done, json.dumps(to_jsonable(record)))
        rows.append(row)
        write_csv(out_dir / "dynamics.csv", sorted(rows, key=lambda r: r["step"]))
    rows.sort(key=lambda r: r["step"])
    write_csv(out_dir / "dynamics.csv", rows)
    return rows


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


def _fingerprint(configs: dict[str, AnalysisConfig], policy: str, trajectory=None) -> str:
    blob = json.dumps(
        {
            "policy": policy,
            "trajectory": trajectory,
            **{k: c.to_dict() for k, c in configs.items()},
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _pca_directions(model_factory, ckpts: list[Checkpoint], configs) -> Any:
    from saddles.directions import trajectory_pca

    if len(ckpts) < 3:
        raise ValueError("the 'pca' policy needs at least three checkpoints")
    n = max(c.n_directions for c in configs.values())
    final = load_state(model_factory(), ckpts[-1])
    states = [load_state(model_factory(), ck) for ck in ckpts[:-1]]
    return trajectory_pca(final, states, n=min(n, len(states)))


def hypothesis_table(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Deprecated alias of :func:`saddles.experiments.lm.hypothesis_table` (the language-model
    experiment's H1-H4 table, which moved there)."""
    import warnings

    from saddles.experiments.lm.hypotheses import hypothesis_table as moved

    warnings.warn(
        "saddles.dynamics.hypothesis_table moved to saddles.experiments.lm.hypothesis_table",
        DeprecationWarning,
        stacklevel=2,
    )
    return moved(*args, **kwargs)
