"""The two ways to evaluate a chunk of points: one at a time, or many per call under vmap.

``sequential``
    Li et al. 2018's loop: write each point's weights into the model in place (one fused
    ``addmm`` per parameter straight into the parameter's storage, no copy of the model),
    run the loss over every batch, next point; the centre is written back after the chunk.
    Its cost over a plain Python loop is a few tensor operations per point. The parameter's
    ``(k, numel)`` basis is stacked just before its ``addmm`` into one buffer, kept for the run
    (:func:`~saddles.landscape.problem.basis_of`), so the engine holds ``k`` times the largest
    moving parameter, not ``k`` copies of the model; copying the directions into it per point
    costs far less than a language model's forward.
``batched``
    Many perturbed parameter sets per call: ``torch.func.functional_call`` swaps a point's
    parameters into the model and ``torch.vmap`` maps that over the chunk. This wins where a
    single evaluation is small and overhead-bound (the convection PINN), and loses where one
    evaluation already saturates the hardware (a CNN or a transformer on a few hundred
    samples on a CPU); :mod:`saddles.landscape.plan` decides which to use.

Both return ``(B, n_values)`` float64 arrays, combined over batches by
:func:`saddles.landscape.problem.weighted_sum`. They agree to rounding, not bit for bit:
vmap's batched kernels round differently from the single-point ones. Each is deterministic
for a given chunk, so a run's values are a function of its plan (recorded with the results).

Only the parameters some direction moves are written or swapped (``Problem.moving``): with a
parameter selection (:mod:`saddles.io.params`) the others keep the model's own tensors, so a
language model's embedding matrix is neither rewritten per point nor copied per vmapped point.
A batch is passed to the loss as it is, a tuple or a dict (vmap's ``in_dims=None`` leaves the
whole pytree unbatched). Both run under ``Problem.grad_mode`` (see
:func:`saddles.landscape.problem.grad_context`): without autograd where the loss was found
not to need it.

Owns :func:`run_sequential`, :func:`run_batched`, :func:`has_batching_rules` and
:func:`basis_buffers`. Imports :mod:`~saddles.landscape.problem`; must not import the plan,
the memory meter or :mod:`~saddles.landscape.evaluate` (the plan imports this).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from saddles.io.data import Batch
from saddles.landscape.problem import (
    Problem,
    basis_of,
    grad_context,
    perturbed,
    values_of,
    weighted_sum,
)

#: The warning vmap gives for operators without a batching rule (run in a slow loop instead).
NO_BATCHING_RULE = ".*performance drop because we have not yet implemented the batching rule"


def run_sequential(problem: Problem, c: torch.Tensor) -> np.ndarray:
    """Reference engine: write each point's weights into the model, evaluate, next point."""
    moving = problem.moving
    flat = [problem.params[j].view(1, -1) for j in moving]
    rows = [problem.center[j].unsqueeze(0) for j in moving]
    if problem.basis_buffers is None:
        problem.basis_buffers = basis_buffers(problem)
    buffers = problem.basis_buffers
    c = c.to(problem.params[0].dtype)
    per_batch: list[list[torch.Tensor]] = [[] for _ in problem.batches]  # 0-d values
    with grad_context(problem):
        for i in range(c.shape[0]):
            point = c[i : i + 1]
            with torch.no_grad():
                for j, out, w0 in zip(moving, flat, rows, strict=True):
                    p = problem.params[j]
                    buffer = buffers[p.dtype][: problem.n_directions * p.numel()]
                    basis = basis_of(problem, j, buffer.view(problem.n_directions, -1))
                    torch.addmm(w0, point.to(basis.dtype), basis, out=out)
            for b, batch in enumerate(problem.batches):
                per_batch[b].extend(values_of(problem, problem.model, batch))
    with torch.no_grad():  # leave the centre in place between chunks
        for p, w0 in zip(problem.params, problem.center, strict=True):
            p.copy_(w0.reshape(p.shape))
    shape = (c.shape[0], problem.n_values)
    blocks = [torch.stack(v).to(torch.float64).cpu().numpy().reshape(shape) for v in per_batch]
    return weighted_sum(problem, blocks)


def basis_buffers(problem: Problem) -> dict[torch.dtype, torch.Tensor]:
    """One flat buffer per dtype of the moving parameters, ``k`` times the largest of them."""
    sizes: dict[torch.dtype, int] = {}
    for j in problem.moving:
        p = problem.params[j]
        sizes[p.dtype] = max(sizes.get(p.dtype, 0), problem.n_directions * p.numel())
    return {dtype: torch.empty(n, dtype=dtype, device=problem.device) for dtype, n in sizes.items()}


class _Call(torch.nn.Module):
    """Wraps ``model`` so that ``functional_call`` swaps its parameters for the whole loss."""

    def __init__(self, problem: Problem):
        super().__init__()
        self.model = problem.model
        self.problem = [problem]  # a list, so the problem is not registered as a submodule

    def forward(self, batch: Batch) -> torch.Tensor:
        return torch.stack(values_of(self.problem[0], self.model, batch))


def run_batched(problem: Problem, c: torch.Tensor, quiet: bool = True) -> np.ndarray:
    """Batched engine: ``vmap`` over ``functional_call`` with a chunk of parameter sets.

    ``quiet`` hides vmap's warning about operators without a batching rule (the plan checks
    for them once, on the first chunk, with :func:`has_batching_rules`)."""
    call = _Call(problem)
    with torch.no_grad():
        stacked = {f"model.{n}": t for n, t in perturbed(problem, c).items()}

    def one_point(params: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        return torch.func.functional_call(call, params, (batch,))

    mapped = torch.vmap(one_point, in_dims=(0, None), randomness="different")
    blocks = []
    with grad_context(problem), warnings.catch_warnings():
        if quiet:
            warnings.filterwarnings("ignore", message=NO_BATCHING_RULE)
        for batch in problem.batches:
            blocks.append(mapped(stacked, batch).detach().to(torch.float64).cpu().numpy())
    return weighted_sum(problem, blocks)


def has_batching_rules(problem: Problem, c: torch.Tensor) -> tuple[np.ndarray, bool]:
    """Run one batched chunk and say whether every operator had a vmap batching rule."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=NO_BATCHING_RULE)
        block = run_batched(problem, c, quiet=False)
    slow = any(
        issubclass(w.category, UserWarning) and "performance drop" in str(w.message) for w in caught
    )
    for w in caught:  # hand any other warning on to the user
        if "performance drop" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return block, not slow


ENGINE_FUNCS = {"sequential": run_sequential, "batched": run_batched}
