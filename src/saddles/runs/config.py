"""What an analysis computes: :class:`AnalysisConfig`, one frozen dataclass read from YAML.

Owns the analysis settings, their validation (one table of constraints per field, checked by
:func:`check_fields`, then the few rules between fields), their defaults (the dataclass's, the
one place the command line reads them from) and the configuration's identity
(:meth:`AnalysisConfig.identity`, :meth:`AnalysisConfig.short_id`, :data:`SCHEMA_VERSION`).
Must not import torch or any stage module at its top: the command line validates a
configuration before it loads a model.

Identity. A run's identity is the set of fields that change its numbers. Fields that do not
(``executor``, ``workers``: where the chunks run) say ``identity=False`` in their metadata.
:meth:`AnalysisConfig.identity` is the dict that ``short_id`` and the dynamics fingerprint
hash: every identity field of schema version 1, and a field added later (``added_in`` > 1)
only when its value differs from its default, so that adding a field whose default keeps the
old behaviour changes no existing ``analysis-<id>`` folder or dynamics fingerprint. Non-identity
fields enter at their default value, which keeps the ids of version-1 configurations (whose
executor was local) what they were.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from saddles.files import parse_bytes, read_yaml
from saddles.landscape import adaptive as _adaptive
from saddles.names import (
    AUTOCAST,
    ENGINES,
    EVAL_TOKENS_AUTO,
    EXECUTORS,
    FLOAT_DTYPES,
    GRID_SAMPLINGS,
    HESSIAN_PLANES,
    NORMS,
    SPAN_AUTO,
    STDERR_TARGET,
)
from saddles.names import SAMPLINGS as SAMPLINGS
from saddles.topology.representations import GRID_REPRESENTATIONS as _GRID_CONNECTIVITY
from saddles.topology.representations import REPRESENTATIONS

#: The version of the run schema (these fields, row.json, config.yaml); files without one were
#: written before versioning and hold version 1's fields.
SCHEMA_VERSION = 3
DIRECTION_KINDS = ("random", "hessian", "given")


# --- constraints (in the manner of scikit-learn's _parameter_constraints) --------------------


@dataclass(frozen=True)
class Integer:
    """An int (not a bool) of at least ``low``; None allowed when ``none``."""

    low: int | None = None
    none: bool = False
    say: str = ""  # the message's wording, when not "an integer"

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.none:
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be {self.say or 'an integer'}, not {value!r}")
        if self.low is not None and value < self.low:
            if self.say:
                raise ValueError(f"{name} must be {self.say}, not {value!r}")
            raise ValueError(f"{name} must be at least {self.low}, not {value}")
        return value


@dataclass(frozen=True)
class Number:
    """A finite non-negative int or float (not a bool); None allowed when ``none``."""

    none: bool = False

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.none:
            return value
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value) or value < 0):  # fmt: skip
            raise ValueError(f"{name} must be a non-negative number, not {value!r}")
        return value


@dataclass(frozen=True)
class Tokens:
    """A token budget: None (all the data), a positive integer, or ``"auto"`` (each point as
    many as its standard error needs, :mod:`saddles.landscape.tokens`). Text from a command
    line (``"4096"``, ``"auto"``) is read as either (:func:`parse_tokens`)."""

    def __call__(self, name: str, value: Any) -> Any:
        if value is None or value == EVAL_TOKENS_AUTO:
            return value
        if isinstance(value, str):
            value = parse_tokens(name, value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer or '{EVAL_TOKENS_AUTO}', "
                             f"not {value!r}")  # fmt: skip
        return value


def parse_tokens(name: str, text: str) -> int | str:
    """``"auto"`` or a positive integer from text; a one-line error naming ``name`` else."""
    if text.strip() == EVAL_TOKENS_AUTO:
        return EVAL_TOKENS_AUTO
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer or '{EVAL_TOKENS_AUTO}', "
                         f"not {text!r}") from None  # fmt: skip
    return Tokens()(name, value)


@dataclass(frozen=True)
class Spans:
    """The half-width of the sampled box: a positive number (one landscape per plane), a list
    of positive numbers (a sweep: one landscape per span, stored sorted without repeats), or
    ``"auto"`` (a sweep chosen per direction kind, :func:`saddles.landscape.scales.auto_spans`).
    """

    def __call__(self, name: str, value: Any) -> Any:
        if value == SPAN_AUTO:
            return value
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"{name} must not be an empty list")
            for v in value:
                self._one(name, v)
            return sorted({float(v) for v in value})
        if isinstance(value, str):
            self._one(name, value)
        return Number()(name, value)  # a single span: checked as before sweeps existed

    @staticmethod
    def _one(name: str, value: Any) -> Any:
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value) or not value > 0):  # fmt: skip
            raise ValueError(f"{name} must be a positive number, a list of them or "
                             f"'{SPAN_AUTO}', not {value!r}")  # fmt: skip
        return value


def parse_span(text: str) -> float | list[float] | str:
    """A ``span`` from a command line: ``"1"``, ``"0.1,0.3,1"`` (a sweep) or ``"auto"``;
    checked as :class:`Spans` checks a configuration's (a one-line error naming span)."""
    text = text.strip()
    if text == SPAN_AUTO:
        return text
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"span must be a number, comma-separated numbers or '{SPAN_AUTO}', "
                         f"not {text!r}") from None  # fmt: skip
    value = values[0] if len(values) == 1 else values
    return Spans()("span", value)


class Fraction:
    """A number in (0, 1] (not a bool)."""

    def __call__(self, name: str, value: Any) -> Any:
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not 0 < value <= 1):  # fmt: skip
            raise ValueError(f"{name} must be a number in (0, 1], not {value!r}")
        return value


@dataclass(frozen=True)
class Bytes:
    """A memory size: None, a positive number of bytes, or text such as ``"2GiB"``; stored as
    the number of bytes (:func:`saddles.files.parse_bytes`)."""

    def __call__(self, name: str, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a number of bytes or a size such as '2GiB'")
        try:
            return parse_bytes(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class Boolean:
    """true or false; YAML reads ``hessian: "no"`` as a non-empty string, which is refused."""

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, not {value!r}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of ``options``; None allowed when ``none``."""

    options: tuple[str, ...]
    none: bool = False

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.none:
            return value
        if value not in self.options:
            null = "null or " if self.none else ""
            raise ValueError(f"{name} must be {null}one of {self.options}, not {value!r}")
        return value


@dataclass(frozen=True)
class Names:
    """A non-empty list of names from ``options`` (a single name becomes a list of one)."""

    options: tuple[str, ...]
    unknown: str  # the message for names not in options: {bad} and {options} filled in

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, (str, list, tuple)):
            raise ValueError(f"{name} must be a list of names, not {value!r}")
        value = [value] if isinstance(value, str) else list(value)
        bad = [v for v in value if v not in self.options]
        if bad or not value:
            raise ValueError(self.unknown.format(name=name, bad=bad, options=self.options))
        return value


@dataclass(frozen=True)
class Text:
    """Any string."""

    def __call__(self, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, not {value!r}")
        return value


@dataclass(frozen=True)
class ParamSpec:
    """A parameter selection of :mod:`saddles.io.params` in canonical form, or None (all)."""

    def __call__(self, name: str, value: Any) -> Any:
        from saddles.io.params import check_spec  # torch-free

        return check_spec(value) or None


def setting(default: Any, check, *, identity: bool = True, added_in: int = 1):
    """A field of :class:`AnalysisConfig`: its default, its constraint, whether it changes the
    numbers (``identity``), and the schema version that added it (see the module docstring)."""
    meta = {"check": check, "identity": identity, "added_in": added_in}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def default_of(f) -> Any:
    """A dataclass field's default value."""
    return f.default_factory() if f.default is MISSING else f.default


def check_fields(obj) -> None:
    """Check every field of a frozen dataclass against its ``check`` constraint, storing the
    canonical value the constraint returns (a name becomes a list of one, ...)."""
    for f in fields(obj):
        value = f.metadata["check"](f.name, getattr(obj, f.name))
        object.__setattr__(obj, f.name, value)


@dataclass(frozen=True)
class AnalysisConfig:
    """What :func:`analyze` computes. Every field has a default; YAML files may set any subset.

    Directions: ``directions`` lists the kinds ("random": Gaussian, normalized by ``norm``,
    seeded by ``seed``; "hessian": the top ``n_directions`` Hessian eigenvectors, then
    normalized by ``norm`` too, so both kinds have filter-wise comparable scales by default;
    "given": directions passed to :func:`analyze`, e.g. a trajectory's PCA, normalized too).
    Sampling: ``"grid"``, a ``resolution``-per-axis grid on ``[-span, span]^n_directions``
    (1 to 3 directions); ``"adaptive"``, that grid refined from a coarse sub-grid of
    ``adaptive_coarse`` points per axis until its estimated interpolation error is below
    ``adaptive_target`` of the value range (or the noise floor, measured on the coarse grid
    first when ``noise_points`` > 0, where that is larger) or ``adaptive_budget`` evaluations
    are spent
    (:mod:`saddles.landscape.adaptive`; its metrics are the filled field's, with a stated
    bound on the bottleneck distance to the dense grid's diagram; schema version 3); or
    ``"sobol"``/``"lhs"``/``"uniform"``, ``n_points`` scattered points
    in that box (1 to 10 directions, the origin included), for graph representations only.
    Representations: names from :data:`REPRESENTATIONS` (see
    :mod:`saddles.topology.representations`); ``knn_k`` neighbours for kNN graphs, None (the
    default) for the paper authors' ``4 x n_directions``.
    Topology: ``threshold`` (relative to the value range) adds simplified metrics; ``loops``
    adds 1-dimensional persistence (``n_loops``, ...) for grid representations in 2D and 3D.
    Hessian: top ``hessian_top_k`` eigenvalues (at least ``n_directions`` when the Hessian
    gives directions), Hutch++ trace with ``trace_matvecs`` HVPs, SLQ density with
    ``density_lanczos`` steps x ``density_runs`` runs. ``hessian_memory`` (bytes, or a size
    such as ``"4GiB"``) bounds the Lanczos bases (:func:`saddles.hessian.krylov.krylov_plan`;
    None: 256 MiB or ``2 k + 2`` vectors, whichever is more; schema version 2).
    Uncertainty: ``direction_seeds`` random planes (seeds ``seed``, ``seed + 1``, ...) for the
    "random" kind; every topology metric is computed on every plane (Hessian and given
    directions are deterministic: one plane). ``noise_points`` points of each landscape are
    re-evaluated in float64 for its noise floor (:mod:`saddles.landscape.noise`; 0: off), and
    ``n_minima_above_noise``/``n_saddles_above_noise`` count the features above it.
    Execution: ``executor`` ("local" or "ray") and ``workers`` for the landscapes' chunks
    (:mod:`saddles.executors`); the values do not depend on them (not part of the identity).
    ``engine`` and ``chunk_size`` can change the last bits of a value, so they are.
    Parameters: ``params``, a spec of :mod:`saddles.io.params` (``include``/``exclude`` name
    globs, ``exclude_1d``, ``types``) or None for all: directions move only the selected
    parameters and the Hessian is taken over them. At LM scale: ``autocast`` ("bf16"/"fp16")
    runs the landscapes' forwards under ``torch.autocast`` (adds rounding noise, which the
    float64 noise floor measures), and ``eval_tokens`` evaluates each point on the data's
    first N tokens only (whole sequences; the Hessian uses all the data), or with ``"auto"``
    on a doubling prefix of the data until the standard error of its loss is at most
    ``stderr_target`` x the value range (:mod:`saddles.landscape.tokens`; schema version 2).
    Noise from the data: ``batch_floor`` (None: off; 2 or more) evaluates each landscape again
    on that many disjoint parts of the evaluation data, and the largest bottleneck distance
    between their diagrams is the batch noise floor (:mod:`saddles.landscape.noise`); the
    ``_above_noise`` counts then use the larger of it and the arithmetic floor and
    ``noise_floor_source`` says which (schema version 2).

    Scales (schema version 3): ``span`` may be a list of spans or ``"auto"``
    (:mod:`saddles.landscape.scales`): every plane is then sampled at each span, its rows carry
    the span as the key ``sweep_span``, and two scale summaries are added per plane (rows with
    an empty ``sweep_span``):
    the critical span (the smallest span with a saddle/minimum pair above the noise floor)
    and the basin radius (per direction, the distance at which the loss first rises by
    ``basin_rise`` x the centre loss). ``"auto"`` sweeps the half-decade ladder from the
    largest span at which the loss is flat within its arithmetic noise to the first at which
    it has risen by ``span_rise`` x the centre loss. ``hessian_which`` picks the Hessian
    plane (:data:`saddles.names.HESSIAN_PLANES`): ``"top_bottom"`` takes the top and the most
    negative eigenvectors, the plane that cuts a saddle.

    The instance is frozen: derive another with :func:`dataclasses.replace`.
    """

    directions: list[str] = setting(["random", "hessian"], Names(DIRECTION_KINDS,
        "{name} must be a non-empty subset of {options}, not {bad}"))  # fmt: skip
    n_directions: int = setting(2, Integer(1))
    norm: str = setting("filter", Choice(NORMS))
    ignore_1d: bool = setting(True, Boolean())
    seed: int = setting(0, Integer())
    sampling: str = setting("grid", Choice(SAMPLINGS))
    resolution: int = setting(41, Integer(3))
    n_points: int = setting(4096, Integer(2))
    span: float | list[float] | str = setting(1.0, Spans())
    representations: list[str] = setting(["grid-full", "grid-ttk", "knn"], Names(REPRESENTATIONS,
        "unknown representation(s) {bad}; choose from " + ", ".join(REPRESENTATIONS)))  # fmt: skip
    knn_k: int | None = setting(None, Integer(1, none=True))
    threshold: float | None = setting(0.01, Number(none=True))
    loops: bool = setting(True, Boolean())
    hessian: bool = setting(True, Boolean())
    hessian_top_k: int = setting(5, Integer(1))
    trace_matvecs: int = setting(99, Integer(1))
    density_lanczos: int = setting(80, Integer(2))
    density_runs: int = setting(1, Integer(1))
    engine: str = setting("auto", Choice(ENGINES))
    chunk_size: int | None = setting(None, Integer(1, none=True, say="a positive integer"))
    dtype: str = setting("float32", Choice(FLOAT_DTYPES))
    device: str = setting("cpu", Text())
    direction_seeds: int = setting(1, Integer(1))
    noise_points: int = setting(32, Integer(0))
    executor: str = setting("local", Choice(EXECUTORS), identity=False)
    workers: int | None = setting(None, Integer(1, none=True, say="a positive integer"),
                                  identity=False)  # fmt: skip
    params: dict[str, Any] | None = setting(None, ParamSpec())
    autocast: str | None = setting(None, Choice(AUTOCAST, none=True))
    eval_tokens: int | str | None = setting(None, Tokens())
    stderr_target: float = setting(STDERR_TARGET, Number(), added_in=3)
    batch_floor: int | None = setting(None, Integer(2, none=True), added_in=3)
    hessian_memory: int | str | None = setting(None, Bytes(), added_in=2)
    adaptive_target: float = setting(_adaptive.REL_TARGET, Fraction(), added_in=3)
    adaptive_budget: int | None = setting(None, Integer(1, none=True, say="a positive integer"),
                                          added_in=3)  # fmt: skip
    adaptive_coarse: int = setting(_adaptive.COARSE, Integer(2), added_in=3)
    span_rise: float = setting(1.0, Number(), added_in=3)
    basin_rise: float = setting(0.1, Number(), added_in=3)
    hessian_which: str = setting("top", Choice(HESSIAN_PLANES), added_in=3)

    @property
    def sweeps(self) -> bool:
        """Whether ``span`` is a sweep (a list or ``"auto"``): rows then carry a
        ``sweep_span`` key and the scale summaries (critical span, basin radius)."""
        return not isinstance(self.span, (int, float))

    def __post_init__(self) -> None:
        check_fields(self)
        # The rules between fields.
        if self.sampling in GRID_SAMPLINGS and not 1 <= self.n_directions <= 3:
            raise ValueError(
                f"a grid takes 1 to 3 directions, not {self.n_directions}; "
                "use scattered sampling (sampling: sobol) for more"
            )
        if not 1 <= self.n_directions <= 10:
            raise ValueError(f"n_directions must be 1 to 10, not {self.n_directions}")
        grids = [r for r in self.representations if r in _GRID_CONNECTIVITY]
        if self.sampling not in GRID_SAMPLINGS and grids:
            graphs = [r for r in REPRESENTATIONS if r not in _GRID_CONNECTIVITY]
            raise ValueError(f"{grids} need grid sampling; scattered points take "
                             f"{', '.join(graphs)}")  # fmt: skip
        if self.sampling == "adaptive" and self.batch_floor:  # see _adaptive.BATCH_FLOOR_REFUSED
            raise ValueError(_adaptive.BATCH_FLOOR_REFUSED)
        if not self.sweeps and not self.span > 0:
            raise ValueError(f"span must be positive, not {self.span}")
        for name in ("span_rise", "basin_rise"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if not self.stderr_target > 0:
            raise ValueError(f"stderr_target must be positive, not {self.stderr_target}")
        if "hessian" in self.directions and self.hessian_top_k < self.n_directions:
            # Hessian directions need that many eigenvectors: the value is raised when the
            # configuration is made (never changed afterwards).
            object.__setattr__(self, "hessian_top_k", self.n_directions)

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
        """Every field (the resolved configuration, as written to config.yaml)."""
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that make this configuration's numbers (see the module docstring):
        version-1 fields, and later ones where they differ from their default; non-identity
        fields at their default."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name) if f.metadata["identity"] else default_of(f)
            if f.metadata["added_in"] <= 1 or value != default_of(f):
                out[f.name] = value
        return out

    def short_id(self) -> str:
        """8 hex digits naming this configuration's identity, for per-configuration run
        directories (``analysis-<id>``)."""
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


def identity_fields() -> list[str]:
    """The names of the fields that change an analysis's numbers."""
    return [f.name for f in fields(AnalysisConfig) if f.metadata["identity"]]


def configs_from_dict(values: dict[str, Any]) -> dict[str, AnalysisConfig]:
    """``{label: AnalysisConfig}`` from an ``analysis:`` mapping: AnalysisConfig fields, and
    optionally ``subspaces: {label: {fields}}``, each subspace the base fields overridden by
    its own. Without subspaces, one labelled ``<n_directions>d``. Directions come from the
    policy (:mod:`saddles.runs.series`), so ``directions`` is refused."""
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
