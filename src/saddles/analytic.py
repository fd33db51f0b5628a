"""Analytic landscapes with known topology, for demos, tests and sanity checks.

This module never imports torch.
"""

from __future__ import annotations

import numpy as np


def himmelblau(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Himmelblau's function: 4 minima (value 0), 4 saddles, 1 maximum on [-5, 5]^2.

    Its sublevel-set merge tree has 4 minima and 3 saddles (the fourth saddle closes a loop).
    """
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def gaussian_basins(
    shape: tuple[int, ...] = (101, 101), n_basins: int = 6, seed: int = 0, noise: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A bowl with ``n_basins`` Gaussian wells of random depth and width on [-1, 1]^N.

    Returns ``(field, centres)``. ``noise`` adds uniform noise of that amplitude, which creates
    the many shallow minima that persistence simplification is for.
    """
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    field = 0.3 * sum(a**2 for a in axes)
    centres = rng.uniform(-0.75, 0.75, size=(n_basins, len(shape)))
    for c in centres:
        depth, width = rng.uniform(0.4, 1.2), rng.uniform(0.08, 0.2)
        r2 = sum((a - ci) ** 2 for a, ci in zip(axes, c, strict=True))
        field = field - depth * np.exp(-r2 / (2 * width**2))
    if noise:
        field = field + noise * rng.random(field.shape)
    return field, centres


def smooth_field(seed: int, dims: int):
    """A random smooth field on [-2, 2]^dims: eight Gaussian wells and bumps of random height
    and width on a gentle bowl. Returns ``f``, mapping ``(m, dims)`` points to ``(m,)`` values
    (the generated fields of the adaptive grids' tests and safety benchmark)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-2, 2, (8, dims))
    heights = rng.normal(0, 1, 8)
    widths = rng.uniform(0.3, 0.8, 8)

    def f(p: np.ndarray) -> np.ndarray:
        r2 = ((p[:, None, :] - centres[None]) ** 2).sum(-1)
        return (heights * np.exp(-r2 / (2 * widths**2))).sum(-1) + 0.05 * (p**2).sum(-1)

    return f
