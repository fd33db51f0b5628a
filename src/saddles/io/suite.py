"""A training run's checkpoints as users have them: found, ordered by step, hashed, checked.

A checkpoint is a state-dict file (``.safetensors``, ``.pt``, ``.pth``) or a Hugging Face
folder (``model.safetensors``, a sharded ``model.safetensors.index.json``, or
``pytorch_model.bin`` inside; e.g. one folder per revision). The step comes from a JSON sidecar
(``<name>.json`` beside it, with a ``step`` key and optionally ``tokens``, ``train_loss``,
``val_loss``), from a Trainer's ``trainer_state.json`` (``global_step``) inside a folder, or
from the name: ``step1000``, ``step_001000``, ``checkpoint-1000``, ``ckpt-5`` (else the last
integer in the name).

- :func:`discover_checkpoints` finds them and orders them by step; :func:`select_steps` keeps
  some; :func:`load_state` loads one into a model (:func:`saddles.io.checkpoints.load_into`).
- :func:`weights_hash` is a sha256 over the tensors themselves (names, dtypes, shapes, bytes;
  never file names or paths), and :func:`check_suite` hashes every checkpoint and marks
  revisions whose weights are byte-identical to another's. Public suites are not always what
  they claim: for Pythia-2.8B, 86 of the 154 step branches serve end-of-training weights
  (EleutherAI/pythia issue 205); a study over such a folder would measure nothing.

Imports torch only through :mod:`saddles.io.checkpoints`, inside functions; must not import
runs, report or the command line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
#: Weight files of a Hugging Face checkpoint folder, in order of preference.
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
              "pytorch_model.bin.index.json")  # fmt: skip
_STEP = re.compile(r"(?:step|checkpoint|ckpt|iter|revision)[_-]?(\d+)", re.IGNORECASE)
#: Columns of checkpoints.csv, in order.
SUITE_COLUMNS = (
    "step",
    "checkpoint",
    "path",
    "n_params",
    "sha256",
    "duplicate_of",
    "bytes",
    "modified_ns",
)


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
    """Load a checkpoint (file or Hugging Face folder) into ``model`` and return it, through
    :func:`saddles.io.checkpoints.load_into` (safe reading; stored names matched to the
    model's: transformers' renamings, a wrapper's prefix, tied weights)."""
    from saddles.io.checkpoints import load_into

    path = checkpoint.path if isinstance(checkpoint, Checkpoint) else Path(checkpoint)
    return load_into(model, path)


def read_state(path: str | Path) -> dict[str, Any]:
    """The tensors of a checkpoint file or folder, names as stored, on the CPU."""
    from saddles.io.checkpoints import folder_state_dict, load_state_dict

    path = Path(path)
    return folder_state_dict(path) if path.is_dir() else load_state_dict(path)


def weights_hash(state: Mapping[str, Any]) -> str:
    """sha256 over a state dict's tensors, in name order: each name, dtype, shape and raw bytes.
    Equal hashes mean byte-identical weights under the same names, whatever the files are
    called or however they are sharded."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def check_suite(
    checkpoints: list[Checkpoint], cache: str | Path | None = None
) -> list[dict[str, Any]]:
    """One row per checkpoint (:data:`SUITE_COLUMNS`): step, name, path, parameter count, the
    sha256 of its weights, and ``duplicate_of``: for checkpoints whose weights are
    byte-identical to others', the name of the latest-step one among them (the checkpoint a
    suite's mislabelled branches usually copy is its final one), empty otherwise. Reads one
    checkpoint at a time. ``cache``: a checkpoints.csv written before; a checkpoint whose
    weight files have the same size and modification time there is not read again."""
    known = {}
    if cache is not None and Path(cache).is_file():
        import csv

        with open(cache, newline="") as f:
            known = {r["path"]: r for r in csv.DictReader(f)}
    rows = []
    for ck in checkpoints:
        size, modified = _stamp(ck.path)
        old = known.get(str(ck.path))
        if (
            old is not None
            and old.get("bytes") == str(size)
            and old.get("modified_ns") == str(modified)
        ):
            n_params, digest = int(old["n_params"]), old["sha256"]
        else:
            state = read_state(ck.path)
            n_params = int(sum(t.numel() for t in state.values()))
            digest = weights_hash(state)
            del state
        rows.append({"step": ck.step, "checkpoint": ck.name, "path": str(ck.path),
                     "n_params": n_params, "sha256": digest, "duplicate_of": "", "bytes": size,
                     "modified_ns": modified})  # fmt: skip
    latest: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: r["step"]):
        latest[row["sha256"]] = row["checkpoint"]
    for row in rows:
        owner = latest[row["sha256"]]
        if owner != row["checkpoint"]:
            row["duplicate_of"] = owner
    return rows


def _stamp(path: Path) -> tuple[int, int]:
    """Total size and latest modification time (ns) of a checkpoint's files."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


def duplicates_message(rows: list[dict[str, Any]]) -> str:
    """One line naming the duplicated revisions of :func:`check_suite`'s rows ("" if none)."""
    dup = [r for r in rows if r["duplicate_of"]]
    if not dup:
        return ""
    shown = ", ".join(f"step {r['step']} = {r['duplicate_of']}" for r in dup[:6])
    more = f" and {len(dup) - 6} more" if len(dup) > 6 else ""
    return (f"{len(dup)} of {len(rows)} checkpoints hold weights byte-identical to another "
            f"checkpoint's ({shown}{more})")  # fmt: skip
