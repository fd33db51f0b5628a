"""The CLI's face of :mod:`saddles.io`: each function calls the library and turns its refusal
(a ``ValueError``/``FileNotFoundError`` line) into a ``typer.BadParameter`` naming the option
(or YAML key), so that it exits with status 2 (see :mod:`saddles.cli`).

Reading files safely, splitting batches, checking tokens and the loss are the library's
(:mod:`saddles.io.data`, :mod:`saddles.io.models`, :mod:`saddles.io.checkpoints`,
:func:`saddles.io.load_problem`); nothing is read or checked here. torch is imported inside
the functions.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import typer


@contextlib.contextmanager
def option(hint: str, *errors: type[BaseException]):
    """Re-raise the library's refusals (``ValueError``, ``FileNotFoundError``, or ``errors``)
    inside the block as ``typer.BadParameter`` of the option ``hint``."""
    try:
        yield
    except (ValueError, FileNotFoundError, *errors) as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def import_object(spec: str, hint: str) -> Any:
    """Import ``module:attribute`` or ``file.py:attribute``; the working directory is importable."""
    from saddles.io.models import import_object as library_import

    with option(hint):
        return library_import(spec)


def build_model(spec: str, hint: str = "--model"):
    """The model ``spec`` names (:func:`saddles.io.models.load_model`)."""
    from saddles.io.models import load_model as library_load

    with option(hint, ImportError):
        return library_load(spec)


def warn_random_init(spec: str, checkpoint_hint: str = "--checkpoint") -> None:
    """Say on stderr that a factory's model is analysed at its random initialization."""
    from saddles.io.sources import source_of

    source, _ = source_of(spec)
    if source is None or not source.pretrained:
        typer.echo(f"warning: no {checkpoint_hint}: analysing {spec}()'s random "
                   "initialization", err=True)  # fmt: skip


def param_spec(include: list[str], exclude: list[str], exclude_1d: bool,
               types: list[str], hint: str = "--params-include") -> dict | None:  # fmt: skip
    """The ``--params-*`` options as a :mod:`saddles.io.params` spec (None: every parameter)."""
    from saddles.io.params import check_spec

    spec = {"include": include or None, "exclude": exclude or None,
            "exclude_1d": bool(exclude_1d), "types": types or None}  # fmt: skip
    with option(hint):
        return check_spec(spec) or None


def check_params(net, spec: dict | None, hint: str = "--params-include"):
    """The selection ``spec`` makes in ``net`` (:func:`saddles.io.params.select`)."""
    from saddles.io.params import select

    with option(hint):
        return select(net, spec)


OPTIONS = {"model": "--model", "checkpoint": "--checkpoint", "data": "--data",
           "batch_size": "--batch-size", "loss": "--loss", "criterion": "--criterion",
           "params": "--params-include/--params-exclude/--params-type"}  # fmt: skip


def load_problem(*, model: str, checkpoint: Path | None, data: Path, **kwargs: Any):
    """:func:`saddles.io.load_problem`, its refusals as the options' (:data:`OPTIONS`); a
    factory's model without ``--checkpoint`` gets :func:`warn_random_init`'s line."""
    from saddles.io.problem import InputError
    from saddles.io.problem import load_problem as library_load

    try:
        problem = library_load(model, data, checkpoint=checkpoint, **kwargs)
    except InputError as exc:
        message = exc.message
        if exc.argument == "loss" and kwargs.get("criterion") and kwargs.get("loss"):
            message = "give --loss or --criterion, not both"
        raise typer.BadParameter(message, param_hint=OPTIONS[exc.argument]) from exc
    if checkpoint is None:
        warn_random_init(model)
    return problem


def check_device(device: str | None, hint: str = "--device"):
    """``device`` as a ``torch.device``, refused by name when unknown or unavailable."""
    from saddles.io.data import resolve_device

    with option(hint):
        return resolve_device(device)


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
