"""Old module paths of the 0.1 layout, kept for one release: each forwards to its new home.

``saddles.pipeline`` became ``saddles.runs.analyze`` (with ``runs.config``), ``saddles.dynamics``
``saddles.runs.series`` (with ``report.dynamics``), and so on (:data:`MOVED`). ``import
saddles.pipeline`` still works: a finder on ``sys.meta_path`` makes a small module whose
attributes are looked up in the new modules, in order, each with a :class:`DeprecationWarning`
naming the new path. No file stands at the old paths, so the package listing shows the stages;
nothing inside saddles imports the old paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

#: Old module -> the modules that now hold its names, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "saddles.pipeline": (
        "saddles.runs.config",
        "saddles.runs.analyze",
        "saddles.runs.summary",
        "saddles.report.summary",
        "saddles.report.figures",
    ),
    "saddles.dynamics": (
        "saddles.runs.series",
        "saddles.report.dynamics",
        "saddles.experiments.lm",
    ),
    "saddles.compare": ("saddles.runs.compare", "saddles.report.compare"),
    "saddles.summary": ("saddles.runs.summary", "saddles.report.summary"),
    "saddles.relations": ("saddles.runs.relate",),
    "saddles.figures": ("saddles.report.figures",),
    "saddles.plots": ("saddles.report.plots",),
    "saddles.hessian_plots": ("saddles.report.hessian_plots",),
    "saddles.export": ("saddles.report.export",),
    "saddles.data": ("saddles.io.data",),
    "saddles.models": ("saddles.io.models",),
    "saddles.checkpoints": ("saddles.io.checkpoints",),
    "saddles.params": ("saddles.io.params",),
}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of :data:`MOVED` and makes their forwarding modules."""

    def find_spec(self, fullname: str, path: Any, target: Any = None):
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        old, targets = module.__name__, MOVED[module.__name__]
        module.__doc__ = f"Deprecated path (one release): moved to {', '.join(targets)}."

        def __getattr__(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            for target in targets:
                new = importlib.import_module(target)
                if hasattr(new, name):
                    warnings.warn(f"{old}.{name} moved to {target}.{name}; import it from there",
                                  DeprecationWarning, stacklevel=2)  # fmt: skip
                    return getattr(new, name)
            raise AttributeError(f"module {old!r} has no attribute {name!r}")

        module.__getattr__ = __getattr__


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
