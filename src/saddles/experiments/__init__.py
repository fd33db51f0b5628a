"""Models, data, training and error metrics for the paper's two experiments.

- :mod:`saddles.experiments.pinn`: physics-informed networks for 1D convection
  (Krishnapriyan et al. 2021), trained with L-BFGS as in their reference code.
- :mod:`saddles.experiments.resnet`: ResNet-20 for CIFAR (He et al. 2016) with and without skip
  connections (Li et al. 2018), CIFAR-10 and an offline digits substitute.

Both save and load weights as safetensors (never pickle) through :mod:`saddles.io.checkpoints`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from saddles.files import atomic_write_text, to_jsonable


def save_checkpoint(
    model: torch.nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``model.state_dict()`` (parameters and buffers) to a safetensors file, atomically.

    ``metadata`` (strings only, a safetensors rule) is stored in the file's header.
    """
    from saddles.io.checkpoints import save_state_dict

    return save_state_dict(path, model.state_dict(), metadata)


def load_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load a file written by :func:`save_checkpoint` into ``model`` (in place), exactly:
    missing or unexpected entries are an error; tensors move to each entry's device/dtype."""
    from saddles.io.checkpoints import load_into

    return load_into(model, path)


def trained_model(
    model_dir: str | os.PathLike,
    settings: dict,
    make_model,
    train,
) -> tuple[torch.nn.Module, dict, bool]:
    """Train once per run directory: load ``model.safetensors`` when it exists with the same
    ``settings``, else call ``train() -> (model, info)`` and save both.

    Returns ``(model, info, loaded)``. A directory trained with different settings is refused
    with a message naming them, so a finished model is never silently replaced.
    """
    import json

    model_dir = Path(model_dir)
    ckpt, meta = model_dir / "model.safetensors", model_dir / "training.json"
    if ckpt.exists() and meta.exists():
        record = json.loads(meta.read_text())
        if record.get("settings") != json.loads(json.dumps(settings)):
            raise ValueError(
                f"{model_dir} holds a model trained with {record.get('settings')}, not "
                f"{settings}; use another output directory or delete that one"
            )
        return load_checkpoint(make_model(), ckpt), record["info"], True
    model, info = train()
    save_checkpoint(model, ckpt)
    atomic_write_text(meta, json.dumps(to_jsonable({"settings": settings, "info": info}), indent=2))
    return model, info, False
