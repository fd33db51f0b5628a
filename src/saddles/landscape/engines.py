"""The two ways to evaluate a chunk of points: one at a time, or many per call under vmap.

``sequential``
    Li et al. 2018's loop: write each point's weights into the model in place (one fused
    ``addmm`` per block of a parameter straight into its storage, no copy of the model), run
    the loss over every batch, next point; the centre is written back after the chunk. Its
    cost over a plain Python loop is a few tensor operations per point. A block's ``(k,
    width)`` basis is stacked just before its ``addmm`` into one buffer, kept for the run
    (:func:`~saddles.landscape.problem.basis_of`), so the engine holds ``k`` rows of
    :data:`WRITE_BLOCK` entries, not ``k`` copies of the model or of its largest parameter;
    copying the directions into it per point costs far less than a language model's forward.
``batched``
    Many perturbed parameter sets per call: ``torch.func.functional_call`` swaps a point's
    parameters into the model and ``torch.vmap`` maps that over the chunk. This wins where a
    single evaluation is small and overhead-bound (the convection PINN), and loses where one
    evaluation already saturates the hardware (a CNN or a transformer on a few hundred
    samples on a CPU); :mod:`saddles.landscape.plan` decides which to use.

Both return ``(B, n_values + 1)`` float64 arrays (``+ 2`` with ``eval_tokens="auto"``; the
columns are ``Problem.columns``), combined over batches by
:func:`saddles.landscape.problem.weighted_sum`: the values, the loss's standard error over
the examples (from the same forwards, :func:`~saddles.landscape.problem.values_of`) and the
tokens each point used (:func:`saddles.landscape.tokens.run_auto`). They agree to rounding,
not bit for bit: vmap's batched kernels round differently from the single-point ones. Each
is deterministic for a given chunk, so a run's values are a function of its plan (recorded
with the results).

Only the parameters some direction moves are written or swapped (``Problem.moving``): with a
parameter selection (:mod:`saddles.io.params`) the others keep the model's own tensors, so a
language model's embedding matrix is neither rewritten per point nor copied per vmapped point.
A batch is passed to the loss as it is, a tuple or a dict (vmap's ``in_dims=None`` leaves the
whole pytree unbatched). Both run under ``Problem.grad_mode`` (see
:func:`saddles.landscape.problem.grad_context`): without autograd where the loss was found
not to need it.

Owns :func:`run_sequential`, :func:`run_batched`, :func:`has_batching_rules`,
:func:`write_point`, :func:`restore_center` and :func:`basis_buffers`. Imports
:mod:`~saddles.landscape.problem` and :mod:`~saddles.landscape.tokens`; must not import the
plan, the memory meter or :mod:`~saddles.landscape.evaluate` (the plan imports this).
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
from saddles.landscape.tokens import run_auto

#: The warning vmap gives for operators without a batching rule (run in a slow loop instead).
NO_BATCHING_RULE = ".*performance drop because we have not yet implemented the batching rule"


def run_sequential(problem: Problem, c: torch.Tensor) -> np.ndarray:
    """Reference engine: write each point's weights into the model, evaluate, next point.

    Returns ``(B, len(problem.columns))``: the values, the loss's standard error and, with
    ``eval_tokens="auto"`` (:func:`saddles.landscape.tokens.run_auto`), the tokens used."""
    c = c.to(problem.params[0].dtype)
    if problem.auto is not None:
        return _auto(problem, c, _sequential_piece)
    per_batch: list[list[torch.Tensor]] = [[] for _ in problem.batches]  # 0-d values
    with grad_context(problem):
        for i in range(c.shape[0]):
            write_point(problem, c[i : i + 1])
            for b, batch in enumerate(problem.batches):
                per_batch[b].extend(values_of(problem, problem.model, batch))
    restore_center(problem)
    shape = (c.shape[0], problem.n_values + 1)
    blocks = [torch.stack(v).to(torch.float64).cpu().numpy().reshape(shape) for v in per_batch]
    return weighted_sum(problem, blocks)


def write_point(problem: Problem, point: torch.Tensor) -> None:
    """Write the weights of ``point`` (``(1, k)``) into the model's moving parameters: one
    fused ``addmm`` per parameter, straight into its storage."""
    if problem.basis_buffers is None:
        problem.basis_buffers = basis_buffers(problem)
    k = problem.n_directions
    with torch.no_grad():
        for j in problem.moving:
            p = problem.params[j]
            flat, centre = p.view(1, -1), problem.center[j].reshape(1, -1)
            for start in range(0, p.numel(), WRITE_BLOCK):
                cols = slice(start, min(start + WRITE_BLOCK, p.numel()))
                width = cols.stop - cols.start
                buffer = problem.basis_buffers[p.dtype][: k * width].view(k, width)
                basis = basis_of(problem, j, buffer, cols)
                torch.addmm(centre[:, cols], point.to(basis.dtype), basis,
                            out=flat[:, cols])  # fmt: skip


def restore_center(problem: Problem) -> None:
    """Put the centre back into the model (between chunks, the model is the centre)."""
    with torch.no_grad():
        for p, w0 in zip(problem.params, problem.center, strict=True):
            p.copy_(w0.reshape(p.shape))


def _sequential_piece(problem: Problem, c: torch.Tensor, piece: int) -> np.ndarray:
    """One piece of the data at every point of ``c``, point by point."""
    values = []
    with grad_context(problem):
        for i in range(c.shape[0]):
            write_point(problem, c[i : i + 1])
            values.append(torch.stack(values_of(problem, problem.model, problem.batches[piece])))
    restore_center(problem)
    return torch.stack(values).to(torch.float64).cpu().numpy()


def _auto(problem: Problem, c: torch.Tensor, piece_fn) -> np.ndarray:
    """``eval_tokens="auto"`` at the points ``c``, each piece evaluated by ``piece_fn``."""
    rows_of = np.arange(c.shape[0])

    def evaluate_piece(rows: np.ndarray, piece: int) -> np.ndarray:
        sub = c if len(rows) == len(rows_of) else c[torch.as_tensor(rows, device=c.device)]
        return piece_fn(problem, sub, piece)

    def combine(blocks: list[np.ndarray], weights: list[float]) -> np.ndarray:
        return weighted_sum(problem, blocks, weights)

    return run_auto(problem.auto, c.shape[0], problem.n_values, evaluate_piece, combine)


#: Entries of a parameter written per ``addmm`` by :func:`write_point`: the basis buffer holds
#: ``k`` rows of this many, not ``k`` copies of the largest parameter (at Pythia-70M's shape the
#: embedding alone made that 0.7 parameter copies). Each entry's arithmetic is the same in a
#: block as in the whole (checked against one ``addmm`` over the whole tensor in the tests).
WRITE_BLOCK = 1 << 18


def basis_buffers(problem: Problem) -> dict[torch.dtype, torch.Tensor]:
    """One flat buffer per dtype of the moving parameters: ``k`` rows of a write block."""
    sizes: dict[torch.dtype, int] = {}
    for j in problem.moving:
        p = problem.params[j]
        width = min(p.numel(), WRITE_BLOCK)
        sizes[p.dtype] = max(sizes.get(p.dtype, 0), problem.n_directions * width)
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
    if problem.auto is not None:
        return _auto(problem, c, lambda p, sub, piece: _batched_blocks(p, sub, [piece], quiet)[0])
    blocks = _batched_blocks(problem, c, range(len(problem.batches)), quiet)
    return weighted_sum(problem, blocks)


def _batched_blocks(problem: Problem, c: torch.Tensor, which, quiet: bool) -> list[np.ndarray]:
    """The ``(B, n_values + 1)`` block of each batch ``which`` names, at the points ``c``."""
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
        for b in which:
            batch = problem.batches[b]
            blocks.append(mapped(stacked, batch).detach().to(torch.float64).cpu().numpy())
    return blocks


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
