"""Topology and curvature over a training run: one analysis per checkpoint, incrementally.

:func:`discover_checkpoints` finds a run's checkpoints and orders them by training step. A
checkpoint is a state-dict file (``.safetensors``, ``.pt``, ``.pth``) or a Hugging Face
folder (``model.safetensors``, a sharded ``model.safetensors.index.json``, or
``pytorch_model.bin`` inside; e.g. one folder per revision). The step comes from a JSON sidecar
(``<name>.json`` beside it, with a ``step`` key and optionally ``tokens``, ``train_loss``,
``val_loss``), from a Trainer's ``trainer_state.json`` (``global_step``) inside a folder, or
from the name: ``step1000``, ``step_001000``, ``checkpoint-1000``, ``ckpt-5`` (else the last
integer in the name). :func:`select_steps` keeps some of them.

:func:`analyze_checkpoints` runs :func:`saddles.pipeline.analyze` on each checkpoint and writes
``dynamics.csv``, in one of two layouts: ``"wide"`` (one row per checkpoint: step, tokens,
losses, the main topology metrics per subspace and representation in columns
``<subspace>.<representation>.<metric>``, the Hessian's top eigenvalues and trace) or
``"long"`` (one row per checkpoint x subspace x direction seed x representation with
``step``, ``subspace`` and every metric of :meth:`saddles.pipeline.Analysis.rows`, the same
columns as a ``saddles run`` ``metrics.csv``). Finished checkpoints are recorded in
``<out>/<checkpoint>/row.json``; a rerun analyzes only checkpoints without one (new ones), and
refuses a directory analyzed under another configuration. ``<out>/config.yaml`` records the
policy and each subspace's configuration. :func:`dynamics_report` draws every metric against
the step into ``report.html``.

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

import yaml

from saddles.files import atomic_write_text, to_jsonable
from saddles.names import POLICIES
from saddles.runs.analyze import AnalysisConfig, analyze, write_csv
from saddles.runs.registry import metrics_for
from saddles.runs.rows import checkpoint_columns

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
#: Weight files of a Hugging Face checkpoint folder, in order of preference.
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
              "pytorch_model.bin.index.json")  # fmt: skip
LAYOUTS = ("wide", "long")
_STEP = re.compile(r"(?:step|checkpoint|ckpt|iter|revision)[_-]?(\d+)", re.IGNORECASE)
#: Per-representation topology metrics copied into the wide dynamics row (the registry's
#: ``wide`` view).
ROW_METRICS = tuple(metrics_for("wide"))


@dataclass(frozen=True)
class Checkpoint:
    """A state-dict file or Hugging Face folder, its training step, and whatever its sidecar
    says (tokens, losses)."""

    path: Path
    step: int
    info: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name if self.path.is_dir() else self.path.stem


def discover_checkpoints(directory: str | Path) -> list[Checkpoint]:
    """Checkpoints in ``directory``, ordered by step (see the module docstring); folders that
    hold no weights are skipped. Refuses (``ValueError``) two checkpoints with one step."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    found = []
    for path in sorted(directory.iterdir()):
        if path.is_dir():
            if not any((path / w).is_file() for w in HF_WEIGHTS):
                continue
        elif path.suffix not in CHECKPOINT_SUFFIXES or not path.is_file():
            continue
        found.append(Checkpoint(path, *_step_and_info(path)))
    if not found:
        raise FileNotFoundError(
            f"no checkpoints ({', '.join(CHECKPOINT_SUFFIXES)} files, or folders with "
            f"{HF_WEIGHTS[0]}) in {directory}"
        )
    found.sort(key=lambda c: c.step)
    steps = [c.step for c in found]
    dupes = sorted({s for s in steps if steps.count(s) > 1})
    if dupes:
        names = [c.path.name for c in found if c.step in dupes]
        raise ValueError(f"several checkpoints claim step(s) {dupes} in {directory}: {names}")
    return found


def _step_and_info(path: Path) -> tuple[int, dict[str, Any]]:
    """The step of one checkpoint and its sidecar's contents."""
    sidecar = path.with_name(path.name + ".json") if path.is_dir() else path.with_suffix(".json")
    info: dict[str, Any] = {}
    if sidecar.exists():
        try:
            info = json.loads(sidecar.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"sidecar {sidecar} is not valid JSON: {exc}") from exc
        if not isinstance(info, dict):
            raise ValueError(f"sidecar {sidecar} must hold a JSON object, not {info!r}")
    if "step" in info:
        return _int_step(info["step"], sidecar), info
    state = path / "trainer_state.json" if path.is_dir() else None
    if state is not None and state.is_file():
        try:
            step = json.loads(state.read_text()).get("global_step")
        except (json.JSONDecodeError, AttributeError):
            step = None
        if step is not None:
            return _int_step(step, state), info
    name = path.name if path.is_dir() else path.stem
    numbers = _STEP.findall(name) or re.findall(r"\d+", name)
    if not numbers:
        raise ValueError(
            f"cannot tell the training step of {path.name}: put it in the name "
            f"(e.g. step_000100{path.suffix}) or in a sidecar {sidecar.name} with 'step'"
        )
    return int(numbers[-1]), info


def _int_step(value: Any, where: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"{where}: the step must be an integer, not {value!r}")
    return int(value)


def select_steps(checkpoints: list[Checkpoint], steps: list[int] | None) -> list[Checkpoint]:
    """The checkpoints at ``steps`` (all of them for None); a step no checkpoint has is
    refused by name, with the steps there are."""
    if steps is None:
        return checkpoints
    if isinstance(steps, int) and not isinstance(steps, bool):
        steps = [steps]
    bad = [s for s in steps if isinstance(s, bool) or not isinstance(s, int)]
    if bad or not steps:
        raise ValueError(f"steps must be a non-empty list of integers, not {steps!r}")
    have = {c.step: c for c in checkpoints}
    missing = [s for s in steps if s not in have]
    if missing:
        shown = sorted(have)
        more = f" ... ({len(shown)} in all)" if len(shown) > 12 else ""
        raise ValueError(f"no checkpoint at step(s) {missing}; the steps are "
                         f"{shown[:12]}{more}")  # fmt: skip
    return [have[s] for s in sorted(set(steps))]


def load_state(model, checkpoint: Checkpoint | str | Path):
    """Load a checkpoint into ``model`` and return it: a file through
    :func:`saddles.checkpoints.load_into` (safetensors, or ``torch.load`` with
    ``weights_only=True``, never arbitrary objects); a Hugging Face folder's weight file(s)
    through :func:`saddles.checkpoints.load_state_dict`, matched to the model's names (a
    wrapper's prefix, tied weights; see the module docstring)."""
    from saddles.io.checkpoints import load_into

    path = checkpoint.path if isinstance(checkpoint, Checkpoint) else Path(checkpoint)
    if not path.is_dir():
        return load_into(model, path)
    if (path / "config.json").is_file() and hasattr(model, "config"):
        return _load_revision(model, path)
    return _load_folder(model, path)


def _load_revision(model, folder: Path):
    """A Hugging Face revision of the model's own architecture, read by transformers itself
    (:func:`saddles.models.load_hf_model`), so that its renamings of stored keys (e.g. a
    GPT-NeoX ``embed_out`` saved under its old name) and its ties apply; then copied in."""
    from saddles.io.checkpoints import copy_state
    from saddles.io.models import load_hf_model

    return copy_state(model, load_hf_model(folder).state_dict(), folder)


def _load_folder(model, folder: Path):
    from saddles.io.checkpoints import CheckpointError, copy_state, load_state_dict

    files = []
    for name in HF_WEIGHTS:
        if (folder / name).is_file():
            if name.endswith(".index.json"):
                try:
                    shards = json.loads((folder / name).read_text())["weight_map"].values()
                except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
                    raise CheckpointError(f"{folder / name} is not a shard index") from exc
                files = [folder / f for f in dict.fromkeys(shards)]
            else:
                files = [folder / name]
            break
    if not files:
        raise CheckpointError(f"checkpoint folder {folder} holds none of {HF_WEIGHTS}")
    loaded: dict[str, Any] = {}
    for f in files:
        loaded.update(load_state_dict(f))
    own = model.state_dict()
    state = _match_names(loaded, own, folder)
    return copy_state(model, state, folder, tied=set(own) - set(state))  # ties checked


def _match_names(loaded: dict, own: dict, folder: Path) -> dict:
    """``loaded`` renamed to the model's entries: as is, or with one prefix added (a wrapper
    such as ``model.``); entries the folder lacks must be tied to one it has."""
    from saddles.io.checkpoints import CheckpointError

    ptr = {k: v.data_ptr() for k, v in own.items() if v.numel()}
    best = None
    for prefix in ["", *sorted({k.split(".")[0] + "." for k in own if "." in k})]:
        mapped = {prefix + k: v for k, v in loaded.items()}
        unexpected = sorted(set(mapped) - set(own))
        missing = sorted(set(own) - set(mapped))
        if unexpected:
            continue
        present = {ptr.get(k) for k in mapped}
        untied = [m for m in missing if ptr.get(m) is None or ptr[m] not in present]
        if not untied:
            return mapped
        best = best or (missing, untied)
    if best is None:
        extra = sorted(set(loaded) - set(own))[:4]
        raise CheckpointError(f"checkpoint {folder} does not match the model: unexpected "
                              f"entries such as {extra}")  # fmt: skip
    raise CheckpointError(f"checkpoint {folder} does not match the model: missing "
                          f"{best[1][:4]}")  # fmt: skip


def configs_from_dict(values: dict[str, Any]) -> dict[str, AnalysisConfig]:
    """``{label: AnalysisConfig}`` from an ``analysis:`` mapping: AnalysisConfig fields, and
    optionally ``subspaces: {label: {fields}}``, each subspace the base fields overridden by
    its own. Without subspaces, one labelled ``<n_directions>d``. Directions come from the
    policy, so ``directions`` is refused."""
    if not isinstance(values, dict):
        raise ValueError(f"the analysis settings must be a mapping, not {values!r}")
    base = dict(values)
    subspaces = base.pop("subspaces", None)
    own_fields = subspaces.items() if isinstance(subspaces, dict) else []
    parts = [("analysis", base), *((f"subspaces.{k}", v) for k, v in own_fields)]
    for where, fields_ in parts:
        if isinstance(fields_, dict) and "directions" in fields_:
            raise ValueError(
                f"{where}: `directions` is set by the policy (fixed: random, hessian: "
                "hessian, pca: the trajectory's principal directions)"
            )
    if subspaces is None:
        cfg = AnalysisConfig.from_dict(base)
        return {f"{cfg.n_directions}d": cfg}
    if not isinstance(subspaces, dict) or not subspaces:
        raise ValueError(f"subspaces must map labels to settings, not {subspaces!r}")
    out = {}
    for label, own in subspaces.items():
        if not isinstance(own, dict):
            raise ValueError(f"subspaces.{label} must be a mapping of settings, not {own!r}")
        try:
            out[str(label)] = AnalysisConfig.from_dict({**base, **own})
        except ValueError as exc:
            raise ValueError(f"subspaces.{label}: {exc}") from exc
    return out


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
) -> list[dict[str, Any]]:
    """Analyze every checkpoint not yet analyzed in ``out_dir``; return all rows by step.

    ``configs``: one :class:`AnalysisConfig` or ``{label: config}`` for several subspaces;
    the Hessian (top eigenvalues, trace, density) is computed once per checkpoint, in the
    first subspace whose config asks for it (in the ``"long"`` layout its numbers are copied
    into every subspace's rows). ``extra`` is copied into every row (e.g. the model size).
    ``layout``: ``"wide"`` or ``"long"`` rows (see the module docstring). The table is
    rewritten to ``dynamics.csv`` as soon as each checkpoint is done.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
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
    settings = {"policy": policy, "subspaces": {k: c.to_dict() for k, c in configs.items()}}
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(settings, sort_keys=False))
    given = None
    if policy == "pca":
        given = _pca_directions(model_factory, ckpts, configs)
        # The directions depend on the whole trajectory: a row made from other checkpoints
        # is stale, and is recomputed rather than mixed with fresh ones.
        trajectory = [(c.name, c.step) for c in ckpts]
        fingerprint = _fingerprint(configs, policy, trajectory)
    rows: list[dict[str, Any]] = []

    def table() -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: r["step"])  # stable: long rows keep their order

    for ck in ckpts:
        ck_dir = out_dir / ck.name
        done = ck_dir / "row.json"
        if done.exists():
            record = _floats(json.loads(done.read_text()))
            fresh = record.get("fingerprint") == fingerprint
            if fresh and (layout == "wide" or "rows" in record):
                rows.extend([record["row"]] if layout == "wide" else record["rows"])
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
        long_rows: list[dict[str, Any]] = []
        head = dict(row)
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
            n_params = next((land.info.get("model", {}).get("n_params")
                             for land in analysis.landscapes.values()), None)  # fmt: skip
            for r in analysis.rows():
                long_rows.append({**head, "subspace": label, **r, "n_params": n_params})
            row.update(checkpoint_columns(analysis.rows(), label, list(ROW_METRICS), cfg.seed))
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
        curvature = {k: v for r in long_rows for k, v in r.items() if k.startswith("hessian_")}
        long_rows = [{**r, **curvature, "seconds": row["seconds"]} for r in long_rows]
        ck_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "fingerprint": fingerprint,
            "config_fingerprint": _fingerprint(configs, policy),
            "row": row,
            "rows": long_rows,
        }
        # Through JSON either way, so a fresh row equals the same row read back on a rerun.
        record = _floats(json.loads(json.dumps(to_jsonable(record, nonfinite="string"))))
        atomic_write_text(done, json.dumps(to_jsonable(record, nonfinite="string")))
        rows.extend([record["row"]] if layout == "wide" else record["rows"])
        write_csv(out_dir / "dynamics.csv", table())
    rows = table()
    if layout == "long":
        add_diagram_distances(rows, out_dir)
    write_csv(out_dir / "dynamics.csv", rows)
    return rows


def add_diagram_distances(rows: list[dict[str, Any]], out_dir: str | Path) -> None:
    """Bottleneck distances of each checkpoint's persistence diagram to the previous
    checkpoint's and to the last one's, raw and range-normalized, as columns of the long rows
    (``bottleneck_to_previous``, ``bottleneck_to_last``, ``..._normalized``).

    Diagrams are read from the ``pairs-<kind>-<representation>.npz`` each checkpoint's
    analysis wrote (TTK's diagram: essential classes paired with the maximum), per subspace,
    direction kind and representation; rows of other direction seeds than the first get NaN
    (only the first plane's pairs are saved). Distances: :mod:`saddles.topology.distances`
    (gudhi's bottleneck distance); normalized maps each diagram by its own landscape's
    ``(v - min) / (max - min)``.
    """
    import numpy as np

    from saddles.topology.distances import bottleneck_distance

    out_dir = Path(out_dir)
    series: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        key = (r.get("subspace"), r.get("direction"), r.get("representation"))
        series.setdefault(key, []).append(r)
    names = ("bottleneck_to_previous", "bottleneck_to_last")
    for (subspace, kind, rep), members in series.items():
        first_seed = min((m.get("direction_seed") for m in members
                          if m.get("direction_seed") not in ("", None)), default="")  # fmt: skip
        diagrams = []
        for m in members:
            path = out_dir / str(m["checkpoint"]) / str(subspace) / f"pairs-{kind}-{rep}.npz"
            wanted = m.get("direction_seed") in ("", None, first_seed)
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


def _floats(obj: Any) -> Any:
    """``"nan"``, ``"inf"`` and ``"-inf"`` (how row.json stores them) back to floats."""
    if isinstance(obj, dict):
        return {k: _floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_floats(v) for v in obj]
    if obj in ("nan", "inf", "-inf"):
        return float(obj)
    return obj


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
