"""saddles: a neural network's loss landscape as numbers (merge trees, persistence, Hessian).

The public names below are loaded on first use (PEP 562), so ``import saddles`` stays light and
commands that need no model never import torch. Each stage lives in its own module:

- ``saddles.directions``: directions in parameter space (stage 1)
- ``saddles.sampling``, ``saddles.landscape``: coordinates and loss evaluation (stage 2)
- ``saddles.topology``: graphs, merge trees, persistence, metrics (stages 3-5; no torch)
- ``saddles.hessian``: curvature (stage 5)
- ``saddles.pipeline``, ``saddles.relations``, ``saddles.dynamics``, ``saddles.report``:
  orchestration, statistics across models and checkpoints, the HTML report (stage 6)
"""

from importlib import import_module

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
    "AnalysisConfig": "saddles.pipeline",
    "analyze": "saddles.pipeline",
    "correlate": "saddles.relations",
    "fit_power_law": "saddles.relations",
    "analyze_checkpoints": "saddles.dynamics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'saddles' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
