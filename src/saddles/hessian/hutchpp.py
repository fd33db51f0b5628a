"""Trace estimation: Hutchinson, Hutch++ (Meyer, Musco, Musco & Woodruff 2021) and the exact sum.

Owns :func:`trace`. With ``m`` products:

- Hutchinson (1989): ``tr(H) ~ (1/m) sum_j z_j^T H z_j`` over Rademacher ``z_j``, unbiased with
  variance ``2 (||H||_F^2 - sum_i H_ii^2) / m``.
- Hutch++ (Meyer et al., "Hutch++: optimal stochastic trace estimation", SOSA 2021,
  Algorithm 1): sketch ``Q = orth(H S)`` with ``m/3`` Rademacher columns ``S``, then
  ``tr(H) ~ tr(Q^T H Q) + (3/m) sum_j g_j^T (I - QQ^T) H (I - QQ^T) g_j``; the low-rank part is
  exact on the dominant range, so for positive semidefinite ``H`` the relative error falls as
  ``1/m`` rather than ``1/sqrt(m)``.
- exact: ``sum_i e_i^T H e_i``, ``dim`` products.

The budget is exactly ``n_matvecs`` products (default 99, as ``AnalysisConfig.trace_matvecs``):
``m // 3`` for the sketch, as many for ``H Q``, the rest for the samples. Rademacher probes of a
diagonal matrix give its trace exactly:

>>> import numpy as np
>>> from saddles.hessian import DenseOperator
>>> op = DenseOperator(np.diag([5.0, -3.0, 2.0, 0.5]))
>>> t = trace(op, "hutchinson", 10)
>>> float(t.value), op.n_hvps
(4.5, 10)
>>> round(trace(op, "hutch++", 12).value, 12)  # the sketch spans all 4 dimensions: exact
4.5

Imports the operator protocol and the seeded vectors; must not import
:mod:`saddles.hessian.hvp` or the other algorithms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from saddles.hessian.operator import SymmetricOperator
from saddles.hessian.random_vectors import generator, rademacher
from saddles.names import TRACE_METHODS


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate with its standard error (0 for the exact method).

    For Hutch++ the standard error is that of the Hutchinson part on the deflated operator, given
    the low-rank part (which is exact for the subspace it captures).
    """

    value: float
    stderr: float
    n_matvecs: int
    method: str
    samples: np.ndarray

    @property
    def n_hvps(self) -> int:
        """The products spent (``n_matvecs``), under the name every estimator reports."""
        return self.n_matvecs


def _blocked(op: SymmetricOperator, V: torch.Tensor, block_size: int) -> torch.Tensor:
    return torch.cat(
        [op.matmat(V[:, s : s + block_size]) for s in range(0, V.shape[1], block_size)], dim=1
    )


def trace(
    op: SymmetricOperator,
    method: str = "hutch++",
    n_matvecs: int | None = None,
    *,
    seed: int = 0,
    block_size: int = 16,
) -> TraceEstimate:
    """Estimate ``tr(H)`` with ``n_matvecs`` HVPs (default 99), with a standard error.

    - ``"hutchinson"`` (Hutchinson 1989): mean of ``z^T H z`` over Rademacher ``z``; standard error
      from the sample standard deviation.
    - ``"hutch++"`` (Meyer et al. 2021, Algorithm 1): a third of the products sketch the dominant
      range ``Q = orth(H S)``, a third give ``tr(Q^T H Q)`` exactly, and the rest estimate the
      remainder with Hutchinson on ``(I - QQ^T) H (I - QQ^T)``. Exact once ``n_matvecs / 3``
      reaches the dimension.
    - ``"exact"``: ``sum_i e_i^T H e_i`` over the ``dim`` unit vectors (``n_matvecs`` must be
      absent or at least ``dim``).

    Products are made in blocks of ``block_size`` columns (``matmat``).
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, not {method!r}")
    n = op.dim
    gen = generator(seed)
    if method == "exact":
        if n_matvecs is not None and n_matvecs < n:
            raise ValueError(
                f"the exact trace needs n_matvecs >= dim = {n} (one unit vector per parameter), "
                f"got {n_matvecs}; use 'hutch++' for an estimate"
            )
        diag = []
        for start in range(0, n, block_size):
            stop = min(start + block_size, n)
            E = torch.zeros(n, stop - start, dtype=op.dtype, device=op.device)
            rows = torch.arange(start, stop)
            E[rows, rows - start] = 1
            diag.append(op.matmat(E)[rows, rows - start])
        d = torch.cat(diag).cpu().numpy().astype(np.float64)
        return TraceEstimate(float(d.sum()), 0.0, n, "exact", d)

    n_matvecs = 99 if n_matvecs is None else n_matvecs
    if not isinstance(n_matvecs, (int, np.integer)):
        raise TypeError(f"n_matvecs must be an integer, not {type(n_matvecs).__name__}")
    if method == "hutchinson":
        if n_matvecs < 2:
            raise ValueError("hutchinson needs n_matvecs >= 2 (a standard error needs 2 samples)")
        Z = rademacher((n, n_matvecs), gen, op)
        samples = (Z * _blocked(op, Z, block_size)).sum(0).cpu().numpy().astype(np.float64)
        se = samples.std(ddof=1) / math.sqrt(len(samples))
        return TraceEstimate(float(samples.mean()), float(se), n_matvecs, method, samples)

    if n_matvecs < 4:
        raise ValueError("hutch++ needs n_matvecs >= 4 (sketch, projection, and 2 samples)")
    n_sketch = min(n_matvecs // 3, n)
    n_samples = 0 if n_sketch == n else n_matvecs - 2 * n_sketch
    S = rademacher((n, n_sketch), gen, op)
    Q, _ = torch.linalg.qr(_blocked(op, S, block_size))
    low_rank = float((Q * _blocked(op, Q, block_size)).sum().item())
    if n_samples == 0:  # Q spans the whole space: the trace is exact
        return TraceEstimate(low_rank, 0.0, 2 * n_sketch, method, np.zeros(0))
    G = rademacher((n, n_samples), gen, op)
    PG = G - Q @ (Q.T @ G)
    samples = (PG * _blocked(op, PG, block_size)).sum(0).cpu().numpy().astype(np.float64)
    se = samples.std(ddof=1) / math.sqrt(n_samples) if n_samples > 1 else float("nan")
    value = low_rank + float(samples.mean())
    return TraceEstimate(value, float(se), 2 * n_sketch + n_samples, method, samples)
