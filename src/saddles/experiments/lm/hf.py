"""Hugging Face style causal language models as ``loss(model, batch)`` models.

:class:`HFCausalLMAdapter` makes any causal LM whose forward takes ``input_ids`` (and returns
logits, or only a loss) usable with :func:`saddles.experiments.lm.lm_loss`;
:func:`load_hf_causal_lm` loads one from a local directory, never from the network.
``transformers`` is imported only when a model is loaded.

Owns the adapter only: imports torch and :mod:`saddles.io.data` (the next-token loss), nothing
of the other modules of this package (the model module imports this one, for
:func:`~saddles.experiments.lm.model.lm_loss`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saddles.io.data import next_token_loss


def _field(out: Any, name: str) -> Any:
    """``out.name`` or ``out[name]``, or None (a ModelOutput is both an object and a dict)."""
    value = getattr(out, name, None)
    if value is None and isinstance(out, dict):
        value = out.get(name)
    return value


class HFCausalLMAdapter(nn.Module):
    """Wrap a causal LM whose ``forward(input_ids=...)`` returns logits (a tensor, a tuple
    whose first item is the logits, or an object/dict with ``logits``), or only a loss when
    given ``labels`` (Hugging Face's convention: ``labels`` are the inputs, shifted inside).

    ``forward(idx)`` returns logits; :func:`lm_loss` calls :meth:`next_token_loss`.
    """

    def __init__(self, model: nn.Module, use_labels: bool = False):
        super().__init__()
        self.model = model
        self.use_labels = use_labels  # force the labels path even when logits are returned

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=idx)
        if isinstance(out, torch.Tensor):
            return out
        logits = _field(out, "logits")
        if logits is None and isinstance(out, (tuple, list)) and out:
            logits = out[0]
        if not isinstance(logits, torch.Tensor) or logits.ndim != 3:
            raise TypeError(
                f"the wrapped model returned {type(out).__name__} without logits "
                "(B, T, V); a loss-only model needs labels (use_labels=True)"
            )
        return logits

    def next_token_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting ``y`` from ``x`` (``y`` is ``x`` shifted by one).

        From the logits when the model returns them (:func:`saddles.io.data.next_token_loss`,
        the one next-token loss); otherwise (or with ``use_labels``) the
        model's own loss on the full sequence ``x + y[:, -1]`` with ``labels`` equal to it,
        which is the same average over the same ``T`` predictions."""
        if not self.use_labels:
            return next_token_loss(self(x), y)
        full = torch.cat([x, y[:, -1:]], dim=1)
        out = self.model(input_ids=full, labels=full)
        loss = _field(out, "loss")
        if loss is None and isinstance(out, torch.Tensor) and out.ndim == 0:
            loss = out
        if loss is None:
            raise TypeError(f"the wrapped model returned {type(out).__name__} without a loss")
        return loss


def load_hf_causal_lm(
    local_dir: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> HFCausalLMAdapter:
    """Load a ``transformers`` causal LM saved with ``save_pretrained`` in ``local_dir`` and
    wrap it in :class:`HFCausalLMAdapter` (eval mode, no KV cache).

    The loading is :func:`saddles.io.models.load_hf_model`'s: local files only (nothing is
    downloaded), safetensors weights only, eager attention (for double backward and vmap),
    weights checked against the config's architecture. Its errors are ``FileNotFoundError``
    for a missing or empty folder and :class:`~saddles.io.models.ModelLoadError` otherwise.
    """
    from saddles.io.models import load_hf_model

    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise FileNotFoundError(f"{local_dir} is not a directory (only local models are loaded)")
    if not any(local_dir.iterdir()):
        raise FileNotFoundError(f"{local_dir} is empty: save a model there with save_pretrained")
    if not (local_dir / "config.json").is_file():
        raise FileNotFoundError(f"{local_dir} has no config.json (not a save_pretrained folder)")
    model = load_hf_model(local_dir, dtype=dtype)
    model.to(device=device)
    return HFCausalLMAdapter(model.eval()).eval()
