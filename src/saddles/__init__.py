"""saddles: a neural network's loss landscape as numbers (merge trees, persistence, Hessian)."""

__version__ = "0.1.0"
