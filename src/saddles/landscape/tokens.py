"""``eval_tokens="auto"``: each point gets the evaluation data it needs and no more.

A point's loss is a mean over the evaluation data, and its standard error (the per-example
spread of the loss over the square root of the number of examples, :mod:`saddles.io.data`)
says how far that mean may be from the mean over unlimited data. With ``"auto"`` each point
is evaluated on a growing prefix of the data, in a fixed order, until the standard error of
its mean falls below a target; flat regions and the basin floor, where the per-example losses
agree, stop early, and a point where they spread takes more. Sequential sampling with a
standard-error stopping rule (Robbins 1952; the stopping rule of adaptive Monte Carlo).

The schedule (:func:`auto_tokens`): the data's samples, in order, are cut into prefixes that
double: ``1/16, 1/8, 1/4, 1/2`` and all of it (:data:`STAGES` stages; at least two samples in
the first, so that a spread exists). Each stage adds its samples as *pieces*, slices of the
given batches, so a batch is never reordered and a prefix is exactly the first samples of the
data; a prefix's value is the sample-weighted mean of its pieces, as any batched loss is. The
target is an absolute standard error, ``relative x`` the value range, the range taken from a
pilot (:func:`pilot_rows`: 16 points spread over the sample and the centre, on the first
stage), so the whole schedule is a function of the inputs. Default :data:`DEFAULT_TARGET`:
half of an analysis's default simplification threshold (1% of the range), so that a pair at
that threshold is two standard errors above the noise of each of its values.

The standard error treats the examples of a prefix as a random sample of the data, so the
data's order matters: give the examples in a random (seeded) order, not sorted by position
in a text, or a prefix is one stretch of it and its mean may lie further from the whole
data's than its standard error says. A point stops at the first stage whose standard error
is at most the target (or whose value or standard error is not finite: more data cannot
help), or at the last stage. The tokens it used are kept beside its value
(``Landscape.tokens``).

Owns :class:`AutoTokens`, :func:`auto_tokens`, :func:`pilot_rows`, :func:`set_target` and
:func:`run_auto`.
Imports :mod:`saddles.io.data` only; the engines call :func:`run_auto` with their own way of
evaluating one piece on some points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from saddles.io.data import Batch, batch_size, batch_weights, n_tokens, take_samples
from saddles.names import EVAL_TOKENS_AUTO, STDERR_TARGET

#: The word and the default target (a fraction of the value range), from :mod:`saddles.names`.
AUTO, DEFAULT_TARGET = EVAL_TOKENS_AUTO, STDERR_TARGET
#: Doubling prefixes: the first holds 1 / 2**(STAGES - 1) of the data's samples.
STAGES = 5
#: Points of the pilot that measures the value range.
PILOT_POINTS = 16


@dataclass
class AutoTokens:
    """The prefix schedule of ``eval_tokens="auto"`` (see the module docstring)."""

    stage_ends: list[int]  # pieces in each prefix
    weights: list[list[float]]  # sample weights of each prefix's pieces (sum to one)
    tokens: list[int]  # tokens of each prefix
    relative: float  # the target as a fraction of the value range
    target: float = math.nan  # the absolute target, set from the pilot by the driver
    pilot: dict = field(default_factory=dict)  # how the target was found


def auto_tokens(batches: list[Batch], relative: float) -> tuple[list[Batch], AutoTokens]:
    """The data cut into the pieces of the doubling prefixes, and the schedule over them."""
    if not (isinstance(relative, (int, float)) and math.isfinite(relative) and relative > 0):
        raise ValueError(f"the standard-error target must be a positive number, not {relative!r}")
    total = sum(batch_size(b) for b in batches)
    ends = sorted({min(total, max(2, -(-total // 2 ** (STAGES - 1 - j)))) for j in range(STAGES)})
    pieces: list[Batch] = []
    stage_ends: list[int] = []
    for a, z in zip([0, *ends], ends, strict=False):
        pieces += take_samples(batches, a, z)
        stage_ends.append(len(pieces))
    weights = [batch_weights(pieces[:e]) for e in stage_ends]
    tokens = [sum(n_tokens(p) for p in pieces[:e]) for e in stage_ends]
    return pieces, AutoTokens(stage_ends, weights, tokens, float(relative))


def pilot_rows(n: int, k: int = PILOT_POINTS) -> np.ndarray:
    """``k`` point indices spread evenly over ``0..n-1`` (no randomness)."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64))


def set_target(auto: AutoTokens, pilot_values: np.ndarray, pilot_stderr: np.ndarray) -> None:
    """The absolute target from the pilot's first-stage values: ``relative x`` their range.

    A loss that reports no standard error cannot say when to stop: a one-line error. A flat
    pilot (range 0) gives the target 0, so every point gets all the data."""
    finite = pilot_values[np.isfinite(pilot_values)]
    if not np.isfinite(pilot_stderr).any():
        raise ValueError(
            "eval_tokens='auto' needs a loss that reports the spread of its per-example "
            "losses (causal_lm, cross_entropy, mse, or a loss with .with_variance; see "
            "saddles.io.data.with_variance), and this one does not"
        )
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    auto.target = auto.relative * spread
    auto.pilot = {"points": int(pilot_values.size), "value_range": spread}


def run_auto(
    auto: AutoTokens,
    n: int,
    n_values: int,
    evaluate_piece: Callable[[np.ndarray, int], np.ndarray],
    combine: Callable[[list[np.ndarray], list[float]], np.ndarray],
) -> np.ndarray:
    """``(n, n_values + 2)``: each point's values and standard error on the prefix where it
    stopped, and the tokens of that prefix.

    ``evaluate_piece(rows, piece)`` gives the ``(len(rows), n_values + 1)`` values and loss
    variance of piece ``piece`` at the points ``rows``; ``combine(blocks, weights)`` combines
    pieces by weight into values and standard error (the engines' one combination rule)."""
    out = np.full((n, n_values + 2), np.nan)
    per_piece: list[np.ndarray] = []
    active = np.arange(n)
    done = 0
    for stage, end in enumerate(auto.stage_ends):
        for piece in range(done, end):
            block = np.full((n, n_values + 1), np.nan)
            block[active] = evaluate_piece(active, piece)
            per_piece.append(block)
        done = end
        values = combine([p[active] for p in per_piece], auto.weights[stage])
        last = stage == len(auto.stage_ends) - 1
        stderr = values[:, n_values]
        stop = np.full(active.shape, last) | ~(stderr > auto.target) | ~np.isfinite(values[:, 0])
        out[active[stop], : n_values + 1] = values[stop]
        out[active[stop], n_values + 1] = auto.tokens[stage]
        active = active[~stop]
        if active.size == 0:
            break
    return out
