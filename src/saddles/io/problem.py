"""A model, its loss and its data, loaded and checked together: :func:`load_problem`.

Every command that analyses a model (``saddles landscape``, ``hessian``, ``run``, ``dynamics``)
and any script needs the same sequence: build the model and load its checkpoint, read the
data and split it into batches, build the loss, check the token ids against the vocabulary
and evaluate the loss once on the first batch. Written once here; each refusal is an
:class:`InputError` (a ``ValueError``) that names the argument at fault, so that the command
line can name its option.

Imports torch (through :mod:`saddles.io`); must not import the CLI, the landscape or the
Hessian packages.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from saddles.io import data as data_mod
from saddles.io import models
from saddles.io import params as params_mod


class InputError(ValueError):
    """An argument of :func:`load_problem` refused; ``argument`` names it (``"model"``,
    ``"checkpoint"``, ``"data"``, ``"batch_size"``, ``"loss"``, ``"criterion"``, ``"params"``)
    and ``message`` says why."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument, self.message = argument, message


@dataclass
class Problem:
    """What :func:`load_problem` returns: the model (with its checkpoint's weights), the
    ``loss(model, batch)``, the data (one batch or a list of batches), the loss's label for
    reports, and the parameter selection (None: every parameter)."""

    model: torch.nn.Module
    loss: data_mod.LossFn
    data: Any
    loss_label: str
    selection: params_mod.Selection | None = None


def build_loss(
    criterion: str | None = None,
    loss: str | Callable | None = None,
    *,
    inputs_key: str | None = None,
    targets_key: str | None = None,
) -> tuple[data_mod.LossFn, str]:
    """The loss and its label: a criterion name (``cross_entropy``, the default, ``mse`` or
    ``causal_lm``; :func:`saddles.io.data.make_loss`) or a ``loss(model, batch)`` function,
    given as a callable or as ``module:function``."""
    if loss is not None and criterion is not None:
        raise InputError("loss", "give a loss or a criterion, not both")
    if loss is None:
        name = criterion or "cross_entropy"
        try:
            fn = data_mod.make_loss(criterion=name, inputs_key=inputs_key, targets_key=targets_key)
        except ValueError as exc:
            raise InputError("criterion", str(exc)) from exc
        return fn, name
    fn = loss
    if isinstance(loss, str):
        try:
            fn = models.import_object(loss)
        except models.ModelLoadError as exc:
            raise InputError("loss", str(exc)) from exc
    if not callable(fn):
        raise InputError("loss", f"{loss} is not callable")
    return data_mod.make_loss(loss=fn), str(loss if isinstance(loss, str) else _name(fn))


def load_problem(
    model: str | torch.nn.Module,
    data: str | os.PathLike | Any,
    *,
    checkpoint: str | os.PathLike | None = None,
    criterion: str | None = None,
    loss: str | Callable | None = None,
    inputs_key: str | None = None,
    targets_key: str | None = None,
    batch_size: int | None = None,
    params: dict | None = None,
) -> Problem:
    """Load and check a model, its loss and its data, in that order, before anything is
    computed.

    ``model``: ``hf:PATH`` or ``module:function`` (:func:`saddles.io.models.load_model`) or a
    module; ``checkpoint``: a state-dict file or Hugging Face folder loaded into it
    (:func:`saddles.io.checkpoints.load_into`); ``data``: a file (:func:`saddles.io.data.read_data`)
    or batches, split into ``batch_size`` samples when given; ``criterion`` or ``loss`` as in
    :func:`build_loss`; ``params``: a :mod:`saddles.io.params` spec, checked against
    the model. Then the token ids are checked against the vocabulary and the loss is
    evaluated once on the first batch. Raises :class:`InputError` naming the argument.
    """
    fn, label = build_loss(criterion, loss, inputs_key=inputs_key, targets_key=targets_key)
    try:
        spec = params_mod.check_spec(params) or None
    except ValueError as exc:
        raise InputError("params", str(exc)) from exc
    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
    ):
        raise InputError("batch_size", f"must be a positive integer, not {batch_size!r}")
    net = model if isinstance(model, torch.nn.Module) else _load_model(model, checkpoint)
    if isinstance(model, torch.nn.Module) and checkpoint is not None:
        _load_checkpoint(net, checkpoint)
    selection = None
    if spec:
        try:
            selection = params_mod.select(net, spec)
        except ValueError as exc:
            raise InputError("params", str(exc)) from exc
    if isinstance(data, (str, os.PathLike)):
        try:
            data = data_mod.read_data(Path(data))
        except (ValueError, FileNotFoundError) as exc:
            raise InputError("data", str(exc)) from exc
    try:
        batches = data_mod.split_batches(data, batch_size) if batch_size else data
        data_mod.check_tokens(net, batches)
        data_mod.check_loss(net, fn, batches)
    except (TypeError, ValueError) as exc:
        raise InputError("data", str(exc)) from exc
    return Problem(net, fn, batches, label, selection)


def _load_model(spec: str, checkpoint: str | os.PathLike | None) -> torch.nn.Module:
    try:
        net = models.load_model(spec)
    except (models.ModelLoadError, ImportError) as exc:
        raise InputError("model", str(exc)) from exc
    if checkpoint is not None:
        _load_checkpoint(net, checkpoint)
    return net


def _load_checkpoint(net: torch.nn.Module, checkpoint: str | os.PathLike) -> None:
    from saddles.io.checkpoints import CheckpointError, load_into

    try:
        load_into(net, checkpoint)
    except FileNotFoundError as exc:
        raise InputError("checkpoint", f"no such file: {checkpoint}") from exc
    except CheckpointError as exc:
        raise InputError("checkpoint", str(exc)) from exc


def _name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', repr(fn))}"
