"""What an analysis computes: :class:`AnalysisConfig`, one frozen-free dataclass read from YAML.

Owns the analysis settings, their validation and the configuration's identity (``short_id``).
Must not import torch or any stage module at its top: the command line validates a
configuration before it loads a model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from saddles.files import read_yaml
from saddles.names import AUTOCAST, FLOAT_DTYPES
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
    Uncertainty: ``direction_seeds`` random planes (seeds ``seed``, ``seed + 1``, ...) for the
    "random" kind; every topology metric is computed on every plane (Hessian and given
    directions are deterministic: one plane). ``noise_points`` points of each landscape are
    re-evaluated in float64 for its noise floor (:mod:`saddles.landscape.noise`; 0: off), and
    ``n_minima_above_noise``/``n_saddles_above_noise`` count the features above it.
    Execution: ``executor`` ("local" or "ray") and ``workers`` for the landscapes' chunks
    (:mod:`saddles.executors`); the values do not depend on them.
    Parameters: ``params``, a spec of :mod:`saddles.io.params` (``include``/``exclude`` name
    globs, ``exclude_1d``, ``types``) or None for all: directions move only the selected
    parameters and the Hessian is taken over them. At LM scale: ``autocast`` ("bf16"/"fp16")
    runs the landscapes' forwards under ``torch.autocast`` (adds rounding noise, which the
    float64 noise floor measures), and ``eval_tokens`` evaluates each point on the data's
    first N tokens only (whole sequences; the Hessian uses all the data).
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
    direction_seeds: int = 1
    noise_points: int = 32
    executor: str = "local"
    workers: int | None = None
    params: dict[str, Any] | None = None
    autocast: str | None = None
    eval_tokens: int | None = None

    def __post_init__(self) -> None:
        # Types first, so a YAML typo ("7" for 7, a bare string for a list) is named clearly.
        # Booleans must be booleans: YAML reads `hessian: "no"` as a non-empty string, true.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("bool", bool) and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be true or false, not {value!r}")
        for name in ("directions", "representations"):
            value = getattr(self, name)
            if not isinstance(value, (str, list, tuple)):
                raise ValueError(f"{name} must be a list of names, not {value!r}")
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
            "direction_seeds": 1,
            "noise_points": 0,
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
        from saddles.names import EXECUTORS

        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, not {self.executor!r}")
        if self.workers is not None and (
            not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1
        ):
            raise ValueError(f"workers must be a positive integer, not {self.workers!r}")
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
        if self.dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, not {self.dtype!r}")
        from saddles.io.params import check_spec

        self.params = check_spec(self.params) or None
        if self.autocast is not None and self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be null or one of {AUTOCAST}, not {self.autocast!r}")
        if self.eval_tokens is not None and (
            not isinstance(self.eval_tokens, int)
            or isinstance(self.eval_tokens, bool)
            or self.eval_tokens < 1
        ):
            raise ValueError(f"eval_tokens must be a positive integer, not {self.eval_tokens!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AnalysisConfig:
        """Build from a dict, rejecting unknown keys by name."""
        if not isinstance(values, dict):
            raise ValueError(
                "the analysis settings must be a mapping of AnalysisConfig fields "
                f"(name: value), not {type(values).__name__} {values!r}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown analysis setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AnalysisConfig:
        """The ``analysis:`` mapping of a YAML file (errors name the file and the key)."""
        try:
            return cls.from_dict(read_yaml(path).get("analysis") or {})
        except ValueError as exc:
            if str(exc).startswith(str(path)):
                raise
            raise ValueError(f"{path}: analysis: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def short_id(self) -> str:
        """8 hex digits naming this configuration, for per-configuration run directories."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]
