"""Where a model can come from: the prefixes of ``--model`` / ``model:`` and their loaders.

A model spec is ``PREFIX:REST`` for a registered source (``hf:PATH``, a local Hugging Face
folder) or else a factory, ``module:function`` or ``file.py:function``. Each source says how
it is loaded (``"module:function"``, imported on first use, called as ``load(rest, dtype)``),
whether ``REST`` is a path (then a YAML file's relative path is read from its folder), and
whether the model it gives holds trained weights (a factory's does not, unless a checkpoint
is loaded into it, and the command line says so). Adding a source is one
:func:`register_source` call beside its loader.

Imports only the standard library, so the run schema and the command line can read the
prefixes without importing torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelSource:
    """A prefix, its loader (``"module:function"``), whether what follows it is a path, and
    whether the model it loads has trained weights."""

    prefix: str
    loader: str
    path: bool = True
    pretrained: bool = True

    def load(self, rest: str, dtype: Any = None) -> Any:
        module, _, name = self.loader.partition(":")
        return getattr(importlib.import_module(module), name)(rest, dtype=dtype)


#: The registered sources by prefix (with its colon).
SOURCES: dict[str, ModelSource] = {}


def register_source(source: ModelSource) -> ModelSource:
    """Add a source; a prefix must end with ``:`` and be registered once."""
    if not source.prefix.endswith(":"):
        raise ValueError(f"a model source's prefix ends with ':', not {source.prefix!r}")
    known = SOURCES.get(source.prefix)
    if known is not None and known != source:
        raise ValueError(f"model source {source.prefix!r} is already registered")
    SOURCES[source.prefix] = source
    return source


def source_of(spec: str) -> tuple[ModelSource | None, str]:
    """The registered source of ``spec`` and the rest of it; ``(None, spec)`` for a factory."""
    for prefix, source in SOURCES.items():
        if str(spec).startswith(prefix):
            return source, str(spec)[len(prefix) :]
    return None, str(spec)


register_source(ModelSource("hf:", "saddles.io.models:load_hf_model"))
