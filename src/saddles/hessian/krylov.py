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
the basis (``m`` vectors of the parameter dimension) where the memory budget allows, and
restart thickly within it where it does not (:func:`krylov_plan`).

At language-model size (:data:`WIDE` entries and more) every pass over the basis is a pass over
gigabytes, so a step of :func:`top_eigen` is streamed (:func:`_orthogonalize`): one pass of
classical Gram-Schmidt over the whole basis and at most one more, dot products block-summed in
float64, no temporary vector; the Ritz vectors are formed inside the basis.

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

#: Entries per block of a blocked dot product: each block is summed by BLAS in the vectors'
#: dtype (about ``sqrt(2^16) eps`` relative error) and the block sums in float64. Measured at
#: 70M entries in float32: 1e-11 relative error for a dot (a single BLAS call: 6e-6) and 1e-8
#: for ``rows @ w`` (a single gemv: 5e-4), at the speed of one float32 pass (converting
#: blocks to float64 first was as accurate and 12 times slower).
_DOT_BLOCK = 1 << 16


def _wide(v: torch.Tensor) -> bool:
    return v.dtype != torch.float64 and v.numel() >= WIDE


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """``a . b`` as a float: one BLAS call for short vectors, else block by block with the
    block sums accumulated in float64."""
    if not _wide(a):
        return torch.dot(a, b).item()
    return float(_coefficients(a[None], b)[0])


def _coefficients(rows: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    """``rows @ w`` in float64, from float32 products over blocks of :data:`_DOT_BLOCK`
    columns (no copy of ``rows``: each block is a strided view)."""
    if not _wide(w):
        return (rows @ w).double().cpu().numpy()
    parts = [rows[:, s : s + _DOT_BLOCK] @ w[s : s + _DOT_BLOCK]
             for s in range(0, w.numel(), _DOT_BLOCK)]  # fmt: skip
    return torch.stack(parts).double().sum(0).cpu().numpy()


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

#: Krylov storage :func:`top_eigen` may use by default (bytes), unless :func:`default_memory`'s
#: few times k vectors of the operator's dimension take more: small models keep the whole basis
#: and its products (the fewest HVPs), models of millions of parameters restart within a basis
#: of a few times k.
DEFAULT_MEMORY = 256 << 20


def default_memory(dim: int, itemsize: int, k: int) -> int:
    """The default budget in bytes: :data:`DEFAULT_MEMORY`, or ``2 k + 2`` vectors if that is
    more (a window of 12 for the top 5: 7 Ritz vectors kept at each restart, 5 new directions
    between restarts)."""
    return max(DEFAULT_MEMORY, (2 * int(k) + 2) * int(dim) * int(itemsize))


#: Columns per block when the basis is rotated in place at a restart: the temporary is the
#: kept rows of one block (a few MB), not a fraction of the basis.
_BLOCK = 1 << 16


@dataclass(frozen=True)
class KrylovPlan:
    """How :func:`top_eigen` holds its Krylov space within a memory budget.

    ``window``: basis vectors held at once (the Krylov dimension between restarts);
    ``products``: whether their images ``H q_j`` are kept too (else the final residuals cost
    ``k`` extra HVPs); ``restarts``: whether the window is below what the run may need, so a
    thick restart can happen; ``in_place``: whether the ``k`` Ritz vectors are formed inside
    the basis at the end (vectors of :data:`WIDE` entries or more, without products) rather
    than beside it; ``memory``: the budget in bytes and ``vector_bytes`` one vector's.
    ``strategy`` says it in words (it is recorded with the eigenpairs).
    """

    window: int
    products: bool
    restarts: bool
    memory: int
    vector_bytes: int
    in_place: bool = False

    @property
    def strategy(self) -> str:
        basis = (f"thick restart within {self.window} basis vectors" if self.restarts
                 else f"whole basis (up to {self.window} vectors)")  # fmt: skip
        tail = "with their products" if self.products else "true residuals from k extra HVPs"
        return f"{basis}, {tail}"

    def storage_bytes(self, steps: int, k: int) -> int:
        """What a run of ``steps`` products stores: the basis (and products), and the ``k``
        returned vectors unless they are formed in place. At most the budget."""
        rows = min(steps, self.window) * (2 if self.products else 1)
        return (rows + (0 if self.in_place else k)) * self.vector_bytes


def krylov_plan(
    dim: int, itemsize: int, k: int, max_hvps: int, memory: int | None = None
) -> KrylovPlan:
    """Choose the window and whether products are kept, so that basis + products + the ``k``
    returned vectors fit ``memory`` bytes (default: :func:`default_memory`). The whole basis
    when it fits (no restart: the fewest HVPs), else a thick restart within the window (Wu &
    Simon 2000). From :data:`WIDE` entries on, without products, the Ritz vectors are formed
    inside the basis, so the whole budget is basis."""
    vector_bytes = int(dim) * int(itemsize)
    if memory is None:
        memory = default_memory(dim, itemsize, k)
    if not isinstance(memory, (int, np.integer)) or isinstance(memory, bool) or memory < 1:
        raise ValueError(f"memory must be a positive number of bytes, not {memory!r}")
    memory = int(memory)
    need = min(max_hvps, dim)
    if (2 * need + k) * vector_bytes <= memory:
        return KrylovPlan(need, True, False, memory, vector_bytes)
    in_place = dim >= WIDE
    beside = 0 if in_place else k  # the returned vectors, when formed beside the basis
    window = min(need, memory // vector_bytes - beside)
    smallest = min(need, k + 2)
    if window < smallest:
        raise ValueError(
            f"memory={memory} bytes holds {memory // vector_bytes} vectors of {vector_bytes} "
            f"bytes; the top {k} eigenpairs need at least {smallest + beside} "
            f"({(smallest + beside) * vector_bytes} bytes)"
        )
    products = (2 * window + k) * vector_bytes <= memory
    return KrylovPlan(window, products, window < need, memory, vector_bytes,
                      in_place and not products)  # fmt: skip


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
        c = _coefficients(rows, w)
        w.addmv_(rows.T, torch.as_tensor(c, dtype=w.dtype, device=w.device), alpha=-1)
        correction += float(c[j])
        after = _dot(w, w) ** 0.5
        if after > norm / math.sqrt(2):
            break
        norm = after
    return after, correction


class _Basis:
    """The Krylov basis of :func:`top_eigen`: ``window`` preallocated rows of the operator's
    dimension, one matrix, or with ``head`` (0 < head < window) two: the first ``head`` rows and
    the rest, so that the Ritz vectors, formed in place in the first rows at the end
    (:meth:`rotate`), outlive the others (:meth:`release`). Products with the basis are block by
    block with float64 sums for wide vectors (:func:`_coefficients`) and subtractions are in
    place, so a step allocates no vector of its own."""

    def __init__(self, window: int, n: int, dtype: torch.dtype, device: torch.device,
                 head: int = 0):  # fmt: skip
        head = head if 0 < head < window else window
        self.parts = [torch.empty((head, n), dtype=dtype, device=device)]
        if head < window:
            self.parts.append(torch.empty((window - head, n), dtype=dtype, device=device))
        self.head = head

    def row(self, i: int) -> torch.Tensor:
        return self.parts[0][i] if i < self.head else self.parts[1][i - self.head]

    def _pieces(self, size: int) -> list[tuple[torch.Tensor, int]]:
        """The rows ``[0, size)`` as (part rows, offset of their first) pieces."""
        pieces = [(self.parts[0][: min(size, self.head)], 0)]
        if size > self.head:
            pieces.append((self.parts[1][: size - self.head], self.head))
        return pieces

    def coefficients(self, w: torch.Tensor, size: int) -> np.ndarray:
        """``rows[:size] @ w`` in float64."""
        return np.concatenate([_coefficients(rows, w) for rows, _ in self._pieces(size)])

    def subtract(self, w: torch.Tensor, c: np.ndarray) -> None:
        """``w -= rows[:len(c)].T @ c`` in place."""
        for rows, at in self._pieces(len(c)):
            cc = torch.as_tensor(c[at : at + len(rows)], dtype=w.dtype, device=w.device)
            w.addmv_(rows.T, cc, alpha=-1)

    def rotate(self, size: int, coeffs: np.ndarray) -> None:
        """``rows[:l] = coeffs.T @ rows[:size]`` in place (``l = coeffs.shape[1]``), one block
        of columns at a time: the temporary is ``l`` rows of a block, not another basis."""
        pieces = self._pieces(size)
        dtype, device = self.parts[0].dtype, self.parts[0].device
        Cs = [torch.as_tensor(coeffs[at : at + len(rows)].T, dtype=dtype, device=device)
              for rows, at in pieces]  # fmt: skip
        kept = coeffs.shape[1]
        for a in range(0, self.parts[0].shape[1], _BLOCK):
            cols = slice(a, a + _BLOCK)
            block = Cs[0] @ pieces[0][0][:, cols]
            for C, (rows, _) in zip(Cs[1:], pieces[1:], strict=True):
                block.addmm_(C, rows[:, cols])
            self.parts[0][: min(kept, self.head), cols] = block[: self.head]
            if kept > self.head:
                self.parts[1][: kept - self.head, cols] = block[self.head :]

    def release(self) -> torch.Tensor:
        """Free every row past the head and return the head."""
        del self.parts[1:]
        return self.parts[0]


def _orthogonalize(
    basis: _Basis, w: torch.Tensor, j: int, first: int, ww: float
) -> tuple[float, float]:
    """Lanczos step ``j`` for wide vectors: ``w`` (the product ``H q_j``, squared norm ``ww``)
    minus its projection on the basis rows ``0..j``, in place; returns ``(alpha_j, ||w||)``.

    One pass (classical Gram-Schmidt over the whole basis) removes the recurrence's own terms
    (rows ``first..j``: the three-term or arrowhead couplings) and whatever orthogonality was
    lost, reading the basis once instead of once per term. A second pass follows when the first
    kept less than ``1/sqrt(2)`` of the norm the recurrence alone would leave (the criterion of
    Daniel, Gragg, Kaufman & Stewart 1976), and always when that norm, a difference of squares,
    is too small to be trusted."""
    c = basis.coefficients(w, j + 1)
    basis.subtract(w, c)
    alpha = float(c[j])
    beta = _dot(w, w) ** 0.5
    left = ww - float(np.sum(c[first:] ** 2))
    if not (left > 1e-6 * ww and beta > math.sqrt(left / 2)):
        c = basis.coefficients(w, j + 1)
        basis.subtract(w, c)
        alpha += float(c[j])
        beta = _dot(w, w) ** 0.5
    return alpha, beta


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
    # Wide vectors (WIDE entries or more) take the streamed step (_orthogonalize); shorter ones
    # the step of earlier releases, whose numbers they keep bit for bit.
    streamed = n >= WIDE
    basis = _Basis(window, n, op.dtype, op.device, head=int(k) if plan.in_place else 0)
    Q = basis.parts[0] if len(basis.parts) == 1 else None  # the one matrix, when it is one
    W = _Basis(window, n, op.dtype, op.device) if plan.products else None  # the products
    # Before the first restart T is tridiagonal (alphas, betas, solved as such); after it, the
    # dense projected matrix T (float64) with an arrowhead block from the kept Ritz pairs.
    alphas: list[float] = []
    betas: list[float] = []
    T = np.zeros((window, window)) if plan.restarts else None
    arrow: np.ndarray | None = None  # couplings of the next vector to the kept Ritz vectors
    restarts, size, steps, anorm, prev_beta = 0, 0, 0, 0.0, 0.0
    w: torch.Tensor | None = None
    basis.row(0).copy_(q)
    while True:
        j = size
        q = basis.row(j)  # written there by the previous step
        w = None  # the previous product goes before the next is made
        w = op.matvec(q)
        steps += 1
        # Streamed: a NaN or inf in w makes its squared norm non-finite (no pass of its own).
        ww = _dot(w, w) if streamed else 0.0
        if not (math.isfinite(ww) if streamed else torch.isfinite(w).all()):
            raise FloatingPointError(f"the operator returned non-finite values at Lanczos step {j}")
        if W is not None:
            W.row(j).copy_(w)
        coupling = float(np.abs(arrow).sum()) if arrow is not None else prev_beta * (j > 0)
        if streamed:
            first = 0 if arrow is not None else max(j - 1, 0)
            alpha, beta = _orthogonalize(basis, w, j, first, ww)
        else:
            alpha = _dot(q, w)
            w.sub_(alpha * q)
            if arrow is not None:
                w.sub_(Q[:j].T @ torch.as_tensor(arrow, dtype=op.dtype, device=op.device))
            elif j > 0:
                w.sub_(coupling * Q[j - 1])
            beta, correction = _reorthogonalize(Q[: j + 1], w, j)
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
                if streamed:
                    basis.subtract(w, basis.coefficients(w, size))
                else:
                    w.sub_(Q[:size].T @ (Q[:size] @ w))
            scale = w.norm()
        else:
            scale = beta
        prev_beta = beta
        if size == window:  # thick restart: keep the best Ritz vectors, continue with w
            keep = _wanted(theta, min(window - 2, k + max(1, (window - k) // 3)), which)
            basis.rotate(size, S[:, keep])
            if W is not None:
                W.rotate(size, S[:, keep])
            if T is None:  # pragma: no cover - a window below the need always has T
                raise RuntimeError("restart without a projected matrix")
            T[:] = 0.0
            size = len(keep)
            T[np.arange(size), np.arange(size)] = theta[keep]
            arrow = beta * S[-1, keep]
            restarts += 1
        torch.div(w, scale, out=basis.row(size))  # the next vector, straight into the basis

    bound = np.abs(beta * S[-1, idx])  # the recurrence's residuals, as the stopping test saw
    del w, q
    if plan.in_place:  # the Ritz vectors in the basis's first rows; the other rows freed
        basis.rotate(size, S[:, idx])
        Y, HY = basis.release(), None
    else:
        coeffs = torch.as_tensor(S[:, idx].T, dtype=op.dtype, device=op.device)  # (k, size)
        Y = coeffs @ Q[:size]
        HY = coeffs @ W.parts[0][:size] if W is not None else None
    del basis, Q, W  # the basis (and views of it) go before the residuals are formed
    norms = Y.norm(dim=1, keepdim=True)
    Y.div_(norms)
    values = theta[idx]
    lam = torch.as_tensor(values, dtype=op.dtype, device=op.device)[:, None]
    if HY is not None:
        HY = HY / norms
        residuals = (HY - lam * Y).norm(dim=1).cpu().numpy().astype(np.float64)
    else:  # one product per returned vector, one vector at a time
        residuals = np.array([op.matvec(Y[i]).sub_(Y[i], alpha=lam[i].item()).norm().item()
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
