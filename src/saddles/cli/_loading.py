"""Loading what the CLI commands are given: a model factory, a checkpoint, a data file.

Shared by `saddles landscape`, `saddles hessian` and `saddles run`. Checkpoints and data are
read without unpickling arbitrary objects (``torch.load(..., weights_only=True)``, safetensors,
``np.load(..., allow_pickle=False)``). torch is imported inside the functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import typer


def import_object(spec: str, hint: str) -> Any:
    """Import ``module:attribute`` or ``file.py:attribute``; the working directory is importable."""
    module_name, sep, attr = spec.partition(":")
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
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}", param_hint=hint) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise typer.BadParameter(f"{module_name!r} has no {attr!r}", param_hint=hint) from exc


def build_model(spec: str):
    import torch

    factory = import_object(spec, "--model")
    if not callable(factory):
        raise typer.BadParameter(f"{spec} is not callable", param_hint="--model")
    net = factory()
    if not isinstance(net, torch.nn.Module):
        raise typer.BadParameter(
            f"{spec}() returned a {type(net).__name__}, not a torch.nn.Module", param_hint="--model"
        )
    return net


def load_checkpoint(net, path: Path, hint: str) -> None:
    """Load a state dict into ``net``; never unpickles arbitrary objects."""
    import pickle

    import torch

    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}", param_hint=hint)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise typer.BadParameter(
            f"cannot load {path} as a plain state dict (objects other than tensors and "
            f"containers are refused; save model.state_dict()): {first}",
            param_hint=hint,
        ) from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise typer.BadParameter(
            f"{path} does not hold a state dict (a mapping of names to tensors); it holds a "
            f"{type(state).__name__}",
            param_hint=hint,
        )
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise typer.BadParameter(
            f"{path} does not match the model: {exc}", param_hint=hint
        ) from exc


def load_data(path: Path) -> tuple:
    """One batch (a tuple of tensors) from a .pt or .npz file."""
    import pickle

    import numpy as np
    import torch

    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}", param_hint="--data")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = [npz[k] for k in npz.files]
        except (ValueError, OSError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--data") from exc
        if not arrays:
            raise typer.BadParameter(f"{path} holds no arrays", param_hint="--data")
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
    if path.suffix not in (".pt", ".pth"):
        raise typer.BadParameter(
            f"unsupported data file {path.name!r}: use .pt/.pth or .npz", param_hint="--data"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError) as exc:
        raise typer.BadParameter(
            f"cannot load {path} with weights_only=True: {exc}", param_hint="--data"
        ) from exc
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, torch.Tensor):
        return (obj,)
    if isinstance(obj, (tuple, list)) and obj and all(isinstance(t, torch.Tensor) for t in obj):
        return tuple(obj)
    raise typer.BadParameter(
        f"{path} must hold a tensor or a tuple/list/dict of tensors, not {type(obj).__name__}",
        param_hint="--data",
    )


def split_batches(batch: tuple, size: int) -> list[tuple]:
    """Split one batch along the first dimension into batches of ``size`` samples."""
    n = batch[0].shape[0]
    return [tuple(t[i : i + size] for t in batch) for i in range(0, n, size)]


def make_criterion(name: str):
    """``loss(model, batch)`` for a named criterion on ``(inputs, targets)`` batches."""
    import torch

    from saddles.data import make_loss

    criteria = {"cross_entropy": torch.nn.functional.cross_entropy,
                "mse": torch.nn.functional.mse_loss}  # fmt: skip
    if name not in criteria:
        raise typer.BadParameter(f"criterion must be one of {sorted(criteria)}, not {name!r}")
    return make_loss(criterion=criteria[name])
