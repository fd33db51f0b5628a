"""saddles: a neural network's loss landscape as numbers (merge trees, persistence, Hessian).

The public names below are loaded on first use (PEP 562), so ``import saddles`` stays light and
commands that need no model never import torch. Each stage lives in its own module:

- ``saddles.directions``: directions in parameter space (stage 1)
- ``saddles.sampling``, ``saddles.landscape``: coordinates and loss evaluation (stage 2)
- ``saddles.topology``: graphs, merge trees, persistence, metrics (stages 3-5; no torch)
- ``saddles.hessian``: curvature (stage 5)
- ``saddles.io``: what comes in (data files and batches, models, checkpoints, parameters)
- ``saddles.runs``: orchestration (one analysis, a checkpoint series), summaries and relations
- ``saddles.report``: what goes out (figures, HTML pages, VTK files)

Modules of the 0.1 layout (``saddles.pipeline``, ``saddles.dynamics``, ...) stay importable for
one release and warn (:mod:`saddles._moved`).
"""

from importlib import import_module

from saddles import _moved
from saddles._openmp import passive_waits

_moved.install()
passive_waits()  # idle OpenMP threads sleep: torch keeps a fair share of a busy machine

__version__ = "0.1.0"

_EXPORTS = {
    "random_directions": "saddles.directions",
    "interpolation": "saddles.directions",
    "trajectory_pca": "saddles.directions",
    "from_tensors": "saddles.directions",
    "Directions": "saddles.directions",
    "grid": "saddles.sampling",
    "scattered": "saddles.sampling",
    "evaluate": "saddles.landscape",
    "Landscape": "saddles.landscape",
    "merge_tree": "saddles.topology",
    "merge_tree_grid": "saddles.topology",
    "compute_metrics": "saddles.topology",
    "persistence_diagram": "saddles.topology",
    "HessianOperator": "saddles.hessian",
    "top_eigen": "saddles.hessian",
    "trace": "saddles.hessian",
    "spectral_density": "saddles.hessian",
    "AnalysisConfig": "saddles.runs.config",
    "analyze": "saddles.runs.analyze",
    "correlate": "saddles.runs.relate",
    "fit_power_law": "saddles.runs.relate",
    "analyze_checkpoints": "saddles.runs.series",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'saddles' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
