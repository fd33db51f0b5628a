"""Loading and checking what the CLI commands are given: a model factory, a checkpoint, a data
file, a loss, a device, an output folder.

Shared by `saddles landscape`, `saddles hessian` and `saddles run`. Checkpoints and data are
read without unpickling arbitrary objects (``torch.load(..., weights_only=True)``, safetensors,
``np.load(..., allow_pickle=False)``). Everything here runs before anything is computed, and
every refusal is a ``typer.BadParameter`` naming the option (or YAML key) at fault, so it exits
with status 2 (see :mod:`saddles.cli`). torch is imported inside the functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import typer

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def import_object(spec: str, hint: str) -> Any:
    """Import ``module:attribute`` or ``file.py:attribute``; the working directory is importable."""
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise typer.BadParameter(f"expected module:function, got {spec!r}", param_hint=hint)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise typer.BadParameter(f"no such file: {path}", param_hint=hint)
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except typer.BadParameter:
        raise
    except Exception as exc:  # ImportError, or whatever the module raises while it runs
        raise typer.BadParameter(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}", param_hint=hint
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise typer.BadParameter(f"{module_name!r} has no {attr!r}", param_hint=hint) from exc


def build_model(spec: str, hint: str = "--model"):
    """Call the factory ``spec`` names; its errors are reported as the option's."""
    import torch

    factory = import_object(spec, hint)
    if not callable(factory):
        raise typer.BadParameter(f"{spec} is not callable", param_hint=hint)
    try:
        net = factory()
    except Exception as exc:
        raise typer.BadParameter(
            f"{spec}() raised {type(exc).__name__}: {exc}", param_hint=hint
        ) from exc
    if not isinstance(net, torch.nn.Module):
        raise typer.BadParameter(
            f"{spec}() returned a {type(net).__name__}, not a torch.nn.Module", param_hint=hint
        )
    return net


def load_model(spec: str, checkpoint: Path | None, hint: str = "--model",
               checkpoint_hint: str = "--checkpoint"):  # fmt: skip
    """The factory's model with the checkpoint's weights; without a checkpoint, one line on
    stderr says that the factory's (random) initialization is what gets analysed."""
    net = build_model(spec, hint)
    if checkpoint is None:
        typer.echo(
            f"warning: no {checkpoint_hint}: analysing {spec}()'s random initialization", err=True
        )
    else:
        load_checkpoint(net, checkpoint, checkpoint_hint)
    return net


def _read_file(path: Path, hint: str, what: str, save: str):
    """``torch.load(weights_only=True)`` or safetensors; one line of our own on failure."""
    import torch

    if not path.exists():
        raise typer.BadParameter(f"no such file: {path}", param_hint=hint)
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder, not a file", param_hint=hint)
    if path.stat().st_size == 0:
        raise typer.BadParameter(f"{path} is empty (0 bytes)", param_hint=hint)
    with warnings.catch_warnings():  # torch's warnings would say it in many lines
        warnings.simplefilter("ignore")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path), device="cpu")
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            text = str(exc)
            found = _GLOBAL.search(text)
            if found:
                message = (
                    f"{path} holds a pickled {found.group(1)}, refused: only {what} is read "
                    f"(unpickling other objects could run code); save {save}"
                )
            elif path.suffix == ".safetensors":
                message = f"{path} is not a readable safetensors file ({_first_line(text)})"
            else:
                message = (
                    f"{path} is not a file written by torch.save "
                    f"({type(exc).__name__}: {_first_line(text)})"
                )
            raise typer.BadParameter(message, param_hint=hint) from exc


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no details"


def load_checkpoint(net, path: Path, hint: str) -> None:
    """Load a state dict into ``net`` with :func:`saddles.checkpoints.load_into` (never
    unpickles arbitrary objects); its one-line errors become bad-parameter errors."""
    from saddles.checkpoints import CheckpointError, load_into

    try:
        load_into(net, path)
    except FileNotFoundError as exc:
        raise typer.BadParameter(f"no such file: {path}", param_hint=hint) from exc
    except CheckpointError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def load_data(path: Path, hint: str = "--data") -> tuple:
    """One batch (a tuple of tensors) from a .pt or .npz file."""
    import numpy as np
    import torch

    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}", param_hint=hint)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = [npz[k] for k in npz.files]
        except Exception as exc:
            raise typer.BadParameter(
                f"cannot read {path}: {_first_line(str(exc))}", param_hint=hint
            ) from exc
        if not arrays:
            raise typer.BadParameter(f"{path} holds no arrays", param_hint=hint)
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
    if path.suffix not in (".pt", ".pth"):
        raise typer.BadParameter(
            f"unsupported data file {path.name!r}: use .pt/.pth or .npz", param_hint=hint
        )
    obj = _read_file(
        path,
        hint,
        "a tensor (or a tuple/list/dict of tensors)",
        "torch tensors (torch.from_numpy(array)), or use .npz",
    )
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, torch.Tensor):
        return (obj,)
    if isinstance(obj, (tuple, list)) and obj and all(isinstance(t, torch.Tensor) for t in obj):
        return tuple(obj)
    raise typer.BadParameter(
        f"{path} must hold a tensor or a tuple/list/dict of tensors, not {type(obj).__name__}",
        param_hint=hint,
    )


def split_batches(batch: tuple, size: int) -> list[tuple]:
    """Split one batch along the first dimension into batches of ``size`` samples."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise typer.BadParameter(f"the batch size must be a positive integer, not {size!r}",
                                 param_hint="batch_size")  # fmt: skip
    n = batch[0].shape[0]
    return [tuple(t[i : i + size] for t in batch) for i in range(0, n, size)]


def build_loss(criterion: str | None, loss: str | None, *, loss_hint: str = "--loss",
               criterion_hint: str = "--criterion"):  # fmt: skip
    """The ``loss(model, batch)`` of every command: a criterion name (``cross_entropy``, the
    default, or ``mse``; :func:`saddles.data.make_loss`) or a function named as
    ``module:function``. Returns the loss and its label for reports."""
    from saddles.data import make_loss

    if loss is not None and criterion is not None:
        raise typer.BadParameter(
            f"give {loss_hint} or {criterion_hint}, not both", param_hint=loss_hint
        )
    if loss is None:
        name = criterion or "cross_entropy"
        try:
            return make_loss(criterion=name), name
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=criterion_hint) from exc
    fn = import_object(loss, loss_hint)
    if not callable(fn):
        raise typer.BadParameter(f"{loss} is not callable", param_hint=loss_hint)
    return make_loss(loss=fn), str(loss)


def check_loss(net, loss, data, hint: str = "--data") -> None:
    """Evaluate the loss once, on the first batch, so that data the loss cannot use (no
    targets, the wrong shape or dtype) is refused before anything is computed. The model is
    put in eval mode for this (no batch-norm statistics change) and back."""
    import torch

    from saddles.data import as_batches

    try:
        first = as_batches(data)[0]
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc
    training = net.training
    net.eval()
    try:
        value = loss(net, first)
    except (MemoryError, torch.OutOfMemoryError):
        raise  # too big to try is not a wrong input
    except Exception as exc:
        message = _first_line(str(exc))
        raise typer.BadParameter(
            f"the loss cannot be computed on the data's first batch: {message}", param_hint=hint
        ) from exc
    finally:
        net.train(training)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise typer.BadParameter(
            f"the loss must return a scalar tensor, not {type(value).__name__}"
            + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else ""),
            param_hint=hint,
        )


def check_device(device: str | None, hint: str = "--device"):
    """``device`` as a ``torch.device``, refused by name when unknown or unavailable."""
    from saddles.data import resolve_device

    try:
        return resolve_device(device)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def check_out_dir(path: Path, hint: str = "--out") -> Path:
    """An output folder that exists or can be made: not an existing file."""
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise typer.BadParameter(
                    f"{parent} is a file; give a folder (it is made if missing)", param_hint=hint
                )
            break
    return path
