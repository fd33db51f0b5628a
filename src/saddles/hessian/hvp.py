"""The Hessian of a model's loss as an operator: parameter selection and Hessian-vector products.

Owns :func:`select_parameters` (which parameters the Hessian is taken over) and
:class:`HessianOperator`, which turns ``(model, loss, data)`` into a
:class:`~saddles.hessian.SymmetricOperator` whose products are Hessian-vector products (HVPs;
Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 1994):
``H v = d/dtheta <grad L(theta), v>`` by double backward (reverse-over-reverse), or
``torch.func.jvp`` of ``torch.func.grad`` (forward-over-reverse), at a snapshot of the parameters.
It also owns the checks that make "the Hessian" well defined: the determinism check
(:class:`NondeterministicHessianError`) and the agreement of the two HVP backends.

Imports the operator protocol, the seeded vectors and :mod:`saddles.io.data`; must not import the
algorithms (they run on any operator, this one included).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.func import functional_call

from saddles.hessian.operator import SymmetricOperator
from saddles.hessian.random_vectors import gaussian, generator
from saddles.io import params as params_mod
from saddles.io.data import (
    Batch,
    LossFn,
    as_batches,
    batch_weights,
    move_batches,
    resolve_device,
)
from saddles.names import HVP_METHODS

ParamFilter = str | Callable[[str], bool] | Sequence[str] | Mapping[str, Any]


class NondeterministicHessianError(RuntimeError):
    """Two evaluations of the same Hessian-vector product disagreed."""


# --------------------------------------------------------------------------------------------
# Parameter selection
# --------------------------------------------------------------------------------------------


def select_parameters(model: torch.nn.Module, params: ParamFilter = "all") -> list[str]:
    """Names of the parameters the Hessian is taken over, in ``model.named_parameters()`` order.

    ``params`` is a spec of :mod:`saddles.io.params` (a mapping: ``include``/``exclude`` name
    globs, ``exclude_1d``, ``types``; the same selection landscapes use), ``"all"`` (every
    parameter that requires grad), ``"weights"`` (those of them with ``dim >= 2``: matrices
    and kernels, no biases or norm scales), a predicate ``f(name) -> bool`` over parameters
    that require grad, or an explicit list of names (which may include frozen parameters).
    """
    named = list(model.named_parameters())
    if isinstance(params, Mapping):
        return list(params_mod.select(model, params).names)
    if isinstance(params, str):
        if params in ("all", "weights"):
            chosen = params_mod.select(model, {"exclude_1d": params == "weights"}).names
            grad = {n for n, p in named if p.requires_grad}
            names = [n for n in chosen if n in grad]
        else:
            raise ValueError(
                f"unknown parameter filter {params!r}: use 'all', 'weights', a spec mapping "
                "(include/exclude globs), a predicate f(name) -> bool, or a list of names"
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

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.loss(self.model, batch)  # a tuple or a dict, as the data holds it


#: What torch's error names when a fused attention kernel lacks a (double) backward.
_FUSED_ATTENTION = "_scaled_dot_product"


def _reiterable(data: Any) -> bool:
    """True for data that can be iterated again to get a fresh pass (a DataLoader, say)."""
    if isinstance(data, (torch.Tensor, tuple, list, Mapping)):
        return False
    try:
        return iter(data) is not data
    except TypeError:
        return False


def _require_grad(value: torch.Tensor) -> torch.Tensor:
    if not value.requires_grad:
        raise ValueError(
            "the loss does not depend on the selected parameters (is its output detached, "
            "or computed under torch.no_grad()?)"
        )
    return value


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = max(a.norm().item(), b.norm().item())
    return 0.0 if scale == 0.0 else (a - b).norm().item() / scale


class HessianOperator(SymmetricOperator):
    """The Hessian of the batch-weighted average loss over a subset of parameters.

    ``loss(model, batch) -> scalar`` and ``data`` follow :mod:`saddles.io.data` (wrap a criterion
    with :func:`saddles.io.data.make_loss`). The Hessian is taken at the parameters the model holds
    when the operator is built (a snapshot: later changes to the model do not affect it), over the
    parameters chosen by ``params`` (see :func:`select_parameters`); the others, and the buffers,
    are held fixed. The flat vector layout follows :attr:`names`.

    Products are Hessian-vector products (Pearlmutter 1994):

    - ``"reverse"``: double backward, ``d/dtheta <grad L(theta), v>``. Works with any loss,
      including PINN losses that call ``torch.autograd.grad`` on the inputs. With
      ``cache_graph`` (default: when the data is a single batch) the gradient graph is built once
      and each product is a single backward pass through it, as in PyHessian.
    - ``"forward"``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``. Checked at
      construction against double backward on a probe vector (2 products).
    - ``"auto"`` (default): a fixed rule, not a measurement: double backward. It works with every
      loss and, through a cached graph, costs one backward pass per product.
    - ``"fastest"``: times both on a probe vector (about 6 products) and keeps the faster, if
      forward-over-reverse also agrees with double backward; ``hvp_timings`` holds the seconds
      per HVP. The two backends agree to rounding (checked: 1e-4 relative in float32, 1e-9 in
      float64), but not bit for bit, so with ``"fastest"`` a result may differ by that much
      between machines or runs. Every other choice makes results a function of the inputs.

    ``matmat`` can apply a block of vectors at once: ``torch.func.vmap`` over the
    forward-over-reverse product, or a batched backward (``is_grads_batched``) through one gradient
    graph. ``batched=None`` (default) batches on accelerators and loops on the CPU, where batching
    is often slower (convolutions); a looped block equals its columns' ``matvec`` bit for bit.
    Under ``hvp="fastest"`` the first block is instead timed, batched, against the single product
    timed at construction, and batching kept if it is 10% faster. Operations without a batching
    rule fall back to a loop.

    The model runs in eval mode (``train=False``) during every product, and its own mode is
    restored afterwards. ``dtype=torch.float64`` runs the model in double precision (parameters,
    buffers and floating data are cast; the model itself is untouched).

    Determinism: dropout in train mode, a loss that samples at random, or data that changes
    between passes make "the Hessian" ill-defined. With ``check_determinism`` (default) the first
    product the operator makes is computed a second time from scratch (a fresh pass over ``data``
    when it can be re-iterated, no cached graph), and :class:`NondeterministicHessianError` is
    raised, from that first ``matvec``/``matmat``, when the two differ. This costs one uncached
    HVP, once: 7-32% of a top-1 solve's time on the benchmark's models (``benchmarks/hessian.py``
    prints the table; the former probe checks and timings cost 1-3 solves).
    :meth:`check_determinism` runs the same check at once on a probe vector (2 products), for an
    error before any computation; ``check_determinism=False`` skips it.

    Counting: ``n_hvps`` counts the products made for callers, so an algorithm's budget is exact;
    ``n_setup_hvps`` counts those the operator makes for its own checks and timings, and
    ``setup_seconds`` is the wall time of construction and of those checks.
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
        start = time.perf_counter()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
        if not callable(loss) or isinstance(loss, (type, torch.nn.modules.loss._Loss)):
            raise TypeError(
                "loss must be callable as loss(model, batch) -> scalar tensor; wrap a criterion "
                "with saddles.io.data.make_loss(criterion=...)"
            )
        if hvp not in HVP_METHODS:
            raise ValueError(f"hvp must be one of {HVP_METHODS}, not {hvp!r}")
        self.model = model
        self.train_mode = bool(train)
        self._module = _LossModule(model, loss)

        self.names: tuple[str, ...] = tuple(select_parameters(model, params))
        named = dict(model.named_parameters())
        for name, p in named.items():  # one pass, before any product is computed
            if not bool(torch.isfinite(p.detach()).all()):
                raise ValueError(f"the model's parameter {name!r} holds NaN or inf values")
        first = named[self.names[0]]
        self.device = resolve_device(device) if device is not None else first.device
        self.dtype = dtype if dtype is not None else first.dtype
        if not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating point dtype, not {self.dtype}")
        self.shapes = tuple(tuple(named[n].shape) for n in self.names)
        self.numels = tuple(int(named[n].numel()) for n in self.names)
        self.dim = int(sum(self.numels))
        #: The selection's counts, as every run records them (see :mod:`saddles.io.params`).
        self.params_info = {
            "spec": params_mod.check_spec(params)
            if isinstance(params, Mapping)
            else params
            if isinstance(params, str)
            else "custom",
            "n_tensors": len(self.names),
            "n_scalars": self.dim,
            "n_tensors_total": len(named),
            "n_scalars_total": int(sum(p.numel() for p in named.values())),
        }
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
        self._cache: list[tuple[list[torch.Tensor], list[int], list]] | None = None
        self.batched = batched
        self.n_hvps = 0
        self.n_setup_hvps = 0
        self.setup_seconds = 0.0
        self.determinism_gap: float | None = None
        self._check_pending = bool(check_determinism)
        self.hvp_timings: dict[str, float | None] = {"reverse": None, "forward": None}
        self.hvp_unavailable: str | None = None

        self.hvp_method = "reverse" if hvp == "auto" else hvp
        if hvp in ("auto", "reverse"):
            self._validate_loss()  # one forward pass; no product until one is asked for
        else:
            probe = self._probe()
            reference = self._setup_product(probe, self._batches, "reverse", cached=False)
            if hvp == "fastest":
                self.hvp_method = self._choose_method(probe, reference)
            else:
                self._check_forward(probe, reference)
        if self.batched is None and hvp != "fastest":
            self.batched = self.device.type != "cpu"
        self.setup_seconds += time.perf_counter() - start

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

    def _tensors(self, theta: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's tensors from the flat ``theta`` or from its pieces, one per parameter."""
        tensors = dict(self._fixed)
        pieces = theta.split(self.numels) if isinstance(theta, torch.Tensor) else theta
        for name, shape, piece in zip(self.names, self.shapes, pieces, strict=True):
            tensors[f"model.{name}"] = piece.view(shape)
        return tensors

    def _leaves(self) -> list[torch.Tensor]:
        """One leaf per selected parameter, views of the snapshot: gradients come back per
        tensor, so a product is assembled into one flat vector without a second full copy (a
        flat leaf's gradient is the concatenation of the pieces, both alive at once)."""
        return [t.detach().requires_grad_(True) for t in self._theta.split(self.numels)]

    def _assemble(self, pieces: list[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor:
        """``(dim, k)`` from per-parameter ``(numel, k)`` pieces (None: zero), each piece freed
        once copied."""
        out = torch.empty_like(like)
        start = 0
        for i, numel in enumerate(self.numels):
            piece, pieces[i] = pieces[i], None
            if piece is None:
                out[start : start + numel].zero_()
            else:
                out[start : start + numel] = piece.reshape(numel, -1)
            del piece
            start += numel
        return out

    def _loss(self, theta: torch.Tensor | Sequence[torch.Tensor], batch: Batch) -> torch.Tensor:
        out = functional_call(self._module, self._tensors(theta), (batch,))
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

    def _validate_loss(self) -> None:
        """One forward pass on the first batch: the loss is a scalar that depends on theta."""
        theta = self._theta.detach().requires_grad_(True)
        with torch.enable_grad(), self._model_mode():
            _require_grad(self._loss(theta, self._batches[0]))

    def _gradient(self, batch: Batch, weight: float) -> tuple[list[torch.Tensor], list[int], list]:
        """Leaves for theta's pieces, the indices of those whose gradient still depends on theta,
        and the weighted gradient at them (those pieces), with its graph kept."""
        leaves = self._leaves()
        with torch.enable_grad():
            value = _require_grad(weight * self._loss(leaves, batch))
            g = torch.autograd.grad(value, leaves, create_graph=True, allow_unused=True)
        live = [i for i, gi in enumerate(g) if gi is not None and gi.requires_grad]
        return leaves, live, [g[i] for i in live]

    def _backward(
        self, leaves: list[torch.Tensor], live: list[int], g: list, V: torch.Tensor, retain: bool
    ) -> torch.Tensor:
        """``d/dtheta <g, V[:, j]>`` for every column, through one gradient graph. Where no piece
        of the gradient depends on theta, this batch's Hessian is zero."""
        if not live:
            return torch.zeros_like(V)
        bounds = [0, *itertools.accumulate(self.numels)]
        if V.shape[1] == 1 or self.batched is False:
            cols = []
            for j in range(V.shape[1]):
                v = V[:, j]
                outs = [v[bounds[i] : bounds[i + 1]].view_as(g[n]) for n, i in enumerate(live)]
                last = j == V.shape[1] - 1
                hv = torch.autograd.grad(g, leaves, outs, retain_graph=retain or not last,
                                         allow_unused=True)  # fmt: skip
                if V.shape[1] == 1:
                    return self._assemble(list(hv), V)
                cols.append(self._assemble(list(hv), V[:, :1]))
            return torch.cat(cols, dim=1)
        try:
            Vt = V.T.contiguous()
            outs = [Vt[:, bounds[i] : bounds[i + 1]].reshape(-1, *g[n].shape)
                    for n, i in enumerate(live)]  # fmt: skip
            HV = torch.autograd.grad(g, leaves, outs, retain_graph=True, is_grads_batched=True,
                                     allow_unused=True)  # fmt: skip
            return self._assemble([None if h is None else h.reshape(h.shape[0], -1).T
                                   for h in HV], V)  # fmt: skip
        except Exception:  # an op without a batching rule: fall back to a loop
            self.batched = False
            return self._backward(leaves, live, g, V, retain)

    def _hvp_reverse(self, V: torch.Tensor, batches: list[Batch], cached: bool) -> torch.Tensor:
        # The first batch's product is the sum itself (no zeroed buffer beside it: one vector
        # less at the peak of a single-batch product).
        out: torch.Tensor | None = None
        weights = batch_weights(batches)
        with self._model_mode():
            if cached:
                if self._cache is None:
                    self._cache = [
                        self._gradient(b, w) for b, w in zip(batches, weights, strict=True)
                    ]
                for leaves, live, g in self._cache:
                    hv = self._backward(leaves, live, g, V, retain=True)
                    out = hv if out is None else out.add_(hv)
            else:
                for b, w in zip(batches, weights, strict=True):
                    leaves, live, g = self._gradient(b, w)
                    hv = self._backward(leaves, live, g, V, retain=False)
                    out = hv if out is None else out.add_(hv)
        return (torch.zeros_like(V) if out is None else out).detach()

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
        return out.detach()

    def _product(
        self, V: torch.Tensor, batches: list[Batch], method: str, cached: bool
    ) -> torch.Tensor:
        try:
            if method == "forward":
                return self._hvp_forward(V, batches)
            return self._hvp_reverse(V, batches, cached=cached)
        except RuntimeError as exc:
            if _FUSED_ATTENTION in str(exc) or "flash_attention" in str(exc):
                raise RuntimeError(
                    "the model's attention kernel (scaled_dot_product_attention, fused) has no "
                    "double backward, so Hessian-vector products fail; load the model with "
                    'attn_implementation="eager" (saddles.io.models.load_model and --model hf:... '
                    "do)"
                ) from exc
            raise

    def _apply(self, V: torch.Tensor) -> torch.Tensor:
        if V.shape[1] > 1 and self.batched is None:  # hvp="fastest" only
            HV = self._first_block(V)
        else:
            HV = self._product(V, self._batches, self.hvp_method, self.cache_graph)
        self.n_hvps += V.shape[1]
        if self._check_pending:
            self.check_determinism(V[:, :1], HV[:, :1])
        return HV

    def _first_block(self, V: torch.Tensor) -> torch.Tensor:
        """Apply the first block batched and compare its time per vector with the single product
        timed at construction. Batching must win by 10% to be kept: a loop needs less memory."""
        start = time.perf_counter()
        self.batched = True
        HV = self._product(V, self._batches, self.hvp_method, self.cache_graph)
        per_vector = (time.perf_counter() - start) / V.shape[1]
        if self.batched:  # the batched path worked
            single = self.hvp_timings[self.hvp_method]
            self.batched = single is None or per_vector < 0.9 * single
            self.hvp_timings["block_per_vector"] = per_vector
        return HV

    # ---- checks and method choice ---------------------------------------------------------

    def _tolerance(self) -> float:
        return 1e-9 if self.dtype == torch.float64 else 1e-4

    def _probe(self) -> torch.Tensor:
        """The fixed random vector the checks and timings use, as a one-column block."""
        return gaussian((self.dim,), generator(20240101), self)[:, None]

    def _setup_product(
        self, V: torch.Tensor, batches: list[Batch], method: str, cached: bool
    ) -> torch.Tensor:
        """A product the operator makes for itself: counted in ``n_setup_hvps``."""
        HV = self._product(V, batches, method, cached)
        self.n_setup_hvps += V.shape[1]
        return HV

    def check_determinism(
        self, v: torch.Tensor | None = None, hv: torch.Tensor | None = None
    ) -> float:
        """Compute one HVP twice from scratch (fresh pass over the data when possible).

        ``hv``, when given, is ``H v`` as already computed (by the first product, say) and is the
        first of the two. The second uses the operator's backend without the cached graph.
        Returns their relative difference, stored in ``determinism_gap``; raises
        :class:`NondeterministicHessianError` above the tolerance (1e-4 in float32, 1e-9 in
        float64). Called with no arguments, it checks a fixed probe vector (2 products).
        """
        start = time.perf_counter()
        try:
            if v is None:
                v = self._probe()
            if hv is None:
                hv = self._setup_product(v, self._batches, self.hvp_method, cached=False)
            fresh = self._load(self._data) if _reiterable(self._data) else self._batches
            again = self._setup_product(v, fresh, self.hvp_method, cached=False)
        finally:
            self.setup_seconds += time.perf_counter() - start
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
        self._check_pending = False
        return gap

    def _check_forward(self, probe: torch.Tensor, reference: torch.Tensor) -> None:
        """For ``hvp="forward"``: torch.func runs this loss and agrees with double backward."""
        try:
            hv = self._setup_product(probe, self._batches, "forward", cached=False)
        except Exception as exc:
            raise ValueError(
                "forward-over-reverse HVPs (torch.func) do not work with this model or loss "
                f"({type(exc).__name__}: {exc}); use hvp='reverse'"
            ) from exc
        gap = _relative_difference(hv, reference)
        if gap > self._tolerance():
            raise ValueError(
                f"forward-over-reverse HVPs disagree with double backward by {gap:.3g} "
                "(relative); use hvp='reverse'"
            )

    def _choose_method(self, probe: torch.Tensor, reference: torch.Tensor) -> str:
        """For ``hvp="fastest"``: time both backends after a warm-up (best of two when cheap) and
        keep the faster, if forward-over-reverse agrees with ``reference`` (double backward)."""

        def best_time(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
            start = time.perf_counter()
            result = fn()
            times = [time.perf_counter() - start]
            for _ in range(1 if times[0] > 0.5 else 2):
                start = time.perf_counter()
                result = fn()
                times.append(time.perf_counter() - start)
            return min(times[1:]), result

        batches = self._batches
        t_rev, _ = best_time(
            lambda: self._setup_product(probe, batches, "reverse", cached=self.cache_graph)
        )
        self.hvp_timings["reverse"] = t_rev
        try:
            t_fwd, hv_fwd = best_time(
                lambda: self._setup_product(probe, batches, "forward", cached=False)
            )
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
        if t_fwd < t_rev:
            self._cache = None  # the gradient graph built for timing is not needed
            return "forward"
        return "reverse"
