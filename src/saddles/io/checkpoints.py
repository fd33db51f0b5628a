"""One safe way to read and write model weights: safetensors, or ``torch.load`` with
``weights_only=True``; never an unpickler that runs arbitrary code.

- :func:`load_state_dict` reads ``.safetensors``, or ``.pt``/``.pth``/``.bin`` through
  ``torch.load(weights_only=True)`` (tensors and plain containers only), unwraps the usual
  ``{"state_dict": ...}``/``{"model_state_dict": ...}``/``{"model": ...}`` wrappers, and
  checks that what it found is a mapping of names to tensors. Every problem (missing, empty,
  corrupt, not a state dict, objects refused) is one :class:`CheckpointError` line naming
  the file; torch's own multi-line warnings are kept out of it.
- :func:`load_into` loads such a file into a model, exactly (missing or unexpected entries are
  named), each tensor moved to the entry's device and dtype.
- :func:`save_state_dict` writes a safetensors file atomically (temporary file + rename), so
  an interrupted run never leaves a half-written checkpoint.

Used by the experiments, the training-dynamics analysis and the CLI alike.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path

import torch

SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
WRAPPERS = ("state_dict", "model_state_dict", "model")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # how torch names the object it refused


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, empty, corrupt, or not a state dict."""


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (see the module docstring), on the CPU."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} is not a readable safetensors file: {_first_line(exc)}"
            ) from exc
    elif path.suffix in SUFFIXES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's multi-line pickle/weights_only notes
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = _GLOBAL.search(str(exc))
            if not found:  # not a pickle of tensors at all
                raise CheckpointError(
                    f"checkpoint {path} cannot be read by torch.load (not a saved state dict)"
                ) from exc
            raise CheckpointError(
                f"checkpoint {path} holds a pickled {found.group(1)}, refused: only a plain "
                "state dict (names to tensors) is read, since unpickling other objects could "
                "run code; save model.state_dict(), or use .safetensors"
            ) from exc
        except (RuntimeError, OSError, ValueError, EOFError) as exc:
            raise CheckpointError(
                f"checkpoint {path} cannot be read by torch.load: {_first_line(exc)}"
            ) from exc
    else:
        raise CheckpointError(f"unsupported checkpoint {path.name!r}: use {', '.join(SUFFIXES)}")
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


def load_into(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load the state dict in ``path`` into ``model`` in place, exactly; returns ``model``."""
    return copy_state(model, load_state_dict(path), path)


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
