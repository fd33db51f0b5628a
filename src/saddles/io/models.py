"""Models as users have them: a local Hugging Face folder (``hf:PATH``) or a factory
(``module:function``, ``file.py:function``), loaded by :func:`load_model`. Prefixed sources
are looked up in :mod:`saddles.io.sources` (adding one is one registration there).

The CLI's ``--model`` and the YAML ``model:`` key both come here. Nothing is ever
downloaded: a Hugging Face folder is read with ``local_files_only=True`` and safetensors
weights only (``use_safetensors=True``: pickled ``.bin`` weights could run code and are
refused). Every problem is one :class:`ModelLoadError` line naming the folder or the spec.
``transformers`` is imported only when an ``hf:`` model is loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import torch

from saddles.io.sources import source_of

HF_PREFIX = "hf:"


class ModelLoadError(ValueError):
    """A model spec that cannot be loaded: a bad spec, a folder without a model, a mismatch."""


def load_model(
    spec: str, *, checkpoint: str | os.PathLike | None = None, dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """The ``torch.nn.Module`` named by ``spec``: ``hf:PATH`` (see :func:`load_hf_model`) or a
    factory ``module:function`` / ``path/to/file.py:function`` called with no arguments; with
    the weights of ``checkpoint`` when given (a state-dict file or a Hugging Face folder,
    :func:`saddles.io.checkpoints.load_into`)."""
    net = _build(str(spec), dtype)
    if checkpoint is not None:
        from saddles.io.checkpoints import load_into

        load_into(net, checkpoint)
    return net


def _build(spec: str, dtype: torch.dtype | None) -> torch.nn.Module:
    source, rest = source_of(spec)
    if source is not None:  # a registered prefix (saddles.io.sources), e.g. hf:PATH
        return source.load(rest, dtype=dtype)
    factory = import_object(spec)
    if not callable(factory):
        raise ModelLoadError(f"{spec} is not callable")
    try:
        net = factory()
    except Exception as exc:
        raise ModelLoadError(f"{spec}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(net, torch.nn.Module):
        raise ModelLoadError(f"{spec}() returned a {type(net).__name__}, not a torch.nn.Module")
    return net if dtype is None else net.to(dtype)


def import_object(spec: str) -> Any:
    """Import ``module:attribute`` or ``file.py:attribute``; the working directory is importable."""
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise ModelLoadError(f"expected module:function (or hf:PATH), got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ModelLoadError(f"no such file: {path}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ModelLoadError:
        raise
    except Exception as exc:  # ImportError, or whatever the module raises while it runs
        raise ModelLoadError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ModelLoadError(f"{module_name!r} has no {attr!r}") from exc


def load_hf_model(
    local_dir: str | os.PathLike, *, dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """A causal LM saved with ``save_pretrained`` in ``local_dir``, in eval mode, no KV cache.

    ``AutoModelForCausalLM.from_pretrained(local_dir, local_files_only=True,
    use_safetensors=True, attn_implementation="eager")``. Eager attention because the fused
    ``scaled_dot_product_attention`` kernels (SDPA, flash) have no double backward, which
    Hessian-vector products need, and no vmap batching rule for every backend, which the
    batched landscape engine needs; eager attention is plain matrix products and softmax.

    Refused in one line: a path that is not a folder, a folder without ``config.json`` or
    without safetensors weights, a config transformers does not know, and weights that do not
    fit the config's architecture (missing or mis-shaped entries, e.g. GPT-2 weights in a
    GPT-NeoX folder), which transformers would otherwise fill with random values.
    """
    folder = Path(local_dir).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"hf:{local_dir}: not a folder (only local models are loaded)")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"hf:{local_dir}: the folder holds no model (no config.json; save "
                             "one there with save_pretrained)")  # fmt: skip
    try:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ImportError(
            "loading Hugging Face models needs the `transformers` package "
            "(pip install transformers)"
        ) from exc
    if not any(folder.glob("*.safetensors")):
        pickled = any(folder.glob("*.bin"))
        raise ModelLoadError(
            f"hf:{local_dir}: the folder holds no safetensors weights"
            + (
                " (only pickled .bin weights, refused: re-save with safe_serialization=True)"
                if pickled
                else " (no *.safetensors file)"
            )  # fmt: skip
        )
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # its warnings about random init are our errors below
    hf_logging.disable_progress_bar()
    try:
        model, report = AutoModelForCausalLM.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True,
            attn_implementation="eager", output_loading_info=True, dtype=dtype,
        )  # fmt: skip
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise ModelLoadError(
            f"hf:{local_dir}: transformers cannot load it: {type(exc).__name__}: "
            f"{text[0][:300] if text else ''}"
        ) from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    missing = list(report.get("missing_keys") or [])
    mismatched = list(report.get("mismatched_keys") or [])
    if missing or mismatched:
        arch = type(model).__name__
        if missing:
            what = f"missing {len(missing)} entries, e.g. {sorted(missing)[0]!r}"
        else:
            what = f"{len(mismatched)} mis-shaped entries, e.g. {mismatched[0][0]!r}"
        raise ModelLoadError(
            f"hf:{local_dir}: the weights do not fit the config's architecture ({arch}): {what}; "
            "is it a checkpoint of another architecture?"
        )
    if hasattr(getattr(model, "config", None), "use_cache"):
        model.config.use_cache = False
    return model.eval()
