"""One YAML schema for a run: :class:`RunSpec`, read by ``saddles run`` and ``saddles dynamics``.

Owns the run-level keys (model, checkpoint(s), data, loss, parameters, output, analysis), their
checks, which command takes which key, and where relative paths are read from (the YAML file's
folder). It checks what can be checked without loading anything; loading the model, data and
loss is the command line's job (:mod:`saddles.cli._loading`). Must not import torch, the
stages or the command line: a configuration is refused before a model is built.

    name: my-run                        # optional; a label in tables and the report
    model: mypackage.models:make_net    # module:function, file.py:function, or hf:PATH
    checkpoint: weights.safetensors     # saddles run: one state dict (optional)
    checkpoints: ckpts/                 # saddles dynamics: a folder of them ...
    steps: [0, 1000]                    # ... or some of their steps
    data: batch.pt
    criterion: cross_entropy            # or  loss: mypackage.losses:my_loss
    inputs_key: input_ids               # optional: a dict batch's entries for the criterion
    targets_key: labels
    batch_size: 256                     # optional: split the data into batches
    params: {exclude: ["*embed*"]}      # optional: the same as analysis: params:
    policy: fixed                       # saddles dynamics: fixed, hessian or pca
    out: runs/my-run
    analysis: {resolution: 21}          # AnalysisConfig fields (dynamics: and subspaces:)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saddles.files import read_yaml
from saddles.names import CRITERIA, POLICIES
from saddles.runs.config import SCHEMA_VERSION, AnalysisConfig, configs_from_dict

#: Keys every command takes, and the keys of one command only.
COMMON_KEYS = ("name", "model", "data", "criterion", "loss", "inputs_key", "targets_key",
               "params", "batch_size", "out", "analysis")  # fmt: skip
COMMAND_KEYS = {"run": ("checkpoint",), "dynamics": ("checkpoints", "steps", "policy")}
#: Keys a command cannot do without.
REQUIRED = {"run": ("model", "data"), "dynamics": ("model", "checkpoints", "data")}
#: Run-level keys that change a run's numbers (with the analysis's identity fields).
IDENTITY_KEYS = ("criterion", "loss", "inputs_key", "targets_key", "batch_size", "policy")
#: What the files behind ``data:`` and a ``loss: file.py:function`` hold (sha256, 16 hex
#: digits): two runs on copies of one file have the same, runs on other data do not.
CONTENT_KEYS = ("data_sha256", "loss_sha256")


class SpecError(ValueError):
    """A refused run configuration: ``key`` is the YAML key at fault (or the file)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


@dataclass(frozen=True)
class RunSpec:
    """A checked run configuration, paths resolved against ``base_dir`` (see the module
    docstring). ``analysis`` is an :class:`AnalysisConfig` for ``run`` and
    ``{label: AnalysisConfig}`` for ``dynamics`` (:func:`configs_from_dict`)."""

    command: str
    model: str
    data: Path
    out: Path
    name: str
    analysis: AnalysisConfig | dict[str, AnalysisConfig]
    checkpoint: Path | None = None
    checkpoints: Path | None = None
    steps: list[int] | None = None
    criterion: str | None = None
    loss: str | None = None
    inputs_key: str | None = None
    targets_key: str | None = None
    batch_size: int | None = None
    policy: str = "fixed"
    base_dir: Path = Path(".")
    source: dict[str, Any] = field(default_factory=dict, repr=False)  # the YAML as read

    @classmethod
    def from_yaml(cls, path: str | Path, command: str) -> RunSpec:
        """Read and check a YAML file for ``command`` ("run" or "dynamics")."""
        path = Path(path)
        return cls.from_dict(read_yaml(path), path.parent, command, where=str(path))

    @classmethod
    def from_dict(cls, values: dict[str, Any], base_dir: str | Path, command: str, *,
                  where: str = "the configuration") -> RunSpec:  # fmt: skip
        """Check ``values`` for ``command``; relative paths are read from ``base_dir``."""
        if command not in COMMAND_KEYS:
            raise ValueError(f"command must be one of {tuple(COMMAND_KEYS)}, not {command!r}")
        if not isinstance(values, dict):
            raise SpecError(where, f"must be a mapping of keys, not {type(values).__name__}")
        base = Path(base_dir)
        known = (*COMMON_KEYS, *COMMAND_KEYS[command])
        for other, keys in COMMAND_KEYS.items():
            misplaced = [k for k in keys if k in values and other != command]
            if misplaced:
                raise SpecError(misplaced[0], _misplaced(misplaced[0], command))
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SpecError(where, f"unknown key(s) {unknown}; known: {sorted(known)}")
        for key in REQUIRED[command]:
            if values.get(key) is None:
                raise SpecError(where, f"must say `{key}:`")
        if ("criterion" in values) == ("loss" in values):
            raise SpecError(where, "give exactly one of `criterion:` or `loss:`")
        for key in ("model", "criterion", "loss", "inputs_key", "targets_key"):
            if values.get(key) is not None and not isinstance(values[key], str):
                raise SpecError(key, f"must be a string, not {values[key]!r}")
        if values.get("criterion") is not None and values["criterion"] not in CRITERIA:
            raise SpecError("criterion", f"must be one of {CRITERIA}, not {values['criterion']!r}")
        size = values.get("batch_size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise SpecError("batch_size", f"must be a positive integer, not {size!r}")
        policy = values.get("policy", "fixed")
        if policy not in POLICIES:
            raise SpecError("policy", f"must be one of {POLICIES}, not {policy!r}")
        steps = values.get("steps")
        if isinstance(steps, int) and not isinstance(steps, bool):
            steps = [steps]
        if steps is not None and (not isinstance(steps, list) or not steps
                                  or any(isinstance(s, bool) or not isinstance(s, int)
                                         for s in steps)):  # fmt: skip
            raise SpecError("steps", f"must be a non-empty list of integers, not {steps!r}")
        analysis = _analysis(values, command)
        model = resolve(str(values["model"]), base)
        if command == "run":
            default_name = Path(str(values["model"]).split(":")[-1]).name
        else:
            default_name = Path(str(values["checkpoints"])).name or "run"
        name = str(values.get("name") or default_name)
        return cls(
            command=command,
            model=model,
            data=_path(values["data"], base),
            out=_path(values.get("out", f"runs/{name}"), base),
            name=name,
            analysis=analysis,
            checkpoint=_path(values["checkpoint"], base) if values.get("checkpoint") else None,
            checkpoints=_path(values["checkpoints"], base) if command == "dynamics" else None,
            steps=steps,
            criterion=values.get("criterion"),
            loss=resolve(values["loss"], base) if values.get("loss") is not None else None,
            inputs_key=values.get("inputs_key"),
            targets_key=values.get("targets_key"),
            batch_size=size,
            policy=policy,
            base_dir=base,
            source=dict(values),
        )

    @property
    def configs(self) -> dict[str, AnalysisConfig]:
        """The analysis as ``{label: AnalysisConfig}`` (one subspace for ``run``)."""
        if isinstance(self.analysis, AnalysisConfig):
            return {f"{self.analysis.n_directions}d": self.analysis}
        return dict(self.analysis)

    def load(self, model: Any = None):
        """Load and check what this spec names, before anything is computed: the model (built
        from ``model:`` with ``checkpoint:``, or the given one, e.g. the architecture a
        ``dynamics`` run loads each checkpoint into), its data (split into ``batch_size``)
        and its loss, checked together (:func:`saddles.io.problem.load_problem`, whose
        :class:`~saddles.io.problem.InputError` names the key). The parameter selection is
        the first subspace's ``params``."""
        from saddles.io.problem import load_problem

        params = next(iter(self.configs.values())).params
        return load_problem(self.model if model is None else model, self.data,
                            checkpoint=self.checkpoint, criterion=self.criterion,
                            loss=self.loss, inputs_key=self.inputs_key,
                            targets_key=self.targets_key, batch_size=self.batch_size,
                            params=params)  # fmt: skip

    def identity(self) -> dict[str, Any]:
        """The run-level settings that change the numbers (:data:`IDENTITY_KEYS`; the
        parameter selection is the analysis's ``params``) and what the data and loss files
        hold (:data:`CONTENT_KEYS`), with the schema version."""
        own = {k: getattr(self, k) for k in IDENTITY_KEYS}
        if self.command != "dynamics":
            own.pop("policy")
        own["data_sha256"] = _file_digest(self.data)
        target, _, function = str(self.loss or "").partition(":")
        if target.endswith(".py"):
            own["loss_sha256"] = f"{_file_digest(Path(target))}:{function}"
        return {"schema_version": SCHEMA_VERSION, **own}

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration, for the run folder's ``run.yaml``."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "command": self.command,
                               "name": self.name, "model": self.model,
                               "data": str(self.data), "out": str(self.out)}  # fmt: skip
        for key in ("checkpoint", "checkpoints"):
            if getattr(self, key) is not None:
                out[key] = str(getattr(self, key))
        if self.steps is not None:
            out["steps"] = self.steps
        out.update({k: v for k, v in self.identity().items() if k != "schema_version"})
        out["analysis"] = {k: c.to_dict() for k, c in self.configs.items()}
        return out


def resolve(spec: str, base: Path) -> str:
    """A ``model:`` or ``loss:`` value with its file read relative to ``base`` (the YAML
    file's folder): a path-taking source such as ``hf:PATH`` (:mod:`saddles.io.sources`) and
    ``file.py:function``; ``module:function`` and absolute paths stay as they are."""
    from saddles.io.sources import source_of

    spec = str(spec)
    source, rest = source_of(spec)
    if source is not None:
        if not source.path:
            return spec
        folder = Path(rest).expanduser()
        return f"{source.prefix}{folder if folder.is_absolute() else base / folder}"
    target, sep, attr = spec.partition(":")
    if target.endswith(".py") and not Path(target).expanduser().is_absolute():
        return f"{base / target}{sep}{attr}"
    return spec


def _file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes (16 hex digits), read in blocks; None if it is not a file."""
    import hashlib

    if not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _path(value: Any, base: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def _misplaced(key: str, command: str) -> str:
    if key == "checkpoint":
        return ("saddles dynamics takes a folder of checkpoints (`checkpoints:`), not one "
                "`checkpoint:`; give one to saddles run")  # fmt: skip
    if key == "checkpoints":
        return ("saddles run takes one `checkpoint:` (a state dict); a folder of checkpoints "
                "is for saddles dynamics")  # fmt: skip
    return f"`{key}:` is for saddles dynamics (a series of checkpoints), not saddles {command}"


def _analysis(values: dict[str, Any], command: str):
    """The ``analysis:`` mapping with a top-level ``params:`` merged in, checked: one
    :class:`AnalysisConfig` for ``run``, ``{label: config}`` for ``dynamics``."""
    spec = values.get("analysis") or {}
    if not isinstance(spec, dict):
        raise SpecError("analysis", "the analysis settings must be a mapping of AnalysisConfig "
                        f"fields (name: value), not {type(spec).__name__} {spec!r}")  # fmt: skip
    if "params" in values:
        if "params" in spec:
            raise SpecError("params", "give `params:` at the top or under `analysis:`, not both")
        spec = {**spec, "params": values["params"]}
    try:
        if command == "dynamics":
            return configs_from_dict(spec)
        if "subspaces" in spec:
            raise ValueError("subspaces are for saddles dynamics; saddles run analyzes one")
        config = AnalysisConfig.from_dict(spec)
    except ValueError as exc:
        raise SpecError("analysis", str(exc)) from exc
    if "given" in config.directions:
        raise SpecError("analysis", "`given` directions need the library (analyze(given=...))")
    return config
