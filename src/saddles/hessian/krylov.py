"""Lanczos with full reorthogonalization, and the extreme eigenpairs it gives.

Owns :func:`lanczos` (the decomposition ``H Q^T = Q^T T + beta_m q_{m+1} e_m^T``, ``T``
tridiagonal, after ``m`` products; Lanczos 1950, with full reorthogonalization as in Golub & Van
Loan, *Matrix Computations*, 4th ed., sec. 10.1-10.3) and :func:`top_eigen`, the ``k`` extreme
eigenpairs from the Ritz pairs of ``T``: eigenpairs ``(theta_i, s_i)`` of ``T`` give Ritz vectors
``y_i = Q^T s_i`` with residual ``||H y_i - theta_i y_i|| = |beta_m (s_i)_m|`` (GVL sec. 10.1),
the stopping test. :func:`saddles.hessian.spectral_density` reuses :func:`lanczos`.

Why our own Lanczos rather than scipy's ``eigsh`` (ARPACK): one HVP of a network costs a full
forward and backward pass, while everything else here is cheap. Lanczos with full
reorthogonalization keeps the whole Krylov space: after ``m`` HVPs its largest Ritz value is the
maximum of the Rayleigh quotient over everything those ``m`` products span. ARPACK's implicit
restarts throw part of that space away to bound memory, and spent 1.2-4x more HVPs for the same
residual tolerance on the benchmark's models (``benchmarks/hessian.py`` prints both). We store
the basis (``m`` vectors of the parameter dimension), affordable for the tens to hundreds of steps
used here.

The exact answer on a small matrix: the 1-D Laplacian ``tridiag(-1, 2, -1)`` of order ``n`` has
largest eigenvalue ``2 + 2 cos(pi / (n + 1))``, found to rounding within ``n`` products:

>>> import numpy as np
>>> from saddles.hessian import DenseOperator
>>> n = 10
>>> L = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
>>> r = top_eigen(DenseOperator(L), 1, tol=1e-10)
>>> bool(abs(r.eigenvalues[0] - (2 + 2 * np.cos(np.pi / (n + 1)))) < 1e-12), r.n_hvps <= n
(True, True)

Imports the operator protocol and the seeded vectors; must not import
:mod:`saddles.hessian.hvp` (it runs on any :class:`~saddles.hessian.SymmetricOperator`) or the
other algorithms.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from saddles.hessian.operator import SymmetricOperator
from saddles.hessian.random_vectors import gaussian, generator
from saddles.names import WHICH


class _Rows:
    """A growing stack of row vectors (capacity doubles), for the Krylov basis and its images."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device, capacity: int):
        self.data = torch.empty((max(capacity, 1), n), dtype=dtype, device=device)
        self.size = 0

    def append(self, row: torch.Tensor) -> None:
        if self.size == self.data.shape[0]:
            grown = torch.empty(
                (2 * self.size, self.data.shape[1]), dtype=self.data.dtype, device=self.data.device
            )
            grown[: self.size] = self.data
            self.data = grown
        self.data[self.size] = row
        self.size += 1

    @property
    def rows(self) -> torch.Tensor:
        return self.data[: self.size]


@dataclass
class LanczosDecomposition:
    """``H Q^T = Q^T T + beta_m q_{m+1} e_m^T`` after ``m`` steps, ``T`` tridiagonal.

    ``alphas`` (m,) and ``betas`` (m,) hold T's diagonal and off-diagonal; ``betas[-1]`` is the
    norm of the final residual, used for convergence bounds. ``basis`` (m, dim) holds the
    orthonormal Lanczos vectors and ``products`` (m, dim), when kept, their images ``H q_j``.
    ``seconds`` is the cumulative wall time after each step.
    """

    alphas: np.ndarray
    betas: np.ndarray
    basis: torch.Tensor
    products: torch.Tensor | None
    seconds: np.ndarray

    @property
    def n_steps(self) -> int:
        return len(self.alphas)

    @property
    def n_hvps(self) -> int:
        """The products spent: one per step."""
        return self.n_steps

    def ritz(self, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and T's eigenvectors after ``steps`` steps (default: all).

        The leading ``j x j`` block of T is the decomposition after ``j`` steps, so one run gives
        the whole convergence history.
        """
        j = self.n_steps if steps is None else int(steps)
        return _tridiagonal_eigh(self.alphas[:j], self.betas[: j - 1])


def _tridiagonal_eigh(alphas: np.ndarray, offdiag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(alphas) == 1:
        return np.asarray(alphas, dtype=np.float64).copy(), np.ones((1, 1))
    return scipy.linalg.eigh_tridiagonal(
        np.asarray(alphas, np.float64), np.asarray(offdiag, np.float64)
    )


def lanczos(
    op: SymmetricOperator,
    n_steps: int,
    *,
    v0: torch.Tensor | None = None,
    seed: int = 0,
    store_products: bool = False,
    should_stop: Callable[[np.ndarray, np.ndarray], bool] | None = None,
) -> LanczosDecomposition:
    """Run ``n_steps`` (at most ``dim``) Lanczos steps with full reorthogonalization.

    Each new vector is orthogonalized against the whole basis twice (classical Gram-Schmidt
    twice, "twice is enough": Giraud, Langou & Rozloznik 2005), which keeps the basis orthonormal
    to working precision and avoids the spurious copies of converged eigenvalues of plain Lanczos
    (Golub & Van Loan, sec. 10.3). If the Krylov space becomes invariant (``beta`` ~ 0), the run
    continues from a fresh random vector orthogonal to the basis, with a zero coupling in T.
    ``should_stop(alphas, betas)`` is called after every step and may end the run early.
    """
    n = op.dim
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    m = min(int(n_steps), n)
    gen = generator(seed)
    q = gaussian((n,), gen, op) if v0 is None else op._check_tensor(v0, "v0", ndim=1).clone()
    norm = q.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("the starting vector must be finite and nonzero")
    q = q / norm
    Q = _Rows(n, op.dtype, op.device, min(m, 64))
    W = _Rows(n, op.dtype, op.device, min(m, 64)) if store_products else None
    alphas: list[float] = []
    betas: list[float] = []
    seconds: list[float] = []
    eps = torch.finfo(op.dtype).eps
    anorm = 0.0
    start = time.perf_counter()
    for j in range(m):
        Q.append(q)
        w = op.matvec(q)
        if not torch.isfinite(w).all():
            raise FloatingPointError(f"the operator returned non-finite values at Lanczos step {j}")
        if W is not None:
            W.append(w)
        alpha = torch.dot(q, w).item()
        w = w - alpha * q
        if j > 0:
            w = w - betas[-1] * Q.rows[j - 1]
        for _ in range(2):
            c = Q.rows @ w
            w = w - Q.rows.T @ c
            alpha += c[j].item()
        beta = w.norm().item()
        alphas.append(alpha)
        betas.append(beta)
        seconds.append(time.perf_counter() - start)
        anorm = max(anorm, abs(alpha) + beta + (betas[-2] if j > 0 else 0.0))
        if should_stop is not None and should_stop(np.array(alphas), np.array(betas)):
            break
        if j + 1 == m:
            break
        if beta <= 1e3 * eps * anorm:  # invariant subspace: restart, orthogonal to the basis
            betas[-1] = 0.0
            w = gaussian((n,), gen, op)
            for _ in range(2):
                w = w - Q.rows.T @ (Q.rows @ w)
            beta = w.norm().item()
        q = w / beta
    return LanczosDecomposition(
        alphas=np.array(alphas),
        betas=np.array(betas),
        basis=Q.rows,
        products=None if W is None else W.rows,
        seconds=np.array(seconds),
    )


# --------------------------------------------------------------------------------------------
# Extreme eigenpairs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Eigenpairs:
    """Extreme eigenpairs of a symmetric operator.

    ``eigenvalues`` (k,) in the order asked for (LA: descending, SA: ascending, LM: by decreasing
    magnitude); ``residual_norms`` (k,) are ``||H v - lambda v||`` for the returned unit vectors,
    computed from the HVPs actually made (``H v`` as the same combination of the stored products
    ``H q_j``), not from the Lanczos recurrence alone. ``vectors`` (k, dim) are the flat unit
    eigenvectors (sign: largest-magnitude entry positive); ``eigenvectors[i]`` is vector ``i`` as
    parameter-shaped tensors. ``n_hvps`` counts the HVPs spent.
    """

    eigenvalues: np.ndarray
    residual_norms: np.ndarray
    converged: np.ndarray
    vectors: np.ndarray
    eigenvectors: list[list[torch.Tensor]]
    n_hvps: int
    which: str
    tol: float


def _wanted(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the k wanted Ritz values, in output order."""
    if which == "LA":
        return np.argsort(-theta, kind="stable")[:k]
    if which == "SA":
        return np.argsort(theta, kind="stable")[:k]
    return np.argsort(-np.abs(theta), kind="stable")[:k]


def _default_tol(dtype: torch.dtype) -> float:
    return 1e-8 if dtype == torch.float64 else 1e-4


def top_eigen(
    op: SymmetricOperator,
    k: int = 1,
    *,
    which: str = "LA",
    tol: float | None = None,
    max_hvps: int | None = None,
    seed: int = 0,
    v0: torch.Tensor | None = None,
) -> Eigenpairs:
    """The ``k`` largest (``"LA"``), smallest (``"SA"``: negative curvature) or largest-magnitude
    (``"LM"``) eigenpairs, by Lanczos with full reorthogonalization from a seeded random start.

    The run stops once every wanted Ritz pair has residual ``||H y - theta y|| <= tol * scale``
    with ``scale = max(|theta|, sqrt(eps) * max |theta_j|)`` (a relative residual; the eigenvalue
    error is at most the residual, and about residual^2 / gap). Default ``tol``: 1e-8 in float64,
    1e-4 in float32. ``max_hvps`` caps the Krylov dimension (default ``min(dim, max(300, 20 k))``;
    the basis and its images take ``2 * max_hvps * dim`` numbers at most); pairs that did not
    converge are flagged in ``converged`` and a warning is raised.

    Single-vector Lanczos finds one copy of each distinct eigenvalue: an exactly repeated
    eigenvalue among the wanted ones is reported once (block methods are needed for those).
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, not {which!r}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= op.dim:
        raise ValueError(f"k must be an integer in [1, {op.dim}] (the dimension), got {k!r}")
    tol = _default_tol(op.dtype) if tol is None else float(tol)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if max_hvps is None:
        max_hvps = min(op.dim, max(300, 20 * k))
    if max_hvps < k:
        raise ValueError(f"max_hvps ({max_hvps}) must be at least k ({k})")
    floor = math.sqrt(torch.finfo(op.dtype).eps)

    def residual_bounds(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta, S = _tridiagonal_eigh(alphas, betas[:-1])
        idx = _wanted(theta, k, which)
        scale = np.maximum(np.abs(theta[idx]), floor * np.abs(theta).max())
        return np.abs(betas[-1] * S[-1, idx]), scale

    def should_stop(alphas: np.ndarray, betas: np.ndarray) -> bool:
        if len(alphas) < k:
            return False
        res, scale = residual_bounds(alphas, betas)
        return bool(np.all(res <= tol * scale))

    hvps_before = op.n_hvps
    dec = lanczos(op, max_hvps, v0=v0, seed=seed, store_products=True, should_stop=should_stop)
    theta, S = dec.ritz()
    idx = _wanted(theta, k, which)
    coeffs = torch.as_tensor(S[:, idx].T, dtype=op.dtype, device=op.device)  # (k, m)
    Y = coeffs @ dec.basis
    HY = coeffs @ dec.products
    norms = Y.norm(dim=1, keepdim=True)
    Y, HY = Y / norms, HY / norms
    values = theta[idx]
    lam = torch.as_tensor(values, dtype=op.dtype, device=op.device)[:, None]
    residuals = (HY - lam * Y).norm(dim=1).cpu().numpy().astype(np.float64)
    scale = np.maximum(np.abs(values), floor * np.abs(theta).max())
    # The stopping test used the recurrence's residual bound; recheck with the true residuals,
    # allowing for rounding in the products themselves.
    eps = torch.finfo(op.dtype).eps
    converged = residuals <= tol * scale + 100 * eps * np.abs(theta).max()
    # Deterministic sign: the largest-magnitude entry of each vector is positive.
    signs = torch.sign(Y.gather(1, Y.abs().argmax(dim=1, keepdim=True)))
    signs[signs == 0] = 1
    Y = Y * signs
    if not converged.all():
        warnings.warn(
            f"top_eigen: {int((~converged).sum())} of {k} eigenpairs did not reach tol={tol:g} "
            f"within {dec.n_steps} HVPs (relative residuals "
            f"{np.array2string(residuals / scale, precision=2)}); raise max_hvps or tol",
            RuntimeWarning,
            stacklevel=2,
        )
    return Eigenpairs(
        eigenvalues=values.astype(np.float64),
        residual_norms=residuals,
        converged=converged,
        vectors=Y.cpu().numpy().astype(np.float64),
        eigenvectors=[op.unflatten(y) for y in Y],
        n_hvps=op.n_hvps - hvps_before,
        which=which,
        tol=tol,
    )
