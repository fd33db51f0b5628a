"""Power iteration with PyHessian's stopping rule: the baseline the benchmark compares against.

Owns :func:`power_iteration`, PyHessian's ``hessian.eigenvalues`` (Yao, Gholami, Keutzer &
Mahoney, "PyHessian: neural networks through the lens of the Hessian", IEEE BigData 2020,
Algorithm 1): ``v <- H v / ||H v||``, with the Rayleigh quotient ``lambda = v^T H v`` as the
estimate, stopped when ``|lambda_prev - lambda| / (|lambda_prev| + 1e-6) < tol``; further
eigenvalues by deflation (orthogonalizing against those found). Its Rayleigh quotient converges
linearly, by ``(lambda_2 / lambda_1)^2`` per product, where the rate of Lanczos
(:func:`saddles.hessian.top_eigen`) depends on the square root of the relative gap (Kaniel-Paige
bounds); it is here to be measured, not recommended.

On a matrix with eigenvalues 10, 9 and smaller, with no stopping rule (``tol=0``) it approaches
10 as ``(9/10)^(2j)`` after ``j`` products:

>>> import numpy as np
>>> from saddles.hessian import DenseOperator
>>> r = power_iteration(DenseOperator(np.diag([10.0, 9.0, 1.0, -2.0])), max_iter=300, tol=0.0)
>>> bool(abs(r.eigenvalues[0] - 10.0) < 1e-10), r.n_hvps
(True, 300)

Imports the operator protocol and the seeded vectors; must not import
:mod:`saddles.hessian.hvp` or the other algorithms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from saddles.hessian.operator import SymmetricOperator
from saddles.hessian.random_vectors import gaussian, generator


@dataclass(frozen=True)
class PowerIteration:
    """Result of :func:`power_iteration`: ``eigenvalues`` (k,), unit ``vectors`` (k, dim) and their
    parameter-shaped ``eigenvectors``, ``n_hvps`` in all, and per eigenvalue the ``history`` of
    Rayleigh quotients, one per HVP."""

    eigenvalues: np.ndarray
    vectors: np.ndarray
    eigenvectors: list[list[torch.Tensor]]
    n_hvps: int
    history: list[np.ndarray]


def power_iteration(
    op: SymmetricOperator,
    k: int = 1,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
) -> PowerIteration:
    """PyHessian's ``hessian.eigenvalues`` (Yao et al. 2020), reproduced as a baseline.

    From a Gaussian start, iterate ``v <- Hv / ||Hv||`` (orthogonalized against eigenvectors
    already found, for ``k > 1``), and stop when the Rayleigh quotient changes by less than
    ``tol`` relative (``|prev - new| / (|prev| + 1e-6) < tol``) or after ``max_iter`` HVPs. As in
    PyHessian, the reported eigenvalue is the *previous* Rayleigh quotient when the rule fires. The
    rule measures the step, not the error: it often stops well short of ``tol`` accuracy.
    """
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= op.dim:
        raise ValueError(f"k must be an integer in [1, {op.dim}], got {k!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    gen = generator(seed)
    hvps_before = op.n_hvps
    found: list[torch.Tensor] = []
    values: list[float] = []
    histories: list[np.ndarray] = []
    for _ in range(k):
        v = gaussian((op.dim,), gen, op)
        v = v / v.norm()
        eigenvalue: float | None = None
        history = []
        for _ in range(max_iter):
            for u in found:
                v = v - torch.dot(v, u) * u
            v = v / v.norm()
            hv = op.matvec(v)
            rayleigh = torch.dot(hv, v).item()
            history.append(rayleigh)
            v = hv / hv.norm()
            if (
                eigenvalue is not None
                and abs(eigenvalue - rayleigh) / (abs(eigenvalue) + 1e-6) < tol
            ):
                break
            eigenvalue = rayleigh
        values.append(float(eigenvalue))
        found.append(v)
        histories.append(np.array(history))
    V = torch.stack(found)
    return PowerIteration(
        eigenvalues=np.array(values),
        vectors=V.cpu().numpy().astype(np.float64),
        eigenvectors=[op.unflatten(v) for v in V],
        n_hvps=op.n_hvps - hvps_before,
        history=histories,
    )
