"""What a checkpoint folder of a dynamics run keeps, and when it is reused.

Owns the identity a folder was analyzed under (:class:`Identity`: this release's fingerprints
over :meth:`~saddles.runs.config.AnalysisConfig.identity` with ``schema_version``, and the
previous release's, read from its config.yaml), the sha256 of the weights a finished checkpoint
recorded (:func:`stored_hash`), and the checkpoint's saved Hessian (:func:`checkpoint_hessian`:
:func:`~saddles.runs.analyze.compute_hessian`'s record as ``hessian.json``, reused only for the
same identity, weights and data; eigenvectors in ``hessian.npz`` when the directions need
them). :mod:`saddles.runs.series` runs the checkpoints and asks this module what to skip,
resume or redo. Imports torch only inside functions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from saddles.files import atomic_savez, atomic_write_text, to_jsonable
from saddles.runs.config import SCHEMA_VERSION, AnalysisConfig


def stored_hash(ck_dir: Path) -> str | None:
    """The weights' sha256 a finished checkpoint's row.json recorded (None: none recorded)."""
    done = ck_dir / "row.json"
    if not done.is_file():
        return None
    return json.loads(done.read_text()).get("sha256")


def floats(obj: Any) -> Any:
    """``"nan"``, ``"inf"`` and ``"-inf"`` (how row.json stores them) back to floats."""
    if isinstance(obj, dict):
        return {k: floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [floats(v) for v in obj]
    if obj in ("nan", "inf", "-inf"):
        return float(obj)
    return obj


def fingerprint(configs: dict[str, AnalysisConfig], policy: str, trajectory=None) -> str:
    """A hash of the policy, the trajectory (PCA) and each subspace's identity
    (:meth:`AnalysisConfig.identity`: a field added later with its default changes nothing)."""
    return digest({"policy": policy, "trajectory": trajectory,
                    **{k: c.identity() for k, c in configs.items()}})  # fmt: skip


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def read_settings(path: Path) -> dict[str, Any] | None:
    """A dynamics folder's config.yaml as written (None when absent or unreadable)."""
    try:
        stored = yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError:
        return None
    return stored if isinstance(stored, dict) else None


class Identity:
    """What a checkpoint folder must have been analyzed with to be reused or extended.

    A folder of this release records ``schema_version`` and fingerprints of the identity. One
    written before versioning hashed every field of its configuration (its config.yaml): its
    fingerprints count as equal when that configuration's identity is today's.
    """

    def __init__(self, configs: dict[str, AnalysisConfig], policy: str, trajectory,
                 stored: dict[str, Any] | None):  # fmt: skip
        self.labels = list(configs)
        self.fingerprint = fingerprint(configs, policy, trajectory)
        self.config_fingerprint = fingerprint(configs, policy)
        self.identity = {"policy": policy, "trajectory": trajectory,
                         "subspaces": {k: c.identity() for k, c in configs.items()}}  # fmt: skip
        self.legacy: tuple[str, ...] = ()
        old = (stored or {}).get("subspaces")
        if stored and "schema_version" not in stored and isinstance(old, dict):
            try:
                then = {k: AnalysisConfig.from_dict(v).identity() for k, v in old.items()}
            except (ValueError, TypeError):
                return
            now = {k: c.identity() for k, c in configs.items()}
            if stored.get("policy") == policy and then == now:
                self.legacy = (digest({"policy": policy, "trajectory": trajectory, **old}),
                               digest({"policy": policy, "trajectory": None, **old}))  # fmt: skip

    def stamp(self) -> dict[str, Any]:
        """What a row.json made now records about its configuration."""
        return {"fingerprint": self.fingerprint, "config_fingerprint": self.config_fingerprint,
                "identity": self.identity}  # fmt: skip

    def fresh(self, record: dict[str, Any]) -> bool:
        """Was this row.json made with this identity (and, for PCA, this trajectory)?"""
        if record.get("fingerprint") == self.fingerprint:
            return True
        return "schema_version" not in record and record.get("fingerprint") in self.legacy[:1]

    def same_config(self, record: dict[str, Any]) -> bool:
        return record.get("config_fingerprint") in (self.config_fingerprint, *self.legacy[1:])

    def finished(self, ck_dir: Path, layout: str) -> bool:
        """Does ``ck_dir`` hold a row of this identity, in a form ``layout`` can use?"""
        done = ck_dir / "row.json"
        if not done.is_file():
            return False
        record = json.loads(done.read_text())
        return self.fresh(record) and (layout == "wide" or "rows" in record)

    def prepare(self, ck_dir: Path) -> None:
        """Before (re)analyzing a checkpoint: refuse a folder of another configuration, drop
        landscapes made from another trajectory (PCA; its Hessian is kept), and record what
        this analysis is (``started.json``), so that an interrupted one resumes."""
        marker = next((ck_dir / n for n in ("row.json", "started.json")
                       if (ck_dir / n).is_file()), None)  # fmt: skip
        if marker is not None:
            record = json.loads(marker.read_text())
            if not self.same_config(record):
                raise ValueError(
                    f"{ck_dir} was analyzed with another configuration or policy; use another "
                    "output directory or delete it"
                )
            if not self.fresh(record):  # the same configuration; the trajectory changed
                for label in self.labels:
                    shutil.rmtree(ck_dir / label, ignore_errors=True)
                (ck_dir / "row.json").unlink(missing_ok=True)
        ck_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(ck_dir / "started.json", json.dumps({
            "schema_version": SCHEMA_VERSION, "fingerprint": self.fingerprint,
            "config_fingerprint": self.config_fingerprint}))  # fmt: skip


def checkpoint_hessian(model, loss, data, config: AnalysisConfig, ck_dir: Path, *,
                        vectors: bool):  # fmt: skip
    """The checkpoint's Hessian ``(scalars, density, eigenpairs, seconds)`` as
    :func:`saddles.runs.analyze.hessian_metrics` computes it for ``config``, saved as soon as
    computed: ``hessian.json`` is :func:`~saddles.runs.analyze.compute_hessian`'s record (the
    file ``saddles hessian`` writes) with the key it is reused under (the configuration's
    identity, the weights and the data); ``hessian.npz`` holds the eigenvectors, kept only when
    ``vectors`` (the "hessian" policy's directions: at LM scale they are the size of k
    models)."""
    import saddles.runs.analyze as pipeline

    key = digest([config.identity(), content_digest(model, data)])
    meta_file, arrays_file = ck_dir / "hessian.json", ck_dir / "hessian.npz"
    if meta_file.is_file():
        record = floats(json.loads(meta_file.read_text()))
        if record.get("key") == key and (record.get("vectors") or not vectors):
            found = read_hessian(model, record, arrays_file if vectors else None)
            if found is not None:
                return found
    import torch

    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    t0 = time.perf_counter()
    record, density, eig = pipeline.hessian_record(model, loss, data, config, dtype)
    seconds = time.perf_counter() - t0
    ck_dir.mkdir(parents=True, exist_ok=True)
    if vectors:
        atomic_savez(arrays_file, {"vectors": eig.vectors,
                                   "eigenvectors": flat_vectors(eig.eigenvectors)})  # fmt: skip
    record = {**record, "schema_version": SCHEMA_VERSION, "key": key, "vectors": vectors,
              "seconds": seconds}  # fmt: skip
    atomic_write_text(meta_file, json.dumps(to_jsonable(record, nonfinite="string")))
    return pipeline.hessian_scalars(record), density, eig, seconds


def content_digest(model, data) -> str:
    """A hash of the model's weights and buffers and of the data (tensors and arrays by their
    bytes), so that a saved Hessian is reused only for the same checkpoint and data."""
    import numpy as np
    import torch

    from saddles.landscape.rundir import hash_tensor

    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        hash_tensor(h, t)

    def walk(obj) -> None:
        if isinstance(obj, np.ndarray) and obj.dtype != object:
            obj = torch.from_numpy(np.ascontiguousarray(obj))
        if isinstance(obj, torch.Tensor):
            hash_tensor(h, obj)
        elif isinstance(obj, dict):
            for k in sorted(obj, key=str):
                h.update(f"key:{k}".encode())
                walk(obj[k])
        elif isinstance(obj, (list, tuple)):
            h.update(f"[{len(obj)}".encode())
            for v in obj:
                walk(v)
        else:
            h.update(repr(obj).encode())

    walk(data)
    return h.hexdigest()[:16]


def flat_vectors(eigenvectors):
    """Parameter-shaped eigenvectors as a (k, n_params) array (float32 holds float16 and
    bfloat16 exactly; float64 otherwise)."""
    import numpy as np
    import torch

    low = all(t.dtype in (torch.float32, torch.float16, torch.bfloat16)
              for vec in eigenvectors for t in vec)  # fmt: skip
    wide = torch.float32 if low else torch.float64
    return np.stack([torch.cat([t.detach().cpu().to(wide).reshape(-1) for t in vec]).numpy()
                     for vec in eigenvectors])  # fmt: skip


def read_hessian(model, record: dict[str, Any], path: Path | None):
    """A saved checkpoint Hessian (its record, and the eigenvectors in ``path`` when given)
    back as ``(scalars, density, eigenpairs, seconds)``; None when the eigenvectors do not fit
    ``model``'s parameters."""
    import numpy as np
    import torch

    from saddles.hessian import Eigenpairs, SpectralDensity
    from saddles.runs.analyze import hessian_scalars

    eigenvectors: list = []
    vectors = None
    if path is not None:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            flat, vectors = z["eigenvectors"], z["vectors"]
        params = list(model.parameters())
        if flat.shape[1] != sum(p.numel() for p in params):
            return None
        for row in flat:
            pieces = torch.from_numpy(row.copy()).split([p.numel() for p in params])
            eigenvectors.append([t.reshape(p.shape).to(device=p.device, dtype=p.dtype)
                                 for t, p in zip(pieces, params, strict=True)])  # fmt: skip
    eigen, dens = record["eigen"], record["density"]
    eig = Eigenpairs(eigenvalues=np.array(eigen["eigenvalues"]),
                     residual_norms=np.array(eigen["residual_norms"]),
                     converged=np.array(eigen["converged"]), vectors=vectors,
                     eigenvectors=eigenvectors, n_hvps=int(eigen["n_hvps"]),
                     which=eigen["which"], tol=float(eigen["tol"]),
                     strategy=eigen.get("strategy", ""), restarts=int(eigen.get("restarts", 0)),
                     hvp_noise=eigen.get("hvp_noise"))  # fmt: skip
    density = SpectralDensity(grid=np.array(dens["grid"]), density=np.array(dens["density"]),
                              nodes=np.array(dens["nodes"]), weights=np.array(dens["weights"]),
                              sigma=float(dens["sigma"]),
                              n_hvps=int(dens["n_lanczos"]) * int(dens["n_runs"]),
                              max_basis=int(dens.get("max_basis", 0)))  # fmt: skip
    return hessian_scalars(record), density, eig, float(record["seconds"])
