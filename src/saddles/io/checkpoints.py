"""One safe way to read and write model weights: safetensors, or ``torch.load`` with
``weights_only=True``; never an unpickler that runs arbitrary code.

- :func:`read_tensors` is the one safe reader, of checkpoints and tensor data files alike
  (:func:`saddles.io.data.read_data` uses it). Every problem (missing, empty, corrupt,
  objects refused) is one :class:`CheckpointError` line naming the file; torch's own
  multi-line warnings are kept out of it.
- :func:`load_state_dict` reads a state dict from ``.safetensors``, or ``.pt``/``.pth``/``.bin``,
  unwraps the usual ``{"state_dict": ...}``/``{"model_state_dict": ...}``/``{"model": ...}``
  wrappers, and checks that what it found is a mapping of names to tensors;
  :func:`folder_state_dict` reads a Hugging Face folder's weight file(s).
- :func:`load_into` loads a file or a folder into a model, exactly (missing or unexpected
  entries are named), each tensor moved to the entry's device and dtype, after
  :func:`match_names` has turned stored names into the model's (transformers' renamings of
  saved keys, a wrapper's prefix, tied weights).
- :func:`save_state_dict` writes a safetensors file atomically (temporary file + rename), so
  an interrupted run never leaves a half-written checkpoint.

Used by the experiments, the training-dynamics analysis and the CLI alike. Imports torch;
transformers only when it is given a transformers model. Must not import the CLI or runs.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
import warnings
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch

SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
#: The weight files of a Hugging Face folder, in the order they are looked for.
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
              "pytorch_model.bin.index.json")  # fmt: skip
WRAPPERS = ("state_dict", "model_state_dict", "model")
_STATE_DICT = "a plain state dict (names to tensors)"
_SAVE_STATE_DICT = "save model.state_dict(), or use .safetensors"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # how torch names the object it refused


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, empty, corrupt, or not a state dict."""


def read_tensors(path: str | os.PathLike, *, what: str = "checkpoint",
                 suffixes: tuple[str, ...] = SUFFIXES, holds: str = _STATE_DICT,
                 save: str = _SAVE_STATE_DICT) -> Any:  # fmt: skip
    """What the file ``path`` holds, read safely: a ``.safetensors`` file as a dict of
    tensors, any other suffix of ``suffixes`` through ``torch.load(weights_only=True)``
    (tensors and plain containers only; nothing else is unpickled). The one reader of model
    weights and tensor data files alike; every problem is one :class:`CheckpointError` line
    naming the file (``what``: how to call it; ``holds`` and ``save``: what may be in it and
    how to save that, for a refused object)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.suffix not in suffixes:
        raise CheckpointError(f"unsupported {what} {path.name!r}: use {', '.join(suffixes)}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is empty (0 bytes)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{what} {path} is not a readable safetensors file: {_first_line(exc)}"
            ) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's multi-line pickle/weights_only notes
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if not found:  # not a pickle of tensors at all
            raise CheckpointError(
                f"{what} {path} cannot be read by torch.load (not a file of torch.save)"
            ) from exc
        raise CheckpointError(
            f"{what} {path} holds a pickled {found.group(1)}, refused: only {holds} is read, "
            f"since unpickling other objects could run code; {save}"
        ) from exc
    except (RuntimeError, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(
            f"{what} {path} cannot be read by torch.load: {_first_line(exc)}"
        ) from exc


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in the file ``path`` (see the module docstring), on the CPU."""
    path = Path(path)
    state = read_tensors(path)
    for key in WRAPPERS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not state:
        kind = type(state).__name__ if not isinstance(state, Mapping) else "an empty mapping"
        raise CheckpointError(f"checkpoint {path} does not hold a state dict; it holds {kind}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} is not a state dict: {bad[0]!r} is a "
            f"{type(state[bad[0]]).__name__}, not a tensor"
        )
    return dict(state)


def folder_state_dict(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a Hugging Face checkpoint folder: its first weight file of
    :data:`HF_WEIGHTS` (every shard of an index), names as stored."""
    folder = Path(folder)
    for name in HF_WEIGHTS:
        if not (folder / name).is_file():
            continue
        files = [folder / name]
        if name.endswith(".index.json"):
            try:
                shards = json.loads(files[0].read_text())["weight_map"].values()
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
                raise CheckpointError(f"{files[0]} is not a shard index") from exc
            files = [folder / f for f in dict.fromkeys(shards)]
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(load_state_dict(f))
        return state
    raise CheckpointError(f"checkpoint folder {folder} holds none of {', '.join(HF_WEIGHTS)}")


def load_into(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load the checkpoint ``path`` into ``model`` in place, exactly; returns ``model``.

    ``path`` is a state-dict file (:data:`SUFFIXES`) or a Hugging Face folder
    (:data:`HF_WEIGHTS`). Stored names are matched to the model's (:func:`match_names`: the
    architecture's own renamings of saved keys, a wrapper's prefix, tied weights the file
    leaves out), then copied by :func:`copy_state`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = folder_state_dict(path) if path.is_dir() else load_state_dict(path)
    own = model.state_dict()
    state = match_names(model, state)
    return copy_state(model, state, path, tied=tied_entries(own, state))


def match_names(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> dict:
    """``state`` with its names turned into ``model``'s where they differ only by how they were
    saved: the Hugging Face architecture's renamings of saved keys (transformers saves
    GPT-NeoX's ``lm_head`` as ``embed_out``), else one prefix of the model's added (a
    wrapper such as ``gpt_neox.``) when that makes every name the model's. Names the model
    has are kept as they are; anything else is left for :func:`copy_state` to name."""
    own = model.state_dict()
    rename = _hf_renaming(model)
    state = {(k if k in own or rename is None else rename(k)): v for k, v in state.items()}
    if set(state) <= set(own):
        return state
    for prefix in sorted({k.split(".")[0] + "." for k in own if "." in k}):
        mapped = {prefix + k: v for k, v in state.items()}
        if set(mapped) <= set(own):
            return mapped
    return state


def tied_entries(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> set[str]:
    """The model's entries ``state`` lacks that share storage with one it has (tied weights,
    e.g. a language model's output layer and its embedding): restored through the tie."""
    ptr = {k: v.data_ptr() for k, v in own.items() if v.numel()}
    present = {ptr.get(k) for k in state}
    return {k for k in set(own) - set(state) if k in ptr and ptr[k] in present}


def _hf_renaming(model: torch.nn.Module) -> Callable[[str], str] | None:
    """How a transformers model renames the keys of its saved files on loading, or None."""
    if "transformers" not in sys.modules:  # a model of transformers has imported it
        return None
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        return None
    try:  # transformers 5: the architecture's registered renamings
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming, rename_source_key
    except ImportError:  # transformers 4: regex -> replacement on the class
        mapping = dict(getattr(model, "_checkpoint_conversion_mapping", None) or {})

        def rename(key: str) -> str:
            for pattern, replacement in mapping.items():
                key, n = re.subn(pattern, replacement, key)
                if n:
                    break
            return key

        return rename
    renamings = [t for t in get_model_conversion_mapping(model) if isinstance(t, WeightRenaming)]
    return lambda key: rename_source_key(key, renamings, [])[0]


def copy_state(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str | os.PathLike,
    tied: Collection[str] = (),
) -> torch.nn.Module:
    """Copy ``state`` into ``model`` in place, exactly: every entry of the model present
    (except the ``tied`` ones, restored through the tensor they share), none unexpected, every
    shape equal, each tensor moved to its entry's device and dtype. Errors name ``source``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - set(tied))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {source} does not match the model: missing {_names(missing)}, "
            f"unexpected {_names(unexpected)}"
        )
    shapes = [k for k in state if tuple(own[k].shape) != tuple(state[k].shape)]
    if shapes:
        k = shapes[0]
        raise CheckpointError(
            f"checkpoint {source} does not match the model: {k!r} has shape "
            f"{tuple(state[k].shape)} in the file and {tuple(own[k].shape)} in the model"
            + (f" ({len(shapes) - 1} more)" if len(shapes) > 1 else "")
        )
    moved = {k: v.to(device=own[k].device, dtype=own[k].dtype) for k, v in state.items()}
    model.load_state_dict(moved, strict=not tied)
    return model


def save_state_dict(
    path: str | os.PathLike,
    tensors: Mapping[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``tensors`` as a safetensors file, atomically; ``metadata`` (strings only, a
    safetensors rule) goes into the header. Tensors sharing storage are stored as copies."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: set[int] = set()
    plain = {}
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        ptr = v.untyped_storage().data_ptr()
        plain[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(plain, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def _names(keys: list[str], shown: int = 4) -> str:
    if not keys:
        return "nothing"
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(repr(k) for k in keys[:shown]) + more


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
