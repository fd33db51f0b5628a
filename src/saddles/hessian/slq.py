"""Eigenvalue density by stochastic Lanczos quadrature (SLQ).

Owns :func:`spectral_density` (Ubaru, Chen & Saad, "Fast estimation of tr(f(A)) via stochastic
Lanczos quadrature", SIMAX 2017; Lin, Saad & Yang, "Approximating spectral densities of large
matrices", SIAM Review 2016; Ghorbani, Krishnan & Xiao, ICML 2019, whose figure PyHessian draws).
For a unit start vector ``v``, ``m`` Lanczos steps give ``T = S diag(theta) S^T`` and the
``m``-point Gauss quadrature ``v^T f(H) v ~ sum_k (S_1k)^2 f(theta_k)``, exact for polynomials of
degree below ``2m``. With ``v`` a normalized Rademacher vector, ``E[v^T f(H) v] = tr(f(H)) / dim``,
so nodes ``theta_k`` with weights ``(S_1k)^2`` estimate the spectral measure
``(1/dim) sum_i delta(t - lambda_i)``; averaging runs and smoothing with a Gaussian gives a density.

Once ``m`` reaches the dimension, each run's nodes are the exact eigenvalues:

>>> import numpy as np
>>> from saddles.hessian import DenseOperator
>>> sd = spectral_density(DenseOperator(np.diag([-1.0, 0.5, 2.0, 4.0])), n_lanczos=4)
>>> np.round(sd.nodes[0], 10).tolist(), round(sd.moment(1), 10)  # tr(H)/dim = 5.5/4
([-1.0, 0.5, 2.0, 4.0], 1.375)

Imports the operator protocol, the seeded vectors and :func:`saddles.hessian.krylov.lanczos`;
must not import :mod:`saddles.hessian.hvp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from saddles.hessian.krylov import default_memory, lanczos
from saddles.hessian.operator import SymmetricOperator
from saddles.hessian.random_vectors import generator, rademacher

#: The default basis budget of SLQ is :func:`~saddles.hessian.krylov.default_memory` for this
#: many eigenpairs: 12 vectors where 256 MiB hold fewer (models of about 5M parameters and up),
#: so local reorthogonalization keeps a window of 12.
SLQ_K = 5

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


@dataclass(frozen=True)
class SpectralDensity:
    """An eigenvalue density estimate by stochastic Lanczos quadrature.

    ``nodes`` and ``weights`` (n_runs, m) are each run's Gauss quadrature (Ritz values and squared
    first components of T's eigenvectors; each row's weights sum to 1): the spectral measure
    ``(1/dim) sum_i delta(t - lambda_i)`` seen from a random start vector. ``density`` on ``grid``
    is their average smoothed by a Gaussian of width ``sigma``, normalized to integrate to 1.
    ``max_basis``: the Lanczos vectors kept for reorthogonalization (``m``: all of them).
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    n_hvps: int
    max_basis: int = 0

    def moments(self, p: int) -> np.ndarray:
        """Per-run estimates of ``tr(H^p) / dim`` (exact quadrature for ``p < 2 m``)."""
        return (self.weights * self.nodes.astype(np.float64) ** p).sum(axis=1)

    def moment(self, p: int) -> float:
        """Estimate of ``tr(H^p) / dim``, averaged over runs."""
        return float(self.moments(p).mean())


def spectral_density(
    op: SymmetricOperator,
    n_lanczos: int = 90,
    n_runs: int = 1,
    *,
    sigma: float | None = None,
    grid_size: int = 2000,
    seed: int = 0,
    memory: int | None = None,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani et al. 2019).

    Each of ``n_runs`` runs does ``n_lanczos`` (80-100 is typical; capped at ``dim``) Lanczos steps
    with full reorthogonalization from a normalized Rademacher vector. The Ritz values are the
    quadrature nodes, the squared first components of T's eigenvectors the weights. The smoothed
    density uses a Gaussian kernel of standard deviation ``sigma`` (default: Ghorbani et al.'s
    variance 1e-5 on the spectrum rescaled to [-1, 1], i.e. ``sqrt(1e-5) * width / 2``) on a grid
    covering the nodes plus 5 sigma on each side.

    ``memory`` (bytes, default :func:`~saddles.hessian.krylov.default_memory` for ``k =``
    :data:`SLQ_K`: 256 MiB, or 12 vectors where those take more) bounds the
    Lanczos basis: where ``n_lanczos`` vectors do not fit, each run reorthogonalizes against the
    latest vectors that do (see :func:`~saddles.hessian.krylov.lanczos`'s ``max_basis``).
    """
    if not isinstance(n_lanczos, (int, np.integer)) or n_lanczos < 2:
        raise ValueError(f"n_lanczos must be an integer >= 2, got {n_lanczos!r}")
    if not isinstance(n_runs, (int, np.integer)) or n_runs < 1:
        raise ValueError(f"n_runs must be a positive integer, got {n_runs!r}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if grid_size < 10:
        raise ValueError(f"grid_size must be at least 10, got {grid_size}")
    gen = generator(seed)
    m = min(int(n_lanczos), op.dim)
    itemsize = torch.empty((), dtype=op.dtype).element_size()
    budget = default_memory(op.dim, itemsize, SLQ_K) if memory is None else memory
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"memory must be a positive number of bytes, not {memory!r}")
    max_basis = min(m, int(budget) // (op.dim * itemsize))
    if max_basis < min(m, 2):
        raise ValueError(f"memory={budget} bytes holds fewer than 2 vectors of dimension {op.dim}")
    hvps_before = op.n_hvps
    nodes, weights = [], []
    for r in range(n_runs):
        v0 = rademacher((op.dim,), gen, op)
        dec = lanczos(op, m, v0=v0, seed=seed + 1 + r, max_basis=max_basis)
        theta, S = dec.ritz()
        nodes.append(theta)
        weights.append(S[0, :] ** 2)
    nodes_a, weights_a = np.array(nodes), np.array(weights)
    lo, hi = float(nodes_a.min()), float(nodes_a.max())
    width = hi - lo if hi > lo else max(abs(hi), 1.0)
    if sigma is None:
        sigma = math.sqrt(1e-5) * width / 2
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_size)
    z = (grid[None, None, :] - nodes_a[:, :, None]) / sigma
    kernel = np.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))
    density = (weights_a[:, :, None] * kernel).sum(axis=1).mean(axis=0)
    density = density / _trapezoid(density, grid)
    return SpectralDensity(
        grid=grid,
        density=density,
        nodes=nodes_a,
        weights=weights_a,
        sigma=float(sigma),
        n_hvps=op.n_hvps - hvps_before,
        max_basis=max_basis,
    )
