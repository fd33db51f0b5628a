"""The operator protocol every algorithm is written against, and the dense matrix that tests it.

Owns :class:`SymmetricOperator` (a symmetric ``dim x dim`` map applied to torch vectors: ``matvec``,
``matmat``, ``@``, a scipy ``LinearOperator`` view, ``to_dense``) and :class:`DenseOperator`, an
explicit matrix behind the same interface. Every algorithm in this package is a function of a
``SymmetricOperator``, so a ``DenseOperator`` is always its exact oracle:

>>> import torch
>>> op = DenseOperator(torch.diag(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64)))
>>> op @ torch.ones(3, dtype=torch.float64)
tensor([ 3., -1.,  2.], dtype=torch.float64)
>>> op.n_hvps, op.shape
(1, (3, 3))

The analyses are free functions of an operator (``top_eigen(op, k)``, ``trace(op)``,
``spectral_density(op)``, ``power_iteration(op)``), never methods: the algorithms depend on this
module, never the other way round. This module must not import :mod:`saddles.hessian.hvp` or any
algorithm module (krylov, hutchpp, slq, power), not even for type checking.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse.linalg
import torch


class SymmetricOperator:
    """A symmetric ``dim x dim`` operator applied to torch vectors; the algorithms' interface.

    Subclasses set ``dim``, ``dtype`` and ``device``, implement ``_apply(V)`` for a ``(dim, k)``
    block and count the products they make in ``n_hvps``. This base class validates inputs; the
    analyses are the free functions of :mod:`saddles.hessian` that take an operator.
    """

    dim: int
    dtype: torch.dtype
    device: torch.device
    n_hvps: int = 0

    def _apply(self, V: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dim, self.dim)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Return ``H @ v`` for a torch vector of length ``dim`` (cast to the operator's dtype)."""
        v = self._check_tensor(v, "v", ndim=1)
        return self._apply(v[:, None])[:, 0]

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Return ``H @ V`` for a ``(dim, k)`` torch matrix, batched where the backend allows."""
        V = self._check_tensor(V, "V", ndim=2)
        if V.shape[1] == 0:
            return V.clone()
        return self._apply(V)

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return self.matvec(x) if x.ndim == 1 else self.matmat(x)

    def _check_tensor(self, x: Any, name: str, ndim: int) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, not {type(x).__name__}")
        if x.ndim != ndim or x.shape[0] != self.dim:
            want = f"({self.dim},)" if ndim == 1 else f"({self.dim}, k)"
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
        if x.is_complex():
            raise TypeError(f"{name} must be real, got dtype {x.dtype}")
        return x.detach().to(device=self.device, dtype=self.dtype)

    def unflatten(self, vec: torch.Tensor) -> list[torch.Tensor]:
        """Split a flat vector into a list of tensors; a plain operator returns ``[vec]``."""
        return [vec]

    def to_dense(self, block_size: int = 64) -> torch.Tensor:
        """The full matrix from ``dim`` products, ``block_size`` columns at a time (small only)."""
        cols = []
        for start in range(0, self.dim, block_size):
            stop = min(start + block_size, self.dim)
            E = torch.zeros(self.dim, stop - start, dtype=self.dtype, device=self.device)
            E[torch.arange(start, stop), torch.arange(stop - start)] = 1
            cols.append(self.matmat(E))
        return torch.cat(cols, dim=1)

    def as_linear_operator(self) -> scipy.sparse.linalg.LinearOperator:
        """A ``scipy.sparse.linalg.LinearOperator`` view (numpy in and out; symmetric)."""
        np_dtype = np.float64 if self.dtype == torch.float64 else np.float32

        def mv(x: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.asarray(x).reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(t).cpu().numpy()

        def mm(X: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.asarray(X), dtype=self.dtype, device=self.device)
            return self.matmat(t).cpu().numpy()

        return scipy.sparse.linalg.LinearOperator(
            self.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np_dtype
        )


class DenseOperator(SymmetricOperator):
    """An explicit symmetric matrix as an operator: the exact reference for tests and benchmarks."""

    def __init__(self, matrix: torch.Tensor | np.ndarray, *, check_symmetric: bool = True):
        A = torch.as_tensor(matrix)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"matrix must be square and non-empty, got shape {tuple(A.shape)}")
        if not A.is_floating_point():
            A = A.to(torch.float64)
        if check_symmetric:
            asym = (A - A.T).abs().max().item()
            scale = max(A.abs().max().item(), 1e-300)
            if asym > 100 * torch.finfo(A.dtype).eps * scale:
                raise ValueError(f"matrix is not symmetric (max |A - A^T| = {asym:.3g})")
        self.matrix = A
        self.dim = int(A.shape[0])
        self.dtype = A.dtype
        self.device = A.device
        self.n_hvps = 0

    def _apply(self, V: torch.Tensor) -> torch.Tensor:
        self.n_hvps += V.shape[1]
        return self.matrix @ V
