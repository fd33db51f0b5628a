"""Loading and checking what the CLI commands are given: a model factory, a checkpoint, a data
file, a loss, a device, an output folder.

Shared by `saddles landscape`, `saddles hessian` and `saddles run`. Checkpoints and data are
read without unpickling arbitrary objects (``torch.load(..., weights_only=True)``, safetensors,
``np.load(..., allow_pickle=False)``). Everything here runs before anything is computed, and
every refusal is a ``typer.BadParameter`` naming the option (or YAML key) at fault, so it exits
with status 2 (see :mod:`saddles.cli`). torch is imported inside the functions.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import typer

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def import_object(spec: str, hint: str) -> Any:
    """Import ``module:attribute`` or ``file.py:attribute``; the working directory is importable."""
    from saddles.io.models import ModelLoadError
    from saddles.io.models import import_object as library_import

    try:
        return library_import(spec)
    except ModelLoadError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def build_model(spec: str, hint: str = "--model"):
    """The model ``spec`` names (:func:`saddles.models.load_model`): ``hf:PATH``, a local
    Hugging Face folder, or a factory ``module:function``; its errors are the option's."""
    from saddles.io.models import ModelLoadError
    from saddles.io.models import load_model as library_load

    try:
        return library_load(spec)
    except (ModelLoadError, ImportError) as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def load_model(spec: str, checkpoint: Path | None, hint: str = "--model",
               checkpoint_hint: str = "--checkpoint"):  # fmt: skip
    """The model with the checkpoint's weights; without a checkpoint, a factory's model gets
    one line on stderr saying that its (random) initialization is what gets analysed (an
    ``hf:`` folder holds its own weights)."""
    from saddles.io.models import HF_PREFIX

    net = build_model(spec, hint)
    if checkpoint is None:
        if not str(spec).startswith(HF_PREFIX):
            typer.echo(f"warning: no {checkpoint_hint}: analysing {spec}()'s random "
                       "initialization", err=True)  # fmt: skip
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
    from saddles.io.checkpoints import CheckpointError, load_into

    try:
        load_into(net, path)
    except FileNotFoundError as exc:
        raise typer.BadParameter(f"no such file: {path}", param_hint=hint) from exc
    except CheckpointError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


DATA_SUFFIXES = (".pt", ".pth", ".safetensors", ".npy", ".npz")


def load_data(path: Path, hint: str = "--data") -> Any:
    """The data in ``path``, as stored: one batch or a list of batches (:mod:`saddles.io.data`).

    - ``.pt``/``.pth`` (``torch.load(weights_only=True)``): a tensor, a tuple/list of tensors
      or a dict of tensors (one batch, a dict kept with its keys), or a list of such batches
      (a list of dicts, a list of tuples);
    - ``.safetensors``: its named tensors, one dict batch;
    - ``.npy``: one array (token ids, say), one batch;
    - ``.npz``: one dict batch when it holds ``input_ids`` (a token file), else a tuple of its
      arrays in file order (``np.savez(f, x, y)``: inputs, targets).
    """
    import numpy as np
    import torch

    from saddles.io.data import as_batches

    if not path.is_file():
        raise typer.BadParameter(f"no such file: {path}", param_hint=hint)
    if path.suffix not in DATA_SUFFIXES:
        raise typer.BadParameter(f"unsupported data file {path.name!r}: use "
                                 f"{', '.join(DATA_SUFFIXES)}", param_hint=hint)  # fmt: skip
    if path.suffix in (".npy", ".npz"):
        try:
            if path.suffix == ".npy":
                arrays = {"": np.load(path, allow_pickle=False)}
            else:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise typer.BadParameter(
                f"cannot read {path}: {_first_line(str(exc))}", param_hint=hint
            ) from exc
        if not arrays:
            raise typer.BadParameter(f"{path} holds no arrays", param_hint=hint)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in arrays.items()}
        if path.suffix == ".npy":
            return tensors[""]
        return tensors if "input_ids" in tensors else tuple(tensors.values())
    obj = _read_file(
        path,
        hint,
        "tensors (a tensor, a tuple/list/dict of tensors, or a list of such batches)",
        "torch tensors (torch.from_numpy(array)), or use .safetensors or .npz",
    )
    try:
        as_batches(obj)
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(
            f"{path} must hold a tensor, a tuple/list/dict of tensors, or a list of such "
            f"batches: {exc}",
            param_hint=hint,
        ) from exc
    return obj


def split_batches(data: Any, size: int) -> list:
    """Split every batch along the first dimension into batches of ``size`` samples (a dict
    batch into dicts with the same keys)."""
    from saddles.io.data import as_batches, batch_size, map_batch

    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise typer.BadParameter(f"the batch size must be a positive integer, not {size!r}",
                                 param_hint="batch_size")  # fmt: skip
    out = []
    for batch in as_batches(data):
        for i in range(0, batch_size(batch), size):
            out.append(map_batch(batch, lambda t, i=i: t[i : i + size]))
    return out


def param_spec(include: list[str], exclude: list[str], exclude_1d: bool,
               types: list[str], hint: str = "--params-include") -> dict | None:  # fmt: skip
    """The ``--params-*`` options as a :mod:`saddles.io.params` spec (None: every parameter)."""
    from saddles.io.params import check_spec

    spec = {"include": include or None, "exclude": exclude or None,
            "exclude_1d": bool(exclude_1d), "types": types or None}  # fmt: skip
    try:
        return check_spec(spec) or None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def check_params(net, spec: dict | None, hint: str = "--params-include"):
    """The selection ``spec`` makes in ``net`` (:func:`saddles.params.select`), or exit 2."""
    from saddles.io.params import select

    try:
        return select(net, spec)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def build_loss(criterion: str | None, loss: str | None, *, loss_hint: str = "--loss",
               criterion_hint: str = "--criterion", inputs_key: str | None = None,
               targets_key: str | None = None):  # fmt: skip
    """The ``loss(model, batch)`` of every command: a criterion name (``cross_entropy``, the
    default, ``mse`` or ``causal_lm``; :func:`saddles.data.make_loss`, which takes a dict
    batch's ``inputs_key``/``targets_key``) or a function named as ``module:function``.
    Returns the loss and its label for reports."""
    from saddles.io.data import make_loss

    if loss is not None and criterion is not None:
        raise typer.BadParameter(
            f"give {loss_hint} or {criterion_hint}, not both", param_hint=loss_hint
        )
    if loss is None:
        name = criterion or "cross_entropy"
        try:
            fn = make_loss(criterion=name, inputs_key=inputs_key, targets_key=targets_key)
            return fn, name
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

    from saddles.io.data import as_batches

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


def check_tokens(net, data, hint: str = "--data") -> None:
    """Token ids of every batch (a dict's ``input_ids``; a 1-tuple for ``causal_lm``) within
    the model's vocabulary, checked before anything is computed
    (:func:`saddles.data.check_token_ids`)."""
    from saddles.io.data import as_batches, check_token_ids

    for i, batch in enumerate(as_batches(data)):
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        if ids is None or ids.is_floating_point():
            continue
        try:
            check_token_ids(net, ids)
        except ValueError as exc:
            raise typer.BadParameter(f"batch {i}: {exc}", param_hint=hint) from exc


def check_device(device: str | None, hint: str = "--device"):
    """``device`` as a ``torch.device``, refused by name when unknown or unavailable."""
    from saddles.io.data import resolve_device

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
