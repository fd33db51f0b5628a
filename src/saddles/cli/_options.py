"""The CLI's vocabulary: one choice type per library tuple of names, built from that tuple.

A name added to the library's tuple appears in the CLI (its ``--help`` and its checks) with no
change here. The tuples come from torch-free modules (:mod:`saddles.names`,
:mod:`saddles.sampling`, the topology package), so that declaring the options imports no torch:
``saddles topology`` never does. Two tuples live in torch modules that the CLI must not import
at startup; they are copied here, and a test keeps each copy equal to the library's.
"""

from __future__ import annotations

from enum import Enum

from saddles import names
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
ExecutorName = choices("ExecutorName", names.EXECUTORS)
DType = choices("DType", names.FLOAT_DTYPES)
Which = choices("Which", names.WHICH)
TraceMethod = choices("TraceMethod", names.TRACE_METHODS)
HvpMethod = choices("HvpMethod", names.HVP_METHODS)
Connectivity = choices("Connectivity", CONNECTIVITIES)
Representation = choices("Representation", REPRESENTATIONS)
NanPolicy = choices("NanPolicy", NAN_POLICIES)
Dataset = choices("Dataset", names.DATASETS)
Policy = choices("Policy", names.POLICIES)
Preset = choices("Preset", LM_PRESETS)
