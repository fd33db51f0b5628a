"""Curvature of the loss: the Hessian as an operator, its extreme eigenpairs, trace and density.

This module owns everything about second derivatives of a model's loss:

- :class:`HessianOperator` turns ``(model, loss, data)`` into a symmetric linear operator over a
  chosen subset of the parameters (``matvec``, ``matmat``, a scipy ``LinearOperator``). Products are
  Hessian-vector products (HVPs, Pearlmutter 1994) computed either by double backward
  (reverse-over-reverse) or by ``torch.func`` forward-over-reverse, whichever is faster for the
  model; a determinism check catches dropout or data that changes between passes.
- :func:`top_eigen`: extreme eigenpairs by Lanczos with full reorthogonalization
  (Golub & Van Loan, *Matrix Computations*, 4th ed., sec. 10.1-10.3).
- :func:`trace`: Hutchinson's estimator (Hutchinson 1989), Hutch++ (Meyer, Musco, Musco & Woodruff,
  "Hutch++: optimal stochastic trace estimation", SOSA 2021), or the exact trace.
- :func:`spectral_density`: stochastic Lanczos quadrature (Ubaru, Chen & Saad, SIMAX 2017;
  Ghorbani, Krishnan & Xiao, ICML 2019), as in PyHessian's figure.
- :func:`power_iteration`: PyHessian's eigenvalue routine (Yao, Gholami, Keutzer & Mahoney,
  "PyHessian", 2020), reproduced as a baseline for the benchmark.

The algorithms are written against :class:`SymmetricOperator`, so they run unchanged on an
explicit matrix (:class:`DenseOperator`), which is how they are tested against exact answers.

Why our own Lanczos rather than scipy's ``eigsh`` (ARPACK): one HVP of a network costs a full
forward and backward pass, while everything else here is cheap. Lanczos with full
reorthogonalization keeps the whole Krylov space: after ``m`` HVPs its largest Ritz value is the
maximum of the Rayleigh quotient over everything those ``m`` products span. ARPACK's implicit
restarts throw part of that space away to bound memory, and spent 1.2-4x more HVPs for the same
residual tolerance on the benchmark's models (``benchmarks/hessian.py`` prints both). We store
the basis (``m`` vectors of the parameter dimension), affordable for the tens to hundreds of steps
used here.

Results cross the module boundary as numpy arrays in small dataclasses; eigenvectors are also given
as lists of parameter-shaped tensors (zeros outside the parameter filter), ready to be used as
landscape directions. This module imports torch; the topology package must not import it.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
from torch.func import functional_call

from saddles.data import Batch, LossFn, as_batches, batch_weights, move_batches

__all__ = [
    "DenseOperator",
    "Eigenpairs",
    "HessianOperator",
    "LanczosDecomposition",
    "NondeterministicHessianError",
    "PowerIteration",
    "SpectralDensity",
    "SymmetricOperator",
    "TraceEstimate",
    "lanczos",
    "power_iteration",
    "select_parameters",
    "spectral_density",
    "top_eigen",
    "trace",
]

ParamFilter = str | Callable[[str], bool] | Sequence[str]

WHICH = ("LA", "SA", "LM")
TRACE_METHODS = ("hutch++", "hutchinson", "exact")
HVP_METHODS = ("auto", "reverse", "forward")


class NondeterministicHessianError(RuntimeError):
    """Two evaluations of the same Hessian-vector product disagreed."""


# --------------------------------------------------------------------------------------------
# Random vectors: generated on the CPU in float64 from a seeded generator, then cast and moved,
# so a seed gives the same directions on every device and in every precision.
# --------------------------------------------------------------------------------------------


def _generator(seed: int) -> torch.Generator:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, not {type(seed).__name__}")
    return torch.Generator().manual_seed(int(seed))


def _gaussian(
    shape: tuple[int, ...], gen: torch.Generator, like: SymmetricOperator
) -> torch.Tensor:
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    return x.to(device=like.device, dtype=like.dtype)


def _rademacher(
    shape: tuple[int, ...], gen: torch.Generator, like: SymmetricOperator
) -> torch.Tensor:
    x = torch.randint(0, 2, shape, generator=gen, dtype=torch.int64) * 2 - 1
    return x.to(device=like.device, dtype=like.dtype)


# --------------------------------------------------------------------------------------------
# The operator protocol
# --------------------------------------------------------------------------------------------


class SymmetricOperator:
    """A symmetric ``dim x dim`` operator applied to torch vectors; the algorithms' interface.

    Subclasses set ``dim``, ``dtype`` and ``device``, implement ``_apply(V)`` for a ``(dim, k)``
    block and count the products they make in ``n_hvps``. This base class validates inputs and
    offers the analyses as methods.
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

    # The analyses, as methods for convenience; each is the module-level function of that name.
    def top_eigen(self, k: int = 1, **kwargs: Any) -> Eigenpairs:
        """See :func:`top_eigen`."""
        return top_eigen(self, k, **kwargs)

    def trace(self, method: str = "hutch++", n_matvecs: int | None = None, **kwargs: Any):
        """See :func:`trace`."""
        return trace(self, method, n_matvecs, **kwargs)

    def spectral_density(self, n_lanczos: int = 90, n_runs: int = 1, **kwargs: Any):
        """See :func:`spectral_density`."""
        return spectral_density(self, n_lanczos, n_runs, **kwargs)

    def power_iteration(self, k: int = 1, **kwargs: Any) -> PowerIteration:
        """See :func:`power_iteration`."""
        return power_iteration(self, k, **kwargs)


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


# --------------------------------------------------------------------------------------------
# Parameter selection
# --------------------------------------------------------------------------------------------


def select_parameters(model: torch.nn.Module, params: ParamFilter = "all") -> list[str]:
    """Names of the parameters the Hessian is taken over, in ``model.named_parameters()`` order.

    ``params`` is ``"all"`` (every parameter that requires grad), ``"weights"`` (those of them
    with ``dim >= 2``: matrices and kernels, no biases or norm scales), a predicate
    ``f(name) -> bool`` over parameters that require grad, or an explicit list of names (which
    may include frozen parameters).
    """
    named = list(model.named_parameters())
    if isinstance(params, str):
        if params == "all":
            names = [n for n, p in named if p.requires_grad]
        elif params == "weights":
            names = [n for n, p in named if p.requires_grad and p.ndim >= 2]
        else:
            raise ValueError(
                f"unknown parameter filter {params!r}: use 'all', 'weights', a predicate "
                "f(name) -> bool, or a list of parameter names"
            )
    elif callable(params):
        names = [n for n, p in named if p.requires_grad and params(n)]
    elif isinstance(params, Sequence):
        wanted = list(params)
        if not all(isinstance(n, str) for n in wanted):
            raise TypeError("a parameter list must hold parameter names (strings)")
        known = {n for n, _ in named}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
            raise ValueError(f"unknown parameter name(s) {unknown}; the model has: {shown}")
        chosen = set(wanted)
        names = [n for n, _ in named if n in chosen]
    else:
        raise TypeError(
            "params must be 'all', 'weights', a predicate f(name) -> bool, or a list of names, "
            f"not {type(params).__name__}"
        )
    if not names:
        raise ValueError(f"the parameter filter {params!r} selected no parameters of the model")
    return names


# --------------------------------------------------------------------------------------------
# The Hessian operator
# --------------------------------------------------------------------------------------------


class _LossModule(torch.nn.Module):
    """Binds ``loss(model, batch)`` to the model so ``functional_call`` can swap the parameters.

    The loss receives the user's own model object (with the swapped parameters in place during
    the call), so losses that differentiate with respect to the inputs (PINNs) or read
    ``model.parameters()`` (weight decay) see the operator's parameters.
    """

    def __init__(self, model: torch.nn.Module, loss: LossFn):
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.loss(self.model, tuple(batch))


def _reiterable(data: Any) -> bool:
    """True for data that can be iterated again to get a fresh pass (a DataLoader, say)."""
    if isinstance(data, (torch.Tensor, tuple, list)):
        return False
    try:
        return iter(data) is not data
    except TypeError:
        return False


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = max(a.norm().item(), b.norm().item())
    return 0.0 if scale == 0.0 else (a - b).norm().item() / scale


class HessianOperator(SymmetricOperator):
    """The Hessian of the batch-weighted average loss over a subset of parameters.

    ``loss(model, batch) -> scalar`` and ``data`` follow :mod:`saddles.data` (wrap a criterion with
    :func:`saddles.data.make_loss`). The Hessian is taken at the parameters the model holds when the
    operator is built (a snapshot: later changes to the model do not affect it), over the
    parameters chosen by ``params`` (see :func:`select_parameters`); the others, and the buffers,
    are held fixed. The flat vector layout follows :attr:`names`.

    Products are Hessian-vector products (Pearlmutter 1994):

    - ``"reverse"``: double backward, ``d/dtheta <grad L(theta), v>``. Works with any loss,
      including PINN losses that call ``torch.autograd.grad`` on the inputs. With
      ``cache_graph`` (default: when the data is a single batch) the gradient graph is built once
      and each product is a single backward pass through it, as in PyHessian.
    - ``"forward"``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``.
    - ``"auto"`` (default) times both on a random vector and keeps the faster (forward-over-reverse
      only if it also agrees with double backward); ``hvp_timings`` holds the seconds per HVP.

    ``matmat`` applies a block of vectors at once where it pays: ``torch.func.vmap`` over the
    forward-over-reverse product, or a batched backward (``is_grads_batched``) through one gradient
    graph. Whether batching is faster depends on the model and the hardware (on CPU it is often
    slower for convolutions), so with ``batched=None`` the first block is timed against single
    products and the faster way is kept; operations without a batching rule fall back to a loop.

    The model runs in eval mode (``train=False``) during every product, and its own mode is
    restored afterwards. ``check_determinism`` computes the same HVP twice (from a fresh pass over
    ``data`` when it can be re-iterated) and raises :class:`NondeterministicHessianError` when they
    differ: dropout in train mode, a loss that samples at random, or data that changes between
    passes make "the Hessian" ill-defined. ``dtype=torch.float64`` runs the model in double
    precision (parameters, buffers and floating data are cast; the model itself is untouched).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss: LossFn,
        data: Any,
        *,
        params: ParamFilter = "all",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        hvp: str = "auto",
        cache_graph: bool | None = None,
        batched: bool | None = None,
        train: bool = False,
        check_determinism: bool = True,
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
        if not callable(loss) or isinstance(loss, (type, torch.nn.modules.loss._Loss)):
            raise TypeError(
                "loss must be callable as loss(model, batch) -> scalar tensor; wrap a criterion "
                "with saddles.data.make_loss(criterion=...)"
            )
        if hvp not in HVP_METHODS:
            raise ValueError(f"hvp must be one of {HVP_METHODS}, not {hvp!r}")
        self.model = model
        self.train_mode = bool(train)
        self._module = _LossModule(model, loss)

        self.names: tuple[str, ...] = tuple(select_parameters(model, params))
        named = dict(model.named_parameters())
        first = named[self.names[0]]
        self.device = torch.device(device) if device is not None else first.device
        self.dtype = dtype if dtype is not None else first.dtype
        if not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating point dtype, not {self.dtype}")
        self.shapes = tuple(tuple(named[n].shape) for n in self.names)
        self.numels = tuple(int(named[n].numel()) for n in self.names)
        self.dim = int(sum(self.numels))
        self._param_meta = [(n, p.shape, p.dtype, p.device) for n, p in named.items()]

        def snapshot(t: torch.Tensor) -> torch.Tensor:
            t = t.detach().to(self.device)
            return (t.to(self.dtype) if t.is_floating_point() else t).clone()

        selected = set(self.names)
        self._theta = torch.cat([snapshot(named[n]).reshape(-1) for n in self.names])
        self._fixed = {f"model.{n}": snapshot(p) for n, p in named.items() if n not in selected}
        self._fixed.update({f"model.{n}": snapshot(b) for n, b in model.named_buffers()})

        self._data = data
        self._batches = self._load(data)
        self.n_batches = len(self._batches)
        self.cache_graph = self.n_batches == 1 if cache_graph is None else bool(cache_graph)
        self._cache: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None
        self.batched = batched
        self.n_hvps = 0
        self.determinism_gap: float | None = None

        probe = _gaussian((self.dim,), _generator(20240101), self)[:, None]
        first_hvp = self._hvp_reverse(probe, self._batches, cached=False)
        if check_determinism:
            self.check_determinism(probe, first_hvp)
        self.hvp_timings: dict[str, float | None] = {"reverse": None, "forward": None}
        self.hvp_unavailable: str | None = None
        self.hvp_method = hvp
        if hvp == "auto":
            self.hvp_method = self._choose_method(probe, first_hvp)
        elif hvp == "forward":
            try:
                gap = _relative_difference(self._hvp_forward(probe, self._batches), first_hvp)
            except Exception as exc:
                raise ValueError(
                    "forward-over-reverse HVPs (torch.func) do not work with this model or loss "
                    f"({type(exc).__name__}: {exc}); use hvp='reverse'"
                ) from exc
            if gap > self._tolerance():
                raise ValueError(
                    f"forward-over-reverse HVPs disagree with double backward by {gap:.3g} "
                    "(relative); use hvp='reverse'"
                )

    # ---- data, parameters, modes --------------------------------------------------------

    def _load(self, data: Any) -> list[Batch]:
        return move_batches(as_batches(data), self.device, self.dtype)

    @contextlib.contextmanager
    def _model_mode(self) -> Iterator[None]:
        flags = [(m, m.training) for m in self.model.modules()]
        self.model.train(self.train_mode)
        try:
            yield
        finally:
            for m, flag in flags:
                m.training = flag

    def _tensors(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        tensors = dict(self._fixed)
        for name, shape, piece in zip(
            self.names, self.shapes, theta.split(self.numels), strict=True
        ):
            tensors[f"model.{name}"] = piece.view(shape)
        return tensors

    def _loss(self, theta: torch.Tensor, batch: Batch) -> torch.Tensor:
        out = functional_call(self._module, self._tensors(theta), batch)
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"loss(model, batch) must return a scalar tensor, got {got}")
        return out.reshape(())

    def flatten(self, tensors: Sequence[torch.Tensor] | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Flat vector (operator layout) from tensors aligned with ``model.parameters()`` or a
        ``{name: tensor}`` mapping; entries outside the filter are ignored."""
        if isinstance(tensors, Mapping):
            missing = [n for n in self.names if n not in tensors]
            if missing:
                raise ValueError(f"missing tensors for selected parameters {missing}")
            pieces = [tensors[n] for n in self.names]
        else:
            tensors = list(tensors)
            if len(tensors) != len(self._param_meta):
                raise ValueError(
                    f"expected {len(self._param_meta)} tensors aligned with model.parameters(), "
                    f"got {len(tensors)}"
                )
            by_name = {meta[0]: t for meta, t in zip(self._param_meta, tensors, strict=True)}
            pieces = [by_name[n] for n in self.names]
        for n, shape, t in zip(self.names, self.shapes, pieces, strict=True):
            if tuple(t.shape) != shape:
                raise ValueError(f"tensor for {n} has shape {tuple(t.shape)}, expected {shape}")
        return torch.cat([t.reshape(-1).to(self.device, self.dtype) for t in pieces])

    def unflatten(self, vec: torch.Tensor) -> list[torch.Tensor]:
        """Tensors shaped like ``model.parameters()`` (their dtype and device), zeros outside the
        parameter filter: the form landscape directions take."""
        if vec.ndim != 1 or vec.shape[0] != self.dim:
            raise ValueError(f"expected a flat vector of length {self.dim}, got {tuple(vec.shape)}")
        pieces = dict(zip(self.names, vec.split(self.numels), strict=True))
        out = []
        for name, shape, dtype, device in self._param_meta:
            if name in pieces:
                out.append(pieces[name].detach().reshape(shape).to(device=device, dtype=dtype))
            else:
                out.append(torch.zeros(shape, dtype=dtype, device=device))
        return out

    # ---- Hessian-vector products ----------------------------------------------------------

    def _gradient(self, batch: Batch, weight: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A leaf copy of theta and the weighted gradient at it, with its graph kept."""
        theta = self._theta.detach().requires_grad_(True)
        with torch.enable_grad():
            value = weight * self._loss(theta, batch)
            if not value.requires_grad:
                raise ValueError(
                    "the loss does not depend on the selected parameters (is its output detached, "
                    "or computed under torch.no_grad()?)"
                )
            (g,) = torch.autograd.grad(value, theta, create_graph=True, allow_unused=True)
        return theta, (g if g is not None and g.requires_grad else None)

    def _backward(
        self, theta: torch.Tensor, g: torch.Tensor | None, V: torch.Tensor, retain: bool
    ) -> torch.Tensor:
        """``d/dtheta <g, V[:, j]>`` for every column, through one gradient graph."""
        if g is None:  # the gradient is constant: this batch's Hessian is zero
            return torch.zeros_like(V)
        if V.shape[1] == 1:
            (hv,) = torch.autograd.grad(g, theta, V[:, 0], retain_graph=retain, allow_unused=True)
            return torch.zeros_like(V) if hv is None else hv[:, None]
        if self.batched is not False:
            try:
                (HV,) = torch.autograd.grad(
                    g, theta, V.T.contiguous(), retain_graph=True, is_grads_batched=True
                )
                return HV.T
            except Exception:  # an op without a batching rule: fall back to a loop
                self.batched = False
        cols = []
        for j in range(V.shape[1]):
            last = j == V.shape[1] - 1
            (hv,) = torch.autograd.grad(
                g, theta, V[:, j], retain_graph=retain or not last, allow_unused=True
            )
            cols.append(torch.zeros_like(V[:, j]) if hv is None else hv)
        return torch.stack(cols, dim=1)

    def _hvp_reverse(self, V: torch.Tensor, batches: list[Batch], cached: bool) -> torch.Tensor:
        out = torch.zeros_like(V)
        weights = batch_weights(batches)
        with self._model_mode():
            if cached:
                if self._cache is None:
                    self._cache = [
                        self._gradient(b, w) for b, w in zip(batches, weights, strict=True)
                    ]
                for theta, g in self._cache:
                    out += self._backward(theta, g, V, retain=True)
            else:
                for b, w in zip(batches, weights, strict=True):
                    theta, g = self._gradient(b, w)
                    out += self._backward(theta, g, V, retain=False)
        self.n_hvps += V.shape[1]
        return out.detach()

    def _hvp_forward(self, V: torch.Tensor, batches: list[Batch]) -> torch.Tensor:
        out = torch.zeros_like(V)
        theta = self._theta
        with self._model_mode():
            for b, w in zip(batches, batch_weights(batches), strict=True):
                grad_b = torch.func.grad(lambda t, b=b: self._loss(t, b))

                def hvp(v: torch.Tensor, grad_b=grad_b) -> torch.Tensor:
                    return torch.func.jvp(grad_b, (theta,), (v,))[1]

                if V.shape[1] > 1 and self.batched is not False:
                    try:
                        out += w * torch.func.vmap(hvp)(V.T.contiguous()).T
                        continue
                    except Exception:  # no batching rule for some op: loop instead
                        self.batched = False
                out += w * torch.stack([hvp(V[:, j]) for j in range(V.shape[1])], dim=1)
        self.n_hvps += V.shape[1]
        return out.detach()

    def _apply(self, V: torch.Tensor) -> torch.Tensor:
        if V.shape[1] > 1 and self.batched is None:
            return self._first_block(V)
        if self.hvp_method == "forward":
            return self._hvp_forward(V, self._batches)
        return self._hvp_reverse(V, self._batches, cached=self.cache_graph)

    def _first_block(self, V: torch.Tensor) -> torch.Tensor:
        """Apply the first block batched and time it against one single product made right after
        (one extra HVP, once). Batching must win by 10% to be kept: a loop needs less memory."""
        start = time.perf_counter()
        self.batched = True
        HV = self._apply(V)
        per_vector = (time.perf_counter() - start) / V.shape[1]
        if self.batched:  # the batched path worked
            start = time.perf_counter()
            self._apply(V[:, :1])
            single = time.perf_counter() - start
            self.batched = per_vector < 0.9 * single
            self.hvp_timings["block_per_vector"] = per_vector
            self.hvp_timings["single_at_first_block"] = single
        return HV

    # ---- checks and method choice ---------------------------------------------------------

    def _tolerance(self) -> float:
        return 1e-9 if self.dtype == torch.float64 else 1e-4

    def check_determinism(
        self, v: torch.Tensor | None = None, hv: torch.Tensor | None = None
    ) -> float:
        """Compute one HVP twice from scratch (fresh pass over the data when possible).

        Returns their relative difference, stored in ``determinism_gap``; raises
        :class:`NondeterministicHessianError` above the tolerance (1e-4 in float32, 1e-9 in
        float64).
        """
        if v is None:
            v = _gaussian((self.dim,), _generator(20240101), self)[:, None]
        if hv is None:
            hv = self._hvp_reverse(v, self._batches, cached=False)
        fresh = self._load(self._data) if _reiterable(self._data) else self._batches
        again = self._hvp_reverse(v, fresh, cached=False)
        gap = _relative_difference(hv, again)
        self.determinism_gap = gap
        if gap > self._tolerance():
            random_layers = sorted(
                {
                    type(m).__name__
                    for m in self.model.modules()
                    if isinstance(m, (torch.nn.modules.dropout._DropoutNd, torch.nn.AlphaDropout))
                }
            )
            causes = []
            if self.train_mode and random_layers:
                causes.append(f"the model is in train mode and has {', '.join(random_layers)}")
            elif self.train_mode:
                causes.append("the model runs in train mode (train=True)")
            if _reiterable(self._data):
                causes.append(
                    "the data loader gives different data on each pass (shuffling "
                    "with drop_last, random augmentation or sampling)"
                )
            causes.append("the loss or model draws random numbers")
            raise NondeterministicHessianError(
                f"the Hessian is not deterministic: the same Hessian-vector product computed "
                f"twice differs by {gap:.3g} (relative; tolerance {self._tolerance():g}). "
                f"Likely cause: {'; or '.join(causes)}. Use eval mode (train=False), fixed data, "
                "or a deterministic loss; pass check_determinism=False to accept it."
            )
        return gap

    def _choose_method(self, probe: torch.Tensor, reference: torch.Tensor) -> str:
        """Time both HVP backends after a warm-up (best of two when cheap) and keep the faster."""

        def best_time(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
            start = time.perf_counter()
            result = fn()
            times = [time.perf_counter() - start]
            for _ in range(1 if times[0] > 0.5 else 2):
                start = time.perf_counter()
                result = fn()
                times.append(time.perf_counter() - start)
            return min(times[1:]), result

        t_rev, _ = best_time(lambda: self._hvp_reverse(probe, self._batches, self.cache_graph))
        self.hvp_timings["reverse"] = t_rev
        try:
            t_fwd, hv_fwd = best_time(lambda: self._hvp_forward(probe, self._batches))
        except Exception as exc:  # torch.func cannot trace this loss (e.g. autograd.grad inside)
            self.hvp_unavailable = f"forward-over-reverse failed: {type(exc).__name__}: {exc}"
            return "reverse"
        self.hvp_timings["forward"] = t_fwd
        gap = _relative_difference(hv_fwd, reference)
        if gap > self._tolerance():
            self.hvp_unavailable = (
                f"forward-over-reverse disagreed with double backward ({gap:.3g})"
            )
            return "reverse"
        return "forward" if t_fwd < t_rev else "reverse"


# --------------------------------------------------------------------------------------------
# Lanczos with full reorthogonalization
# --------------------------------------------------------------------------------------------


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
    gen = _generator(seed)
    q = _gaussian((n,), gen, op) if v0 is None else op._check_tensor(v0, "v0", ndim=1).clone()
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
            w = _gaussian((n,), gen, op)
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


# --------------------------------------------------------------------------------------------
# Power iteration, PyHessian's rule (the baseline)
# --------------------------------------------------------------------------------------------


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
    gen = _generator(seed)
    hvps_before = op.n_hvps
    found: list[torch.Tensor] = []
    values: list[float] = []
    histories: list[np.ndarray] = []
    for _ in range(k):
        v = _gaussian((op.dim,), gen, op)
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


# --------------------------------------------------------------------------------------------
# Trace
# --------------------------------------------------------------------------------------------


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
    gen = _generator(seed)
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
        Z = _rademacher((n, n_matvecs), gen, op)
        samples = (Z * _blocked(op, Z, block_size)).sum(0).cpu().numpy().astype(np.float64)
        se = samples.std(ddof=1) / math.sqrt(len(samples))
        return TraceEstimate(float(samples.mean()), float(se), n_matvecs, method, samples)

    if n_matvecs < 4:
        raise ValueError("hutch++ needs n_matvecs >= 4 (sketch, projection, and 2 samples)")
    n_sketch = min(n_matvecs // 3, n)
    n_samples = 0 if n_sketch == n else n_matvecs - 2 * n_sketch
    S = _rademacher((n, n_sketch), gen, op)
    Q, _ = torch.linalg.qr(_blocked(op, S, block_size))
    low_rank = float((Q * _blocked(op, Q, block_size)).sum().item())
    if n_samples == 0:  # Q spans the whole space: the trace is exact
        return TraceEstimate(low_rank, 0.0, 2 * n_sketch, method, np.zeros(0))
    G = _rademacher((n, n_samples), gen, op)
    PG = G - Q @ (Q.T @ G)
    samples = (PG * _blocked(op, PG, block_size)).sum(0).cpu().numpy().astype(np.float64)
    se = samples.std(ddof=1) / math.sqrt(n_samples) if n_samples > 1 else float("nan")
    value = low_rank + float(samples.mean())
    return TraceEstimate(value, float(se), 2 * n_sketch + n_samples, method, samples)


# --------------------------------------------------------------------------------------------
# Spectral density by stochastic Lanczos quadrature
# --------------------------------------------------------------------------------------------

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


@dataclass(frozen=True)
class SpectralDensity:
    """An eigenvalue density estimate by stochastic Lanczos quadrature.

    ``nodes`` and ``weights`` (n_runs, m) are each run's Gauss quadrature (Ritz values and squared
    first components of T's eigenvectors; each row's weights sum to 1): the spectral measure
    ``(1/dim) sum_i delta(t - lambda_i)`` seen from a random start vector. ``density`` on ``grid``
    is their average smoothed by a Gaussian of width ``sigma``, normalized to integrate to 1.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    n_hvps: int

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
) -> SpectralDensity:
    """Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; Ghorbani et al. 2019).

    Each of ``n_runs`` runs does ``n_lanczos`` (80-100 is typical; capped at ``dim``) Lanczos steps
    with full reorthogonalization from a normalized Rademacher vector. The Ritz values are the
    quadrature nodes, the squared first components of T's eigenvectors the weights. The smoothed
    density uses a Gaussian kernel of standard deviation ``sigma`` (default: Ghorbani et al.'s
    variance 1e-5 on the spectrum rescaled to [-1, 1], i.e. ``sqrt(1e-5) * width / 2``) on a grid
    covering the nodes plus 5 sigma on each side.
    """
    if not isinstance(n_lanczos, (int, np.integer)) or n_lanczos < 2:
        raise ValueError(f"n_lanczos must be an integer >= 2, got {n_lanczos!r}")
    if not isinstance(n_runs, (int, np.integer)) or n_runs < 1:
        raise ValueError(f"n_runs must be a positive integer, got {n_runs!r}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if grid_size < 10:
        raise ValueError(f"grid_size must be at least 10, got {grid_size}")
    gen = _generator(seed)
    m = min(int(n_lanczos), op.dim)
    hvps_before = op.n_hvps
    nodes, weights = [], []
    for r in range(n_runs):
        v0 = _rademacher((op.dim,), gen, op)
        dec = lanczos(op, m, v0=v0, seed=seed + 1 + r)
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
    )
