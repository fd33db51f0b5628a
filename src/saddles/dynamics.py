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

import numpy as np

from saddles._files import atomic_write_text, to_jsonable
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
    """Load a checkpoint's state dict into ``model`` (safetensors, or ``torch.load`` with
    ``weights_only=True``: never arbitrary objects)."""
    import torch

    path = checkpoint.path if isinstance(checkpoint, Checkpoint) else Path(checkpoint)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not match the model: {exc}") from exc
    return model


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


# --- the hypotheses of the notes (H1-H4), as numbers ------------------------------------------


def hypothesis_table(
    rows: list[dict[str, Any]],
    metric: str,
    persistence_metric: str,
    *,
    size_key: str = "n_params",
    early_step: int | None = None,
    kd_metrics: list[str] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Numbers, with CIs where they exist, for the notes' hypotheses on a multi-size run.

    ``rows``: the dynamics rows of every size (``size_key`` tells the sizes apart);
    ``metric``: a saddle-count column (H1, H3); ``persistence_metric``: an average persistence
    column (H2). ``early_step``: the step whose metrics are used to predict (default: the
    second-smallest step present in every size). ``kd_metrics``: kD columns compared with
    ``metric`` in H4. Each entry is ``{hypothesis, quantity, value, ci_low, ci_high, n, note}``;
    nothing here declares a hypothesis true or false.
    """
    from saddles.relations import change_points, correlate, fit_power_law, loo_errors, trend

    sizes = sorted({r[size_key] for r in rows})
    by_size = {
        s: sorted([r for r in rows if r[size_key] == s], key=lambda r: r["step"]) for s in sizes
    }
    out: list[dict[str, Any]] = []

    def add(h, quantity, value, ci=(np.nan, np.nan), n=np.nan, note=""):
        out.append(
            {
                "hypothesis": h,
                "quantity": quantity,
                "value": float(value),
                "ci_low": float(ci[0]),
                "ci_high": float(ci[1]),
                "n": n,
                "note": note,
            }
        )

    final_loss = {s: _last(by_size[s], "val_loss") for s in sizes}
    slopes = {}
    for s in sizes:
        steps = [max(r["step"], 1) for r in by_size[s]]
        t = trend(steps, [r.get(metric, np.nan) for r in by_size[s]], seed=seed)
        slopes[s] = t.slope_per_log_step
        add("H1", f"Spearman({metric}, step), size {s}", t.spearman, t.spearman_ci, t.n)
        add(
            "H1",
            f"slope of {metric} per e-fold of steps, size {s}",
            t.slope_per_log_step,
            t.slope_ci,
            t.n,
        )
    c = correlate([slopes[s] for s in sizes], [final_loss[s] for s in sizes], seed=seed)
    add(
        "H1",
        "Spearman(slope of saddles, final val loss) across sizes",
        c.spearman,
        c.spearman_ci,
        c.n,
        f"permutation p = {c.spearman_p:.3g}",
    )

    for s in sizes:
        xs = [np.log(max(r["step"], 1)) for r in by_size[s]]
        ys = [r.get(persistence_metric, np.nan) for r in by_size[s]]
        ok = np.isfinite(ys)
        if ok.sum() >= 4:
            cp = change_points(np.array(xs)[ok], np.array(ys)[ok])
            where = ", ".join(f"step {np.exp(b):.0f}" for b in cp.breaks) or "none"
            add(
                "H2",
                f"{persistence_metric}: slope changes, size {s}",
                len(cp.breaks),
                n=int(ok.sum()),
                note=f"non-monotone fit: {not cp.monotone}; breaks: {where}",
            )

    common = set.intersection(*[{r["step"] for r in by_size[s]} for s in sizes]) if sizes else set()
    steps_sorted = sorted(common)
    if early_step is None and len(steps_sorted) >= 2:
        early_step = steps_sorted[1]
    if early_step is not None and early_step not in common:
        raise ValueError(
            f"early_step {early_step} is not a checkpoint of every size; steps present in all "
            f"sizes: {steps_sorted}"
        )
    if early_step is not None and len(sizes) >= 3:
        early = {s: next(r for r in by_size[s] if r["step"] == early_step) for s in sizes}
        n_par = np.array([float(s) for s in sizes])
        early_metric = np.array([early[s].get(metric, np.nan) for s in sizes], dtype=float)
        if np.isfinite(early_metric).all() and (early_metric > 0).all() and len(sizes) >= 3:
            try:
                fit = fit_power_law(n_par, early_metric, offset=False, n_boot=500, seed=seed)
                # metric = a N^b with b = -alpha: report b and its CI.
                add(
                    "H3",
                    f"power-law exponent of {metric} at step {early_step} in size",
                    -fit.alpha,
                    (-fit.alpha_ci[1], -fit.alpha_ci[0]),
                    len(sizes),
                    f"residual RMS {np.sqrt(np.mean(fit.residuals**2)):.3g}",
                )
            except (RuntimeError, ValueError) as exc:
                add("H3", "power-law fit of the early metric", np.nan, note=str(exc))
        target = np.array([final_loss[s] for s in sizes], dtype=float)
        early_loss = np.array([early[s].get("val_loss", np.nan) for s in sizes], dtype=float)
        if len(sizes) >= 3 and np.isfinite(target).all():
            for label, feat in (
                ("early val loss alone", early_loss[:, None]),
                (f"early val loss + {metric}", np.column_stack([early_loss, early_metric])),
            ):
                if np.isfinite(feat).all() and len(sizes) >= feat.shape[1] + 2:
                    err = loo_errors(feat, target)
                    add(
                        "H3",
                        f"leave-one-size-out |error| of final val loss: {label}",
                        err.mean(),
                        n=len(sizes),
                    )
            for col in kd_metrics or []:
                feat = np.array([early[s].get(col, np.nan) for s in sizes], dtype=float)
                base = early_metric
                if np.isfinite(feat).all() and np.isfinite(base).all() and len(sizes) >= 3:
                    add(
                        "H4",
                        f"leave-one-size-out |error|: {col} vs {metric}",
                        loo_errors(feat, target).mean() - loo_errors(base, target).mean(),
                        n=len(sizes),
                        note="negative: the kD metric predicts better",
                    )
    return out


def _last(rows: list[dict[str, Any]], key: str) -> float:
    for r in reversed(rows):
        v = r.get(key)
        if v is not None and np.isfinite(float(v)):
            return float(v)
    return float("nan")
