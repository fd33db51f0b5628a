"""Directions in a model's parameter space: the axes of a loss landscape.

This module owns stage 1 of the pipeline: choosing the subspace ``theta_0 + sum_k c_k d_k`` on
which the loss is evaluated. It imports torch and numpy; it must not import the topology
package, the landscape evaluator or the CLI.

What a direction is
-------------------
A *direction* is a list of tensors shaped like the model's parameters, in the order of
``model.named_parameters()`` (duplicates of tied parameters removed, frozen parameters
included; buffers such as BatchNorm running statistics are *not* part of it and never move).
The same direction may also be given as one *flat vector*: the concatenation of
``t.reshape(-1)`` over those tensors, in that order, so the entries of parameter ``j`` occupy
``flat[offset_j : offset_j + numel_j]`` with ``offset_j`` the sum of the sizes of the parameters
before it. :func:`flatten` and :func:`unflatten` map between the two forms, and every function
here accepts both. Several directions travel together as a :class:`Directions` object, which
also records how they were made (seed, normalization, ...) so that a landscape knows its
provenance.

Normalization (Li et al. 2018, "Visualizing the loss landscape of neural nets", section 4)
------------------------------------------------------------------------------------------
Random directions are rescaled relative to the weights ``w`` so that landscapes of different
networks, or of differently scaled equivalent networks, are comparable:

``"filter"``
    For every parameter with 2 or more dimensions, each slice along dim 0 (one output row of a
    Linear weight, one output channel of a Conv weight, one token's embedding row) is rescaled:
    ``d_i <- d_i * ||w_i|| / (||d_i|| + 1e-10)``, exactly as Li et al.'s reference code. After
    it, every filter of ``d`` has the norm of the same filter of ``w``.
``"layer"``
    Each parameter tensor as a whole: ``d <- d * ||w|| / (||d|| + 1e-10)``.
``"model"``
    The whole direction at once: ``d <- d * ||w|| / (||d|| + 1e-10)`` with both norms taken over
    all parameters that are not zeroed by ``ignore_1d``.
``"none"``
    No rescaling.

Parameters with at most one dimension (biases, BatchNorm/LayerNorm scales and shifts, scalars)
are treated by ``ignore_1d``: ``True`` (the default, Li et al.'s ``--xignore biasbn``, used for
all their published surfaces) sets their directions to zero, so biases and norm layers stay at
their trained values. ``False`` keeps them and normalizes each such tensor as one filter (for
``"filter"`` and ``"layer"``) or as part of the whole (``"model"``). Note that Li et al.'s code
without ``biasbn`` instead sets those directions *equal to the weights*; we do not copy that.

Parameter subsets
-----------------
Every source of directions takes ``params``, a spec of :mod:`saddles.io.params` (name globs,
``exclude_1d``, module types): the entries of parameters outside the selection are zero, so a
landscape moves the selected parameters only, and ``"model"`` normalization takes its norms
over them. The selection's counts are recorded in ``info["params"]``.

Orthogonalization
-----------------
Li et al. do not orthogonalize: two random high-dimensional vectors are nearly orthogonal
already, and Gram-Schmidt would undo filter normalization. It is off by default. On request,
:func:`orthonormalize` runs modified Gram-Schmidt (twice, for accuracy) on the flat vectors in
float64 and returns a true orthonormal basis (``D^T D = I``), or an orthogonal one that keeps
each direction's length (``keep_norms=True``).

Other sources of directions
---------------------------
- :func:`interpolation`: from the weights to other checkpoints, ``d = theta_target - theta``
  (linear interpolation at coordinates in [0, 1], planes through three solutions for mode
  connectivity).
- :func:`trajectory_pca`: principal components of an optimization trajectory (Li et al.
  section 7).
- :func:`from_tensors`: any given parameter-shaped tensors, e.g. Hessian eigenvectors, with
  optional normalization by the same code.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from saddles.io import params as params_mod
from saddles.names import NORMS, ORTHOGONALIZE

MAX_RANDOM_DIRECTIONS = 10
_EPS = 1e-10  # Li et al.'s guard against dividing by a zero norm

Direction = list[torch.Tensor]


@dataclass
class Directions:
    """``k`` directions in parameter space and how they were made.

    Attributes:
        tensors: ``k`` lists, each holding one tensor per parameter (see the module docstring).
        names: the parameter names, in the order of the tensors.
        info: provenance (``kind``, ``seed``, ``norm``, ``ignore_1d``, ...), JSON-serializable;
            a landscape copies it into its own record.
    """

    tensors: list[Direction] = field(repr=False)
    names: list[str] = field(repr=False)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, i: int) -> Direction:
        return self.tensors[i]

    @property
    def n_params(self) -> int:
        """Number of scalar parameters (the length of a flat direction)."""
        return sum(t.numel() for t in self.tensors[0]) if self.tensors else 0

    def matrix(self) -> torch.Tensor:
        """The directions as a ``(k, n_params)`` tensor of flat vectors (rows)."""
        return torch.stack([flatten(d) for d in self.tensors])


# --- parameters and the flat-vector mapping ----------------------------------------------------


def parameters(model: torch.nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    """The model's parameter names and tensors, in the order every direction uses."""
    named = list(model.named_parameters())
    if not named:
        raise ValueError(f"the model ({type(model).__name__}) has no parameters")
    return [n for n, _ in named], [p for _, p in named]


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate parameter-shaped tensors into one flat vector (C order within each tensor)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor | np.ndarray, like: Sequence[torch.Tensor]) -> Direction:
    """Split a flat vector back into tensors shaped like ``like`` (inverse of :func:`flatten`).

    The result takes ``like``'s dtype and device.
    """
    vector = torch.as_tensor(vector)
    total = sum(t.numel() for t in like)
    if vector.ndim != 1 or vector.numel() != total:
        raise ValueError(
            f"a flat direction must be a 1-D vector of length {total} (the number of "
            f"parameters), got shape {tuple(vector.shape)}"
        )
    out, start = [], 0
    for t in like:
        piece = vector[start : start + t.numel()].reshape(t.shape)
        out.append(piece.to(dtype=t.dtype, device=t.device))
        start += t.numel()
    return out


# --- normalization -----------------------------------------------------------------------------


def normalize(
    direction: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
    norm: str = "filter",
    ignore_1d: bool = True,
    keep: Sequence[bool] | None = None,
) -> Direction:
    """Rescale ``direction`` relative to ``weights`` (Li et al. 2018, section 4).

    ``norm`` is ``"filter"``, ``"layer"``, ``"model"`` or ``"none"`` and ``ignore_1d`` zeroes
    the directions of parameters with at most one dimension; the module docstring says exactly
    what each does. ``keep`` (one flag per parameter, from a parameter selection) zeroes the
    parameters flagged False and leaves them out of ``"model"``'s norms. Returns new tensors in
    the direction's dtype and device; the inputs are not modified.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
    direction, weights = list(direction), list(weights)
    _check_like(direction, weights, what="direction")
    keep = [True] * len(direction) if keep is None else list(keep)
    out = []
    for d, w, kept in zip(direction, weights, keep, strict=True):
        w = w.detach().to(dtype=d.dtype, device=d.device)
        d = d.detach().clone()
        if (d.dim() <= 1 and ignore_1d) or not kept:
            d.zero_()
        elif norm == "filter" and d.dim() >= 2:
            d_norms = d.reshape(d.shape[0], -1).norm(dim=1)
            w_norms = w.reshape(w.shape[0], -1).norm(dim=1)
            scale = w_norms / (d_norms + _EPS)
            d *= scale.reshape((-1,) + (1,) * (d.dim() - 1))
        elif norm in ("filter", "layer"):
            d *= w.norm() / (d.norm() + _EPS)
        out.append(d)
    if norm == "model":
        kept = [
            (d, w)
            for d, w, k in zip(out, weights, keep, strict=True)
            if k and not (d.dim() <= 1 and ignore_1d)
        ]
        if not kept:
            return out
        w_norm = torch.sqrt(sum(w.detach().to(d.dtype).norm() ** 2 for d, w in kept))
        d_norm = torch.sqrt(sum(d.norm() ** 2 for d, _ in kept))
        out = [d * (w_norm.to(d.device) / (d_norm + _EPS)) for d in out]
    return out


def orthonormalize(
    directions: Sequence[Sequence[torch.Tensor] | torch.Tensor], keep_norms: bool = False
) -> list[Direction]:
    """Gram-Schmidt in parameter space: an orthonormal basis of the directions' span.

    Modified Gram-Schmidt run twice ("twice is enough", Giraud et al. 2005) in float64, so the
    result satisfies ``D^T D = I`` to rounding of the output dtype. With ``keep_norms=True`` each
    output direction is rescaled to the norm of the corresponding input (orthogonal, not
    orthonormal). Directions may be parameter lists or flat vectors; the output has the form
    and dtype of the first. Linearly dependent directions are an error.
    """
    directions = list(directions)
    if not directions:
        raise ValueError("orthonormalize needs at least one direction")
    like = directions[0] if not isinstance(directions[0], torch.Tensor) else None
    flats = [
        (d if isinstance(d, torch.Tensor) else flatten(d)).detach().to(torch.float64).cpu()
        for d in directions
    ]
    if len({f.numel() for f in flats}) != 1:
        raise ValueError("directions to orthonormalize have different numbers of entries")
    basis: list[torch.Tensor] = []
    for i, v in enumerate(flats):
        original = v.norm()
        for _ in range(2):
            for b in basis:
                v = v - (b @ v) * b
        if original == 0 or v.norm() <= 1e-10 * original:
            raise ValueError(
                f"direction {i} is (numerically) a linear combination of the directions before "
                "it; Gram-Schmidt cannot make an orthonormal basis"
            )
        basis.append(v / v.norm())
    if keep_norms:
        basis = [b * f.norm() for b, f in zip(basis, flats, strict=True)]
    if like is None:
        ref = directions[0]
        return [b.to(dtype=ref.dtype, device=ref.device) for b in basis]
    return [unflatten(b, like) for b in basis]


# --- sources of directions ---------------------------------------------------------------------


def random_directions(
    model: torch.nn.Module,
    n: int = 2,
    *,
    seed: int = 0,
    norm: str = "filter",
    ignore_1d: bool = True,
    orthogonalize: str = "none",
    params: Mapping[str, Any] | None = None,
    dtype: str | torch.dtype | None = None,
) -> Directions:
    """``n`` (1 to 10) Gaussian random directions, normalized as Li et al. 2018.

    Entries are drawn in float64 on the CPU from ``torch.Generator().manual_seed(seed)`` and
    then cast to each parameter's dtype and device, so a seed gives the same directions on any
    device and in any precision. ``norm`` and ``ignore_1d``: see :func:`normalize`.
    ``orthogonalize``: ``"none"`` (default, as Li et al.), ``"orthonormal"`` (Gram-Schmidt to a
    unit-norm orthogonal basis; the filter-wise scale is lost) or ``"orthogonal"`` (Gram-Schmidt
    keeping each direction's normalized length). ``params``: a parameter selection
    (:mod:`saddles.io.params`); the entries outside it are zero. ``dtype``: store the
    directions in this floating-point dtype instead of the parameters' (opt-in, e.g.
    ``"bfloat16"``: half the bytes of float32 directions; the entries are rounded to it, so the
    landscape is that of the rounded directions; recorded in ``info["dtype"]``). A landscape
    keeps them in that dtype and widens one parameter's entries at a time
    (:mod:`saddles.landscape.problem`).
    """
    store = _storage_dtype(dtype)
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_RANDOM_DIRECTIONS:
        raise ValueError(f"n must be an integer from 1 to {MAX_RANDOM_DIRECTIONS}, not {n!r}")
    if orthogonalize not in ORTHOGONALIZE:
        raise ValueError(f"orthogonalize must be one of {ORTHOGONALIZE}, not {orthogonalize!r}")
    names, weights = parameters(model)
    keep, selection = _selection(model, params)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if orthogonalize == "none" and norm != "model":
        tensors = [_random_by_tensor(weights, gen, norm, ignore_1d, keep, store) for _ in range(n)]
    else:  # a norm or an orthogonalization over whole directions: all of them in float64
        weights64 = [w.detach().to("cpu", torch.float64) for w in weights]
        dirs = []
        for _ in range(n):
            d = [torch.randn(w.shape, generator=gen, dtype=torch.float64) for w in weights64]
            dirs.append(normalize(d, weights64, norm=norm, ignore_1d=ignore_1d, keep=keep))
        if orthogonalize != "none":
            dirs = orthonormalize(dirs, keep_norms=orthogonalize == "orthogonal")
        tensors = [
            [t.to(dtype=store or w.dtype, device=w.device) for t, w in zip(d, weights, strict=True)]
            for d in dirs
        ]
    info = {
        "kind": "random",
        "n": int(n),
        "seed": int(seed),
        "norm": norm,
        "ignore_1d": bool(ignore_1d),
        "orthogonalize": orthogonalize,
        "n_params": sum(w.numel() for w in weights),
        **selection,
    }
    if store is not None:  # only when asked for: the default's record is unchanged
        info["dtype"] = str(store).replace("torch.", "")
    return Directions(tensors, names, info)


def interpolation(
    model: torch.nn.Module,
    targets: Any | Sequence[Any],
    *,
    params: Mapping[str, Any] | None = None,
) -> Directions:
    """Directions from the model's weights to one or more other checkpoints.

    ``d_j = theta_j - theta``, so coordinate 0 is the model and coordinate 1 along axis ``j`` is
    checkpoint ``j`` (linear interpolation for one target; the plane through three solutions for
    two, as in mode-connectivity studies). A target is a module, a state dict (extra entries
    such as buffers are ignored), a list of parameter tensors, or a checkpoint on disk (a
    state-dict file or a Hugging Face folder, see :func:`checkpoint_weights`). Only parameters
    move: BatchNorm
    running statistics stay those of ``model``. Use :func:`orthonormalize` on the result for a
    Euclidean frame. With ``params`` (:mod:`saddles.io.params`) only the selected parameters
    move: coordinate 1 is then the model with those parameters taken from the target.
    """
    names, weights = parameters(model)
    keep, selection = _selection(model, params)
    if isinstance(targets, (torch.nn.Module, Mapping, str, os.PathLike)) or _is_tensor_list(
        targets, weights
    ):
        targets = [targets]
    targets = list(targets)
    if not targets:
        raise ValueError("interpolation needs at least one target checkpoint")
    tensors = []
    for j, target in enumerate(targets):
        target = checkpoint_weights(model, target)
        theta = _weights_of(target, names, weights, what=f"target {j}")
        diff = [(t - w).detach() for t, w in zip(theta, weights, strict=True)]
        tensors.append(_zero_outside(diff, keep))
    info = {
        "kind": "interpolation",
        "n": len(tensors),
        "n_params": sum(w.numel() for w in weights),
        **selection,
    }
    return Directions(tensors, names, info)


def trajectory_pca(
    model: torch.nn.Module,
    checkpoints: Sequence[Any],
    n: int = 2,
    *,
    ignore_1d: bool = True,
    params: Mapping[str, Any] | None = None,
) -> Directions:
    """Principal directions of an optimization trajectory (Li et al. 2018, section 7).

    As Li et al.'s reference code: the rows ``theta_i - theta`` (``theta`` = ``model``, usually
    the final weights; ``theta_i`` the checkpoints, each a module, state dict, tensor list or
    checkpoint on disk, see :func:`checkpoint_weights`)
    with 1-D parameters zeroed when ``ignore_1d``, are centred and decomposed by SVD (sklearn's
    PCA). The ``n`` top components are returned as orthonormal directions (sign fixed so each
    component's largest-magnitude entry is positive). ``info`` records
    ``explained_variance_ratio`` and ``trajectory``: each checkpoint's coordinates
    ``<theta_i - theta, d_k>`` in the plane, for drawing the path on the landscape (``model``
    is the origin). ``params`` (:mod:`saddles.io.params`) restricts the trajectory to the
    selected parameters, like ``ignore_1d``.
    """
    names, weights = parameters(model)
    keep, selection = _selection(model, params)
    checkpoints = list(checkpoints)
    if len(checkpoints) < 2:
        raise ValueError("trajectory_pca needs at least two checkpoints")
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= min(len(checkpoints), 10):
        raise ValueError(
            f"n must be an integer from 1 to min(#checkpoints, 10) = "
            f"{min(len(checkpoints), 10)}, not {n!r}"
        )
    keep = keep or [True] * len(weights)
    mask = [k and not (ignore_1d and w.dim() <= 1) for w, k in zip(weights, keep, strict=True)]
    rows = []
    for i, ckpt in enumerate(checkpoints):
        theta = _weights_of(checkpoint_weights(model, ckpt), names, weights, f"checkpoint {i}")
        diff = [
            (t - w).detach().to("cpu", torch.float64) for t, w in zip(theta, weights, strict=True)
        ]
        rows.append(
            flatten(
                [d if keep else torch.zeros_like(d) for d, keep in zip(diff, mask, strict=True)]
            )
        )
    matrix = torch.stack(rows)
    centred = matrix - matrix.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    comps = vh[:n]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    comps = comps * signs
    variance = s**2
    ratio = (variance[:n] / variance.sum()).tolist() if variance.sum() > 0 else [0.0] * n
    coords = (matrix @ comps.T).numpy()
    tensors = [unflatten(c, weights) for c in comps]
    info = {
        "kind": "trajectory_pca",
        "n": int(n),
        "ignore_1d": bool(ignore_1d),
        "n_checkpoints": len(checkpoints),
        "explained_variance_ratio": [float(r) for r in ratio],
        "trajectory": coords.tolist(),
        "n_params": sum(w.numel() for w in weights),
        **selection,
    }
    return Directions([[t.detach() for t in d] for d in tensors], names, info)


def _random_by_tensor(
    weights: list[torch.Tensor],
    gen: torch.Generator,
    norm: str,
    ignore_1d: bool,
    keep: list[bool] | None,
    store: torch.dtype | None = None,
) -> Direction:
    """One random direction drawn and normalized one parameter at a time, each tensor cast to
    ``store`` (default: its parameter's dtype).

    The same numbers as drawing the whole direction in float64 and normalizing it (the draws
    come in the same order, and ``"filter"``, ``"layer"`` and ``"none"`` scale each tensor on
    its own), but only one tensor is ever held in float64, so making directions for a
    language model needs about the directions themselves, not several float64 copies of it.
    """
    out = []
    for j, w in enumerate(weights):
        d = torch.randn(w.shape, generator=gen, dtype=torch.float64)
        w64 = w.detach().to("cpu", torch.float64)
        kept = None if keep is None else [keep[j]]
        (d,) = normalize([d], [w64], norm=norm, ignore_1d=ignore_1d, keep=kept)
        out.append(d.to(dtype=store or w.dtype, device=w.device))
    return out


def _kept(t: torch.Tensor, w: torch.Tensor, keep_dtype: bool) -> torch.dtype:
    """The dtype a given direction tensor is stored in: its own (floating point, with
    ``keep_dtype``) or its parameter's."""
    return t.dtype if keep_dtype and t.is_floating_point() else w.dtype


def _storage_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``None``, or the floating-point torch dtype named by ``dtype``."""
    if dtype is None:
        return None
    out = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(out, torch.dtype) or not out.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype such as 'bfloat16', not {dtype!r}")
    return out


def from_tensors(
    model: torch.nn.Module,
    directions: Any,
    *,
    norm: str = "none",
    ignore_1d: bool = False,
    info: dict[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    keep_dtype: bool = False,
) -> Directions:
    """Wrap given directions (e.g. Hessian eigenvectors) after checking them against ``model``.

    ``directions`` may be a :class:`Directions`, one direction (a list of parameter-shaped
    tensors), a list of such lists, a list of flat vectors, or a ``(k, n_params)`` matrix
    (tensor or numpy array). Shapes are checked parameter by parameter and a mismatch names the
    parameter. ``norm``/``ignore_1d`` optionally apply :func:`normalize` (off by default: an
    eigenvector is usually wanted as it is). ``params`` (:mod:`saddles.io.params`) zeroes the
    entries outside the selection. The tensors take the parameters' dtype and device;
    with ``keep_dtype``, floating-point tensors keep their own dtype (a landscape keeps
    directions stored narrower than the model, e.g. in bfloat16, as they are).
    """
    names, weights = parameters(model)
    keep, selection = _selection(model, params)
    given_info: dict[str, Any] = {}
    if isinstance(directions, Directions):
        given_info = dict(directions.info)
        if directions.names != names:
            raise ValueError(
                "the directions were made for parameters named "
                f"{_short(directions.names)}, but the model's are {_short(names)}"
            )
        directions = directions.tensors
    tensors = _as_direction_lists(directions, weights, names)
    if norm != "none" or ignore_1d:
        tensors = [
            normalize(d, weights, norm=norm, ignore_1d=ignore_1d, keep=keep) for d in tensors
        ]
    tensors = [_zero_outside(d, keep) for d in tensors]
    tensors = [
        [
            t.detach().to(dtype=_kept(t, w, keep_dtype), device=w.device)
            for t, w in zip(d, weights, strict=True)
        ]
        for d in tensors
    ]
    record = {"kind": "given", **given_info, **(info or {})}
    record.update({"n": len(tensors), "n_params": sum(w.numel() for w in weights), **selection})
    if norm != "none" or ignore_1d:
        record.update({"norm": norm, "ignore_1d": bool(ignore_1d)})
    return Directions(tensors, names, record)


# --- internals ---------------------------------------------------------------------------------


def checkpoint_weights(model: torch.nn.Module, source: Any) -> Any:
    """``source`` as weights of ``model``'s architecture: a path (a state-dict file or a
    Hugging Face folder, as ``checkpoints:`` and ``--checkpoint`` take them) is loaded into a
    copy of ``model`` by :func:`saddles.io.checkpoints.load_into`, which matches stored names to
    the model's; anything else is returned as it is."""
    if not isinstance(source, (str, os.PathLike)):
        return source
    from saddles.io.checkpoints import load_into

    return load_into(copy.deepcopy(model), source)


def _selection(
    model: torch.nn.Module, params: Mapping[str, Any] | None
) -> tuple[list[bool] | None, dict[str, Any]]:
    """Per-parameter keep flags (None: all) and the info entry of a parameter selection."""
    if not params_mod.check_spec(params):
        return None, {}
    chosen = params_mod.select(model, params)
    keep = [n in chosen for n, _ in model.named_parameters()]
    return keep, {"params": chosen.info()}


def _zero_outside(direction: Direction, keep: list[bool] | None) -> Direction:
    """The direction with the entries of unselected parameters set to zero."""
    if keep is None:
        return direction
    return [t if k else torch.zeros_like(t) for t, k in zip(direction, keep, strict=True)]


def _short(names: Sequence[str], n: int = 4) -> str:
    """A few names for an error message."""
    names = list(names)
    head = ", ".join(repr(x) for x in names[:n])
    return f"[{head}{', ...' if len(names) > n else ''}] ({len(names)} in all)"


def _check_like(direction: list, weights: list, what: str, names: list[str] | None = None) -> None:
    """Raise a clear error unless ``direction`` has one tensor per weight, with equal shapes."""
    if len(direction) != len(weights):
        raise ValueError(
            f"{what} has {len(direction)} tensors but the model has {len(weights)} parameters"
        )
    for j, (d, w) in enumerate(zip(direction, weights, strict=True)):
        if not isinstance(d, (torch.Tensor, np.ndarray)):
            raise TypeError(f"{what}, entry {j}: expected a tensor, got {type(d).__name__}")
        if tuple(d.shape) != tuple(w.shape):
            label = f"parameter {names[j]!r}" if names else f"parameter {j}"
            raise ValueError(
                f"{what}, {label}: shape {tuple(d.shape)} does not match the model's "
                f"{tuple(w.shape)}"
            )


def _is_tensor_list(x: Any, weights: list[torch.Tensor]) -> bool:
    """True when ``x`` looks like one parameter list (as opposed to a list of checkpoints)."""
    return (
        isinstance(x, (list, tuple))
        and len(x) == len(weights)
        and all(isinstance(t, torch.Tensor) for t in x)
        and all(tuple(t.shape) == tuple(w.shape) for t, w in zip(x, weights, strict=True))
    )


def _weights_of(
    source: Any, names: list[str], weights: list[torch.Tensor], what: str
) -> list[torch.Tensor]:
    """Parameter tensors of a module, a state dict or a tensor list, checked against weights."""
    if isinstance(source, torch.nn.Module):
        source = dict(source.named_parameters())
    if isinstance(source, Mapping):
        missing = [n for n in names if n not in source]
        if missing:
            raise ValueError(f"{what} lacks parameter(s) {_short(missing)}")
        tensors = [torch.as_tensor(source[n]) for n in names]
    elif isinstance(source, (list, tuple)):
        tensors = [torch.as_tensor(t) for t in source]
    else:
        raise TypeError(
            f"{what} must be a module, a state dict or a list of tensors, not "
            f"{type(source).__name__}"
        )
    _check_like(tensors, weights, what=what, names=names)
    return [
        t.detach().to(dtype=w.dtype, device=w.device) for t, w in zip(tensors, weights, strict=True)
    ]


def _as_direction_lists(
    directions: Any, weights: list[torch.Tensor], names: list[str]
) -> list[Direction]:
    """Turn the accepted forms of given directions into a list of parameter lists."""
    total = sum(w.numel() for w in weights)
    if isinstance(directions, np.ndarray):
        directions = torch.from_numpy(directions)
    if isinstance(directions, torch.Tensor):
        if directions.ndim == 1:
            directions = directions[None]
        if directions.ndim != 2 or directions.shape[1] != total:
            raise ValueError(
                f"a direction matrix must have shape (k, {total}) (one flat direction per row, "
                f"{total} = the model's parameter count), got {tuple(directions.shape)}"
            )
        return [unflatten(row, weights) for row in directions]
    if not isinstance(directions, (list, tuple)) or len(directions) == 0:
        raise ValueError(
            "directions must be a non-empty list of directions (each a list of "
            "parameter-shaped tensors or a flat vector) or a (k, n_params) matrix"
        )
    if _is_tensor_list(directions, weights):
        directions = [directions]
    out = []
    for i, d in enumerate(directions):
        if isinstance(d, (torch.Tensor, np.ndarray)):
            d = torch.as_tensor(d)
            if d.ndim != 1 or d.numel() != total:
                raise ValueError(
                    f"direction {i} is a tensor of shape {tuple(d.shape)}; a flat direction "
                    f"must be a vector of length {total} (the model's parameter count)"
                )
            out.append(unflatten(d, weights))
        elif isinstance(d, (list, tuple)):
            d = [torch.as_tensor(t) for t in d]
            _check_like(d, weights, what=f"direction {i}", names=names)
            out.append(d)
        else:
            raise TypeError(
                f"direction {i} is a {type(d).__name__}; expected a list of tensors or a vector"
            )
    return out
