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
    """A preallocated stack of row vectors, for the Krylov basis and its images: ``capacity``
    rows are allocated once (no copying as it grows, so the peak is known before the run)."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device, capacity: int):
        self.data = torch.empty((max(capacity, 1), n), dtype=dtype, device=device)
        self.size = 0

    def append(self, row: torch.Tensor) -> None:
        if self.size == self.data.shape[0]:
            raise RuntimeError(f"the basis holds at most {self.size} vectors")
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
    orthonormal Lanczos vectors (None when only a window was kept) and ``products`` (m, dim),
    when kept, their images ``H q_j``.
    ``seconds`` is the cumulative wall time after each step.
    """

    alphas: np.ndarray
    betas: np.ndarray
    basis: torch.Tensor | None
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


#: From this dimension on, the dot products and norms that enter T are accumulated in float64:
#: a float32 dot over millions of entries carries relative errors near 1e-4 (the default float32
#: tol), which left Ritz pairs whose recurrence said "converged" with true residuals above tol.
#: Below it float32 accumulation is accurate enough, and the numbers stay what they were.
WIDE = 1 << 20

#: Entries per block of a float64-accumulated dot product (bounds the temporary copies).
_DOT_BLOCK = 1 << 20


def _wide(v: torch.Tensor) -> bool:
    return v.dtype != torch.float64 and v.numel() >= WIDE


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """``a . b`` as a float: in the tensors' dtype for short vectors, else accumulated in float64
    block by block (the temporaries are two blocks)."""
    if not _wide(a):
        return torch.dot(a, b).item()
    total = 0.0
    for s in range(0, a.numel(), _DOT_BLOCK):
        total += torch.dot(a[s : s + _DOT_BLOCK].double(), b[s : s + _DOT_BLOCK].double()).item()
    return total


def lanczos(
    op: SymmetricOperator,
    n_steps: int,
    *,
    v0: torch.Tensor | None = None,
    seed: int = 0,
    store_products: bool = False,
    should_stop: Callable[[np.ndarray, np.ndarray], bool] | None = None,
    max_basis: int | None = None,
) -> LanczosDecomposition:
    """Run ``n_steps`` (at most ``dim``) Lanczos steps with full reorthogonalization.

    Each new vector is orthogonalized against the whole basis twice (classical Gram-Schmidt
    twice, "twice is enough": Giraud, Langou & Rozloznik 2005), which keeps the basis orthonormal
    to working precision and avoids the spurious copies of converged eigenvalues of plain Lanczos
    (Golub & Van Loan, sec. 10.3). If the Krylov space becomes invariant (``beta`` ~ 0), the run
    continues from a fresh random vector orthogonal to the basis, with a zero coupling in T.
    ``should_stop(alphas, betas)`` is called after every step and may end the run early.

    ``max_basis`` bounds memory: only the latest ``max_basis`` vectors are kept (a ring) and
    each new vector is reorthogonalized against those (local reorthogonalization; Parlett,
    *The Symmetric Eigenvalue Problem*, 1998, ch. 13). T then equals full reorthogonalization's
    only up to the loss of orthogonality to older vectors, which can add spurious copies of
    converged Ritz values; Gauss quadrature (:func:`~saddles.hessian.spectral_density`) is
    robust to that (Meurant & Strakos, Acta Numerica 2006). The decomposition then has no
    ``basis``, and ``store_products`` is refused.
    """
    n = op.dim
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    m = min(int(n_steps), n)
    window = m if max_basis is None else min(m, int(max_basis))
    if window < 2 and m > 1:
        raise ValueError(f"max_basis must be at least 2, got {max_basis!r}")
    if store_products and window < m:
        raise ValueError("store_products needs the whole basis (max_basis >= n_steps)")
    gen = generator(seed)
    q = _start_vector(op, v0, gen)
    Q = torch.empty((window, n), dtype=op.dtype, device=op.device)  # a ring when window < m
    W = _Rows(n, op.dtype, op.device, m) if store_products else None
    alphas: list[float] = []
    betas: list[float] = []
    seconds: list[float] = []
    eps = torch.finfo(op.dtype).eps
    anorm = 0.0
    start = time.perf_counter()
    for j in range(m):
        Q[j % window] = q
        rows = Q[: min(j + 1, window)]
        w = op.matvec(q)
        if not torch.isfinite(w).all():
            raise FloatingPointError(f"the operator returned non-finite values at Lanczos step {j}")
        if W is not None:
            W.append(w)
        alpha = _dot(q, w)
        w = w - alpha * q
        if j > 0:
            w = w - betas[-1] * Q[(j - 1) % window]
        beta, correction = _reorthogonalize(rows, w, j % window)
        alpha += correction
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
                w = w - rows.T @ (rows @ w)
            beta = _dot(w, w) ** 0.5 if _wide(w) else w.norm().item()
        q = w / beta
    return LanczosDecomposition(
        alphas=np.array(alphas),
        betas=np.array(betas),
        basis=Q[: len(alphas)] if window == m else None,
        products=None if W is None else W.rows,
        seconds=np.array(seconds),
    )


# --------------------------------------------------------------------------------------------
# Extreme eigenpairs
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Extreme eigenpairs
# --------------------------------------------------------------------------------------------

#: Krylov storage :func:`top_eigen` may use by default (bytes), unless ``2 k + 6`` vectors of the
#: operator's dimension take more: small models keep the whole basis and its products (the
#: fewest HVPs), models of millions of parameters restart within a basis of a few times k.
DEFAULT_MEMORY = 256 << 20

#: Columns per block when the basis is rotated in place at a restart (bounds the temporary).
_BLOCK = 1 << 20


@dataclass(frozen=True)
class KrylovPlan:
    """How :func:`top_eigen` holds its Krylov space within a memory budget.

    ``window``: basis vectors held at once (the Krylov dimension between restarts);
    ``products``: whether their images ``H q_j`` are kept too (else the final residuals cost
    ``k`` extra HVPs); ``restarts``: whether the window is below what the run may need, so a
    thick restart can happen; ``memory``: the budget in bytes and ``vector_bytes`` one vector's.
    ``strategy`` says it in words (it is recorded with the eigenpairs).
    """

    window: int
    products: bool
    restarts: bool
    memory: int
    vector_bytes: int

    @property
    def strategy(self) -> str:
        basis = (f"thick restart within {self.window} basis vectors" if self.restarts
                 else f"whole basis (up to {self.window} vectors)")  # fmt: skip
        tail = "with their products" if self.products else "true residuals from k extra HVPs"
        return f"{basis}, {tail}"

    @property
    def peak_bytes(self) -> int:
        """Storage of the basis, the products if kept, and the ``k`` returned vectors is at most
        the budget; this is the basis and products part."""
        return self.window * self.vector_bytes * (2 if self.products else 1)


def krylov_plan(
    dim: int, itemsize: int, k: int, max_hvps: int, memory: int | None = None
) -> KrylovPlan:
    """Choose the window and whether products are kept, so that basis + products + the ``k``
    returned vectors fit ``memory`` bytes (default: :data:`DEFAULT_MEMORY`, or ``2 k + 6``
    vectors if that is more). The whole basis when it fits (no restart: today's fewest-HVP
    run), else a thick restart within the window (Wu & Simon 2000)."""
    vector_bytes = int(dim) * int(itemsize)
    if memory is None:
        memory = max(DEFAULT_MEMORY, (2 * k + 6) * vector_bytes)
    if not isinstance(memory, (int, np.integer)) or isinstance(memory, bool) or memory < 1:
        raise ValueError(f"memory must be a positive number of bytes, not {memory!r}")
    memory = int(memory)
    need = min(max_hvps, dim)
    window = min(need, memory // vector_bytes - k)
    smallest = min(need, k + 2)
    if window < smallest:
        raise ValueError(
            f"memory={memory} bytes holds {memory // vector_bytes} vectors of {vector_bytes} "
            f"bytes; the top {k} eigenpairs need at least {smallest + k} "
            f"({(smallest + k) * vector_bytes} bytes)"
        )
    products = (2 * window + k) * vector_bytes <= memory
    return KrylovPlan(window, products, window < need, memory, vector_bytes)


@dataclass(frozen=True)
class Eigenpairs:
    """Extreme eigenpairs of a symmetric operator.

    ``eigenvalues`` (k,) in the order asked for (LA: descending, SA: ascending, LM: by decreasing
    magnitude); ``residual_norms`` (k,) are ``||H v - lambda v||`` for the returned unit vectors,
    computed from the HVPs actually made (``H v`` as the same combination of the stored products
    ``H q_j``, or one extra HVP per vector when the products were not kept), not from the Lanczos
    recurrence alone. ``vectors`` (k, dim) are the flat unit eigenvectors in the operator's dtype
    (sign: largest-magnitude entry positive); ``eigenvectors[i]`` is vector ``i`` as
    parameter-shaped tensors (views of the same memory where dtype and device agree).
    ``n_hvps`` counts the HVPs spent; ``strategy`` says how the Krylov basis was held
    (:class:`KrylovPlan`) and ``restarts`` how often it was restarted. ``hvp_noise``, when
    measured (only when a true residual missed ``tol`` although the recurrence reached it), is
    the rounding error of the operator's products near the vectors; a pair whose residual it
    explains counts as converged: the accuracy the products allow.
    """

    eigenvalues: np.ndarray
    residual_norms: np.ndarray
    converged: np.ndarray
    vectors: np.ndarray
    eigenvectors: list[list[torch.Tensor]]
    n_hvps: int
    which: str
    tol: float
    strategy: str = ""
    restarts: int = 0
    hvp_noise: float | None = None


def _wanted(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the k wanted Ritz values, in output order."""
    if which == "LA":
        return np.argsort(-theta, kind="stable")[:k]
    if which == "SA":
        return np.argsort(theta, kind="stable")[:k]
    return np.argsort(-np.abs(theta), kind="stable")[:k]


def _default_tol(dtype: torch.dtype) -> float:
    return 1e-8 if dtype == torch.float64 else 1e-4


def _start_vector(op: SymmetricOperator, v0: torch.Tensor | None, gen) -> torch.Tensor:
    """The unit starting vector: ``v0`` normalized, or a seeded Gaussian one."""
    q = gaussian((op.dim,), gen, op) if v0 is None else op._check_tensor(v0, "v0", ndim=1).clone()
    norm = q.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("the starting vector must be finite and nonzero")
    return q / norm


def _reorthogonalize(rows: torch.Tensor, w: torch.Tensor, j: int) -> tuple[float, float]:
    """Orthogonalize ``w`` against ``rows`` in place by classical Gram-Schmidt; return its norm
    after and the correction to row ``j``'s coefficient (alpha). Twice for short vectors ("twice
    is enough", Giraud, Langou & Rozloznik 2005: the numbers of earlier releases); for wide ones
    a second pass only when the first removed more than ``1 - 1/sqrt(2)`` of the norm, the
    criterion of Daniel, Gragg, Kaufman & Stewart (Math. Comp. 30, 1976), which keeps the basis
    orthonormal to working precision at about half the reads of the basis."""
    correction = 0.0
    if not _wide(w):
        for _ in range(2):
            c = rows @ w
            w.sub_(rows.T @ c)
            correction += c[j].item()
        return w.norm().item(), correction
    norm = _dot(w, w) ** 0.5
    for _ in range(2):
        c = rows @ w
        w.sub_(rows.T @ c)
        correction += c[j].item()
        after = _dot(w, w) ** 0.5
        if after > norm / math.sqrt(2):
            break
        norm = after
    return after, correction


def _rotate_rows(rows: torch.Tensor, size: int, coeffs: np.ndarray) -> None:
    """``rows[:l] = coeffs.T @ rows[:size]`` in place, ``l = coeffs.shape[1]``, one block of
    columns at a time, so the temporary is ``l x _BLOCK`` numbers, not another basis."""
    C = torch.as_tensor(coeffs.T, dtype=rows.dtype, device=rows.device)
    kept = coeffs.shape[1]
    for a in range(0, rows.shape[1], _BLOCK):
        block = C @ rows[:size, a : a + _BLOCK]
        rows[:kept, a : a + _BLOCK] = block


def top_eigen(
    op: SymmetricOperator,
    k: int = 1,
    *,
    which: str = "LA",
    tol: float | None = None,
    max_hvps: int | None = None,
    seed: int = 0,
    v0: torch.Tensor | None = None,
    memory: int | None = None,
) -> Eigenpairs:
    """The ``k`` largest (``"LA"``), smallest (``"SA"``: negative curvature) or largest-magnitude
    (``"LM"``) eigenpairs, by Lanczos with full reorthogonalization from a seeded random start,
    in at most ``memory`` bytes of Krylov storage.

    The run stops once every wanted Ritz pair has residual ``||H y - theta y|| <= tol * scale``
    with ``scale = max(|theta|, sqrt(eps) * max |theta_j|)`` (a relative residual; the eigenvalue
    error is at most the residual, and about residual^2 / gap). Default ``tol``: 1e-8 in float64,
    1e-4 in float32. ``max_hvps`` caps the products (default ``min(dim, max(300, 20 k))``);
    pairs that did not converge are flagged in ``converged`` and a warning is raised.

    Memory (:func:`krylov_plan`): where the whole basis fits the budget the run is plain
    Lanczos with every vector kept (and their products, if they fit too, for the final
    residuals). Otherwise the basis is capped at the budget's window and the run is restarted
    thickly when it fills (Wu & Simon, *Thick-restart Lanczos method for large symmetric
    eigenvalue problems*, SIAM J. Matrix Anal. Appl. 22, 2000): the best Ritz vectors are kept,
    rotated in place, the residual vector continues the basis, and the projected matrix becomes
    an arrowhead; memory stays bounded at the price of extra HVPs. The projected matrix is
    float64 throughout.

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
    itemsize = torch.empty((), dtype=op.dtype).element_size()
    plan = krylov_plan(op.dim, itemsize, int(k), int(max_hvps), memory)
    floor = math.sqrt(torch.finfo(op.dtype).eps)
    eps = torch.finfo(op.dtype).eps
    n, window = op.dim, plan.window

    hvps_before = op.n_hvps
    gen = generator(seed)
    q = _start_vector(op, v0, gen)
    Q = torch.empty((window, n), dtype=op.dtype, device=op.device)
    W = torch.empty((window, n), dtype=op.dtype, device=op.device) if plan.products else None
    # Before the first restart T is tridiagonal (alphas, betas, solved as such); after it, the
    # dense projected matrix T (float64) with an arrowhead block from the kept Ritz pairs.
    alphas: list[float] = []
    betas: list[float] = []
    T = np.zeros((window, window)) if plan.restarts else None
    arrow: np.ndarray | None = None  # couplings of the next vector to the kept Ritz vectors
    restarts, size, steps, anorm, prev_beta = 0, 0, 0, 0.0, 0.0
    while True:
        j = size
        Q[j] = q
        w = op.matvec(q)
        steps += 1
        if not torch.isfinite(w).all():
            raise FloatingPointError(f"the operator returned non-finite values at Lanczos step {j}")
        if W is not None:
            W[j] = w
        # In place from here: a step holds w and one temporary beside the basis.
        alpha = _dot(q, w)
        w.sub_(alpha * q)
        coupling = 0.0
        if arrow is not None:
            w.sub_(Q[:j].T @ torch.as_tensor(arrow, dtype=op.dtype, device=op.device))
            coupling = float(np.abs(arrow).sum())
        elif j > 0:
            coupling = prev_beta
            w.sub_(coupling * Q[j - 1])
        rows = Q[: j + 1]
        beta, correction = _reorthogonalize(rows, w, j)
        alpha += correction
        size = j + 1
        anorm = max(anorm, abs(alpha) + beta + coupling)
        if restarts == 0:
            alphas.append(alpha)
            betas.append(beta)
            theta, S = _tridiagonal_eigh(np.array(alphas), np.array(betas)[:-1])
        else:
            T[j, j] = alpha
            if arrow is not None:
                T[:j, j] = T[j, :j] = arrow
            elif j > 0:
                T[j - 1, j] = T[j, j - 1] = prev_beta
            theta, S = np.linalg.eigh(T[:size, :size])
        arrow = None
        idx = _wanted(theta, k, which)
        if size >= k:
            scale = np.maximum(np.abs(theta[idx]), floor * np.abs(theta).max())
            # After restarts the recurrence's bound runs a little below the true residual (the
            # rotated basis is orthonormal to rounding only): stop at a quarter of tol there.
            if np.all(np.abs(beta * S[-1, idx]) <= (tol if restarts == 0 else tol / 4) * scale):
                break
        if steps >= max_hvps or (restarts == 0 and size == n):
            break
        if beta <= 1e3 * eps * anorm:  # invariant subspace: go on from a vector orthogonal to it
            beta = 0.0
            if restarts == 0:
                betas[-1] = 0.0
            w = gaussian((n,), gen, op)
            for _ in range(2):
                w.sub_(Q[:size].T @ (Q[:size] @ w))
            q = w.div_(w.norm())
        else:
            q = w.div_(beta)
        prev_beta = beta
        if size == window:  # thick restart: keep the best Ritz vectors, continue with q
            keep = _wanted(theta, min(window - 2, k + max(1, (window - k) // 3)), which)
            _rotate_rows(Q, size, S[:, keep])
            if W is not None:
                _rotate_rows(W, size, S[:, keep])
            if T is None:  # pragma: no cover - a window below the need always has T
                raise RuntimeError("restart without a projected matrix")
            T[:] = 0.0
            size = len(keep)
            T[np.arange(size), np.arange(size)] = theta[keep]
            arrow = beta * S[-1, keep]
            restarts += 1

    bound = np.abs(beta * S[-1, idx])  # the recurrence's residuals, as the stopping test saw
    coeffs = torch.as_tensor(S[:, idx].T, dtype=op.dtype, device=op.device)  # (k, size)
    Y = coeffs @ Q[:size]
    HY = coeffs @ W[:size] if W is not None else None
    del Q, W, rows, w, q  # the basis (and views of it) go before the residuals are formed
    norms = Y.norm(dim=1, keepdim=True)
    Y.div_(norms)
    values = theta[idx]
    lam = torch.as_tensor(values, dtype=op.dtype, device=op.device)[:, None]
    if HY is not None:
        HY = HY / norms
        residuals = (HY - lam * Y).norm(dim=1).cpu().numpy().astype(np.float64)
    else:  # one product per returned vector, one vector at a time
        residuals = np.array([(op.matvec(Y[i]) - lam[i] * Y[i]).norm().item()
                              for i in range(len(idx))])  # fmt: skip
    scale = np.maximum(np.abs(values), floor * np.abs(theta).max())
    # The stopping test used the recurrence's residual bound; recheck with the true residuals,
    # allowing for rounding in the products themselves.
    converged = residuals <= tol * scale + 100 * eps * np.abs(theta).max()
    hvp_noise = None
    if not converged.all() and np.any(bound[~converged] <= tol * scale[~converged]):
        # Lanczos converged in its own arithmetic but a true residual did not: in float32 a
        # network's HVP is itself inexact (far above eps at millions of parameters), and no
        # residual can go below that. Measure it by linearity, ||H y + H z - H (y + z)|| for a
        # seeded unit z (exact arithmetic gives 0; three products' rounding does not), and
        # accept pairs whose residual that noise explains: the attainable accuracy.
        hvp_noise = _linearity_defect(op, Y[int(np.flatnonzero(~converged)[0])], gen)
        explained = (bound <= tol * scale) & (residuals <= tol * scale + 2 * hvp_noise)
        converged = converged | explained
    # Deterministic sign: the largest-magnitude entry of each vector is positive.
    signs = torch.sign(Y.gather(1, Y.abs().argmax(dim=1, keepdim=True)))
    signs[signs == 0] = 1
    Y.mul_(signs)
    if not converged.all():
        warnings.warn(
            f"top_eigen: {int((~converged).sum())} of {k} eigenpairs did not reach tol={tol:g} "
            f"within {op.n_hvps - hvps_before} HVPs (relative residuals "
            f"{np.array2string(residuals / scale, precision=2)}"
            f"{'' if hvp_noise is None else f', HVP noise {hvp_noise:.2g}'}); raise max_hvps "
            "or tol",
            RuntimeWarning,
            stacklevel=2,
        )
    return Eigenpairs(
        eigenvalues=values.astype(np.float64),
        residual_norms=residuals,
        converged=converged,
        vectors=Y.cpu().numpy(),
        eigenvectors=[op.unflatten(y) for y in Y],
        n_hvps=op.n_hvps - hvps_before,
        which=which,
        tol=tol,
        strategy=plan.strategy,
        restarts=restarts,
        hvp_noise=hvp_noise,
    )


def _linearity_defect(op: SymmetricOperator, y: torch.Tensor, gen: torch.Generator) -> float:
    """``||H y + H z - H (y + z)||`` for a seeded random unit ``z``: the size of the rounding
    errors of the operator's products near ``y`` (three products)."""
    z = gaussian((op.dim,), gen, op)
    z = z / z.norm()
    hy, hz = op.matvec(y), op.matvec(z)
    z.add_(y)
    return float((hy.add_(hz).sub_(op.matvec(z))).norm().item())
