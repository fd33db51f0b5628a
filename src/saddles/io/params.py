"""Which parameters directions, landscapes and Hessians act on: one selection, by name and type.

A *parameter spec* is a small mapping (YAML ``params:``, ``AnalysisConfig.params``, the CLI's
``--params-*`` options)::

    include: ["gpt_neox.layers.3.*"]         # name globs (fnmatch); default: every parameter
    exclude: ["*embed*", "*norm*", "embed_out.*"]   # name globs removed afterwards
    exclude_1d: true                         # drop tensors with at most one dimension
    types: ["Linear"]                        # owning module's class (or a base class) name

``None`` or ``{}`` selects every parameter. A tensor shared by several names (tied weights,
e.g. GPT-2's ``lm_head.weight`` and ``transformer.wte.weight``) is one parameter, named by its
first name in ``model.named_parameters()``; it is included when any of its names matches an
``include`` glob and excluded when any matches an ``exclude`` glob. Selection ignores
``requires_grad`` (a frozen tensor can still be moved along a direction).

:func:`select` returns a :class:`Selection`: the names chosen, in the model's order, and the
counts (tensors and scalars, chosen and in all) that every run records in its info. An
``include`` glob that matches no name, or a spec that leaves nothing, is an error naming the
globs. :func:`check_spec` validates a spec without a model (and without importing torch).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SPEC_KEYS = ("include", "exclude", "exclude_1d", "types")


@dataclass(frozen=True)
class Selection:
    """The parameters a spec selects: canonical names in ``model.named_parameters()`` order."""

    names: tuple[str, ...]
    n_tensors: int
    n_scalars: int
    n_tensors_total: int
    n_scalars_total: int
    spec: dict[str, Any] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def info(self) -> dict[str, Any]:
        """JSON-ready record: the spec and the counts."""
        return {
            "spec": dict(self.spec),
            "n_tensors": self.n_tensors,
            "n_scalars": self.n_scalars,
            "n_tensors_total": self.n_tensors_total,
            "n_scalars_total": self.n_scalars_total,
        }

    def describe(self) -> str:
        """One line for the console: ``12 of 40 tensors, 3,456 of 78,910 scalars``."""
        return (
            f"{self.n_tensors} of {self.n_tensors_total} parameter tensors, "
            f"{self.n_scalars:,} of {self.n_scalars_total:,} scalars"
        )


def check_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A spec in canonical form (lists of strings, a bool), or ``ValueError`` naming the key."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"params must be a mapping with keys {list(SPEC_KEYS)}, not {type(spec).__name__}"
        )
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"unknown params key(s) {unknown}; known: {list(SPEC_KEYS)}")
    out: dict[str, Any] = {}
    for key in ("include", "exclude", "types"):
        value = spec.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"params {key} must be a list of strings, not {value!r}")
        if value:
            out[key] = list(value)
    flag = spec.get("exclude_1d", False)
    if not isinstance(flag, bool):
        raise ValueError(f"params exclude_1d must be true or false, not {flag!r}")
    if flag:
        out["exclude_1d"] = True
    return out


def select(model: Any, spec: Mapping[str, Any] | None = None) -> Selection:
    """The parameters of ``model`` (a ``torch.nn.Module``) that ``spec`` selects (see above)."""
    spec = check_spec(spec)
    include, exclude = spec.get("include"), spec.get("exclude", [])
    types, exclude_1d = spec.get("types"), spec.get("exclude_1d", False)

    # Every name of every tensor, and the class names of the modules that own it.
    aliases: dict[int, list[str]] = {}
    owners: dict[int, set[str]] = {}
    tensors: dict[int, Any] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        classes = {c.__name__ for c in type(module).__mro__}
        for local, p in module.named_parameters(recurse=False, remove_duplicate=False):
            key = id(p)
            name = f"{module_name}.{local}" if module_name else local
            tensors[key] = p
            if name not in aliases.setdefault(key, []):
                aliases[key].append(name)
            owners.setdefault(key, set()).update(classes)
    canonical = [(n, p) for n, p in model.named_parameters()]
    if not canonical:
        raise ValueError(f"the model ({type(model).__name__}) has no parameters")
    all_names = [a for names in aliases.values() for a in names]
    for glob in include or []:
        if not any(fnmatch.fnmatchcase(a, glob) for a in all_names):
            raise ValueError(
                f"params include glob {glob!r} matches no parameter name (names look like "
                f"{_examples(all_names)})"
            )

    chosen = []
    for name, p in canonical:
        names = aliases.get(id(p), [name])
        if include is not None and not _matches(names, include):
            continue
        if _matches(names, exclude):
            continue
        if exclude_1d and p.dim() <= 1:
            continue
        if types is not None and not owners.get(id(p), set()) & set(types):
            continue
        chosen.append((name, p))
    if not chosen:
        raise ValueError(
            f"the parameter selection {_spec_text(spec)} selects no parameter of the model "
            f"(names look like {_examples(all_names)})"
        )
    return Selection(
        names=tuple(n for n, _ in chosen),
        n_tensors=len(chosen),
        n_scalars=int(sum(p.numel() for _, p in chosen)),
        n_tensors_total=len(canonical),
        n_scalars_total=int(sum(p.numel() for _, p in canonical)),
        spec=spec,
    )


def mask(model: Any, spec: Mapping[str, Any] | None) -> list[bool] | None:
    """For each of ``model.named_parameters()``: is it selected? ``None`` when ``spec`` selects
    everything by definition (``None`` or ``{}``), so callers can skip the masking."""
    if not check_spec(spec):
        return None
    chosen = set(select(model, spec).names)
    return [n in chosen for n, _ in model.named_parameters()]


def _matches(names: list[str], globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(n, g) for n in names for g in globs)


def _spec_text(spec: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in spec.items()) or "(everything)"


def _examples(names: list[str], n: int = 4) -> str:
    head = ", ".join(repr(x) for x in names[:n])
    return f"{head}{', ...' if len(names) > n else ''}"
