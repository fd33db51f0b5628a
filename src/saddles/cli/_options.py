"""The CLI's vocabulary: one choice type per library tuple of names, built from that tuple;
the defaults of :class:`~saddles.runs.config.AnalysisConfig`; the options every command that
loads a model shares (model, checkpoint, data, loss, parameters, device, output), declared once.

A name added to the library's tuple appears in the CLI (its ``--help`` and its checks) with no
change here. The tuples come from torch-free modules (:mod:`saddles.names`,
:mod:`saddles.sampling`, the topology package), so that declaring the options imports no torch:
``saddles topology`` never does. Two tuples live in torch modules that the CLI must not import
at startup; they are copied here, and a test keeps each copy equal to the library's.
"""

from __future__ import annotations

from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from saddles import names
from saddles.runs.config import AnalysisConfig, default_of
from saddles.sampling import METHODS, REGIONS
from saddles.topology.graphs import CONNECTIVITIES
from saddles.topology.mergetree import NAN_POLICIES
from saddles.topology.representations import REPRESENTATIONS

#: Copy of the names of ``saddles.experiments.lm.PRESETS`` (torch); a test keeps it equal.
LM_PRESETS = ("small", "full")

#: Help texts of the parameter-selection options, shared by `landscape` and `hessian`.
PARAMS_HELP = {
    "include": "Only parameters whose name matches this glob, e.g. 'gpt_neox.layers.3.*' "
    "(repeatable; saddles.io.params).",
    "exclude": "Leave out parameters whose name matches this glob, e.g. '*norm*' (repeatable).",
    "exclude_1d": "Leave out parameters with at most one dimension (biases, norm scales).",
    "type": "Only parameters of modules of this class, e.g. Linear (repeatable).",
}


def choices(name: str, values) -> type[Enum]:
    """A str enum whose members are ``values``, each named and valued by itself."""
    return Enum(name, {v: v for v in values}, type=str)


Criterion = choices("Criterion", names.CRITERIA)
Autocast = choices("Autocast", names.AUTOCAST)
Norm = choices("Norm", names.NORMS)
Orthogonalize = choices("Orthogonalize", names.ORTHOGONALIZE)
Method = choices("Method", METHODS)
Region = choices("Region", REGIONS)
Engine = choices("Engine", names.ENGINES)
Sampling = choices("Sampling", names.GRID_SAMPLINGS)
ExecutorName = choices("ExecutorName", names.EXECUTORS)
DType = choices("DType", names.FLOAT_DTYPES)
Which = choices("Which", names.WHICH)
HessianPlane = choices("HessianPlane", names.HESSIAN_PLANES)
TraceMethod = choices("TraceMethod", names.TRACE_METHODS)
HvpMethod = choices("HvpMethod", names.HVP_METHODS)
Connectivity = choices("Connectivity", CONNECTIVITIES)
Representation = choices("Representation", REPRESENTATIONS)
NanPolicy = choices("NanPolicy", NAN_POLICIES)
Dataset = choices("Dataset", names.DATASETS)
Policy = choices("Policy", names.POLICIES)
Preset = choices("Preset", LM_PRESETS)


# --- defaults: AnalysisConfig's, declared once ----------------------------------------------

#: The defaults of :class:`saddles.runs.config.AnalysisConfig` (its dataclass fields, read
#: without building one): `saddles landscape` and `saddles hessian` take theirs from here, so
#: that a command and a YAML analysis compute the same thing unless told otherwise.
DEFAULTS = {f.name: default_of(f) for f in fields(AnalysisConfig)}


# --- options shared by the commands that load a model ---------------------------------------
# Each is declared once; a command names it as a parameter's type, e.g. ``model: ModelOption``.

ModelOption = Annotated[
    str, typer.Option(help="hf:PATH (a local Hugging Face folder) or a factory module:function.")
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        help="Weights: a state dict (.pt/.pth/.safetensors) or a Hugging Face checkpoint folder."
    ),
]
DataOption = Annotated[
    Path,
    typer.Option(
        help="Data: .pt (tensor, tuple, dict or list of batches), .safetensors, .npy, .npz."
    ),
]
CriterionOption = Annotated[
    Criterion | None,
    typer.Option(
        help="cross_entropy (the default) or mse on (inputs, targets); causal_lm: next-token "
        "cross-entropy on input_ids."
    ),
]
InputsKeyOption = Annotated[
    str | None, typer.Option(help="A dict batch's inputs (default inputs).")
]
TargetsKeyOption = Annotated[
    str | None, typer.Option(help="A dict batch's targets (default targets).")
]
LossOption = Annotated[
    str | None,
    typer.Option(help="Instead of --criterion: a loss(model, batch) function as module:function."),
]
BatchSizeOption = Annotated[
    int | None,
    typer.Option(min=1, help="Split the data into batches of this size (same loss, less memory)."),
]
ParamsIncludeOption = Annotated[list[str] | None, typer.Option(help=PARAMS_HELP["include"])]
ParamsExcludeOption = Annotated[list[str] | None, typer.Option(help=PARAMS_HELP["exclude"])]
ParamsExclude1dOption = Annotated[
    bool, typer.Option("--params-exclude-1d", help=PARAMS_HELP["exclude_1d"])
]
ParamsTypeOption = Annotated[list[str] | None, typer.Option(help=PARAMS_HELP["type"])]
DeviceOption = Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")]
ThreadsOption = Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")]
OutOption = Annotated[
    Path, typer.Option(help="Output folder (made if missing); the command says what it holds.")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar or messages on stderr.")
]
