"""A resumable landscape run on disk: ``config.json``, ``chunks/<start>-<stop>.npz``, and the
finished ``landscape.npz`` + ``.json``.

Each finished chunk is written atomically (temporary file + rename), so a run killed at any
point loses at most the chunk in flight. ``config.json`` records a hash of everything that
determines the values (model weights and buffers, directions, coordinates, data, loss and
metrics, dtype, device type, mode) and the :class:`~saddles.landscape.plan.Plan`. A run
restarted with ``resume=True`` and the same configuration skips the chunks on disk and
computes the rest with the same plan, so its values are bit-identical to an uninterrupted
run; a different configuration is refused, naming what differs. A finished run of the same
configuration is returned as stored even without ``resume``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saddles.files import atomic_savez, atomic_write_text
from saddles.landscape.plan import Plan
from saddles.landscape.problem import Problem, basis_of
from saddles.landscape.result import Landscape, dumps
from saddles.sampling import Coordinates

RUN_FORMAT_VERSION = 1

log = logging.getLogger(__name__)


class RunDir:
    """A resumable run directory (see the module docstring)."""

    def __init__(self, path: Path, config: dict[str, Any], plan: Plan | None):
        self.path = path
        self.config = config
        self.plan = plan

    @classmethod
    def open(
        cls, path, problem: Problem, coords: Coordinates, train_mode: bool, resume: bool
    ) -> RunDir:
        """Start a run in ``path``, or reopen the one there (``resume``, same configuration).

        A *finished* run of the same configuration is reopened without ``resume`` too, so
        rerunning a notebook cell returns the stored landscape instead of failing; an
        unfinished or different run there is still refused without ``resume``.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"run directory {path} is a file; name a directory")
        parts = config_parts(problem, coords, train_mode)
        digest = hashlib.sha256(dumps(parts).encode()).hexdigest()
        config = {
            "format": "saddles.run",
            "version": RUN_FORMAT_VERSION,
            "config_hash": digest,
            "parts": parts,
            "n_points": coords.n_points,
            "value_names": problem.value_names,
            "columns": problem.columns,
            "plan": None,
        }
        cfg_file = path / "config.json"
        if cfg_file.exists():
            stored = json.loads(cfg_file.read_text())
            same = stored.get("config_hash") == digest
            if not resume and not (same and cls(path, stored, None).finished()):
                raise FileExistsError(
                    f"{path} already holds a run; pass resume=True (CLI: --resume) to continue "
                    "it, or choose another directory"
                )
            if not resume:  # a finished run of this configuration: evaluate returns it
                log.info("the run in %s is finished with this configuration; reusing it", path)
            if not same:
                old = stored.get("parts", {})
                differ = [k for k in parts if old.get(k) != parts[k]] or ["format"]
                raise ValueError(
                    f"refusing to resume the run in {path}: its configuration differs in "
                    f"{', '.join(differ)}. Use the same model, directions, coordinates, data, "
                    "loss and settings, or a new directory (a shuffling DataLoader gives "
                    "different data on every run)."
                )
            plan = stored.get("plan")
            stored["columns"] = problem.columns  # a run made before the columns had none
            return cls(path, stored, Plan.from_dict(plan) if plan else None)
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path} is not empty and holds no saddles run; choose another")
        (path / "chunks").mkdir(parents=True, exist_ok=True)
        run = cls(path, config, None)
        atomic_write_text(cfg_file, dumps(config))
        return run

    def check_center(self, center: np.ndarray) -> None:
        """Record the unperturbed loss (and metrics) on a new run; on a resumed one, refuse if
        it changed. The configuration hash names the loss function but cannot see into a
        closure or ``functools.partial``; the centre value catches a changed loss anyway."""
        values = [float(v) for v in np.asarray(center).ravel()]
        stored = self.config.get("center")
        if stored is None:
            self.config["center"] = values
            atomic_write_text(self.path / "config.json", dumps(self.config))
            return
        stored = [float(v) for v in stored]
        if len(stored) != len(values) or not np.allclose(
            stored, values, rtol=1e-6, atol=0, equal_nan=True
        ):
            raise ValueError(
                f"refusing to resume the run in {self.path}: the unperturbed loss is "
                f"{values[0]:.6g} now but was {stored[0]:.6g} when the run was made, so the "
                "loss, its parameters or the data changed; use a new directory"
            )

    def save_plan(self, plan: Plan) -> None:
        self.plan = plan
        self.config["plan"] = plan.to_dict()
        atomic_write_text(self.path / "config.json", dumps(self.config))

    def chunk_file(self, start: int, stop: int) -> Path:
        return self.path / "chunks" / f"{start:09d}-{stop:09d}.npz"

    def save_chunk(self, start: int, stop: int, block: np.ndarray, engine: str) -> None:
        atomic_savez(self.chunk_file(start, stop), {"values": block, "engine": np.array(engine)})

    def load_chunks(self) -> dict[tuple[int, int], np.ndarray]:
        out = {}
        n = self.config["n_points"]
        # the values alone (chunks written before the standard-error column), or every column
        widths = (len(self.config["value_names"]), len(self.config.get("columns", [])))
        for f in sorted((self.path / "chunks").glob("*.npz")):
            match = re.fullmatch(r"(\d+)-(\d+)\.npz", f.name)
            if not match:
                continue
            start, stop = int(match[1]), int(match[2])
            with np.load(f, allow_pickle=False) as z:
                block = z["values"]
            fits = block.ndim == 2 and block.shape[0] == stop - start and block.shape[1] in widths
            if not (0 <= start < stop <= n) or not fits:
                raise ValueError(f"chunk file {f} does not fit this run; remove it to recompute")
            out[(start, stop)] = block
        return out

    def finished(self) -> bool:
        return (self.path / "landscape.npz").exists() and (self.path / "landscape.json").exists()

    def load_landscape(self) -> Landscape:
        return Landscape.load(self.path / "landscape")

    def save_landscape(self, landscape: Landscape) -> None:
        landscape.info["run_dir"] = str(self.path)
        landscape.save(self.path / "landscape")


def config_parts(problem: Problem, coords: Coordinates, train_mode: bool) -> dict[str, str]:
    """Hashes of everything that determines the values (engine settings do not)."""
    model = hashlib.sha256(type(problem.model).__qualname__.encode())
    for name, t in problem.model.state_dict().items():
        model.update(name.encode())
        hash_tensor(model, t)
    dirs = hashlib.sha256()
    for j in range(len(problem.params)):  # each parameter's (k, numel) basis, as it was stored
        hash_tensor(dirs, basis_of(problem, j))
    data = hashlib.sha256()
    for batch in problem.batches:
        if isinstance(batch, dict):  # by sorted key and value; tuple batches hash as before
            for key in sorted(batch):
                data.update(f"key:{key}".encode())
                hash_tensor(data, batch[key])
        else:
            for t in batch:
                hash_tensor(data, t)
    pts = hashlib.sha256(np.ascontiguousarray(coords.points).tobytes())
    pts.update(str(coords.points.shape).encode())
    parts = {
        "model": model.hexdigest(),
        "directions": dirs.hexdigest(),
        "coordinates": pts.hexdigest(),
        "data": data.hexdigest(),
        "loss_and_metrics": json.dumps(problem.ids, sort_keys=True),
        "dtype": str(problem.dtype),
        "device": problem.device.type,
        "train_mode": str(bool(train_mode)),
    }
    if getattr(problem, "autocast", None):  # only when set: older runs keep their hash
        parts["autocast"] = problem.autocast
    if getattr(problem, "auto", None) is not None:  # eval_tokens="auto" and its target
        parts["eval_tokens"] = f"auto:{problem.auto.relative!r}"
    if coords.info.get("kind") == "adaptive":  # which points are evaluated, and their order
        from saddles.landscape.adaptive import ESTIMATE  # a run of another estimate differs

        parts["adaptive"] = json.dumps({**coords.info["adaptive"], "estimate": ESTIMATE},
                                       sort_keys=True)  # fmt: skip
    return parts


def hash_tensor(h, t: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and bytes into a hashlib object."""
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
