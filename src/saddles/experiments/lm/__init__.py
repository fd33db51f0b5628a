"""A character-level GPT on text that ships with Python: data, model, training with checkpoints.

The language-model workload of the training-dynamics study: small decoder-only transformers
at several sizes, trained with the same data order and the same schedule, checkpointed at
log-spaced steps so that the landscape of each checkpoint can be analyzed later. One idea per
module, each importing only those above it:

- :mod:`~saddles.experiments.lm.data`: the corpus (``pydoc_data.topics``, character-level,
  90/10 split) and deterministic batches (batch ``i`` a pure function of ``(seed, i)``);
- :mod:`~saddles.experiments.lm.hf`: :class:`HFCausalLMAdapter` and :func:`load_hf_causal_lm`
  for Hugging Face style causal LMs from a local folder;
- :mod:`~saddles.experiments.lm.model`: the nanoGPT-style :class:`GPT` (hand-written attention:
  vmap and Hessian-vector products work through it) and :func:`lm_loss`;
- :mod:`~saddles.experiments.lm.presets`: :data:`SIZES` (with their parameter counts) and
  :data:`PRESETS`;
- :mod:`~saddles.experiments.lm.train`: :func:`train_lm`, AdamW with warmup and cosine decay,
  log-spaced safetensors checkpoints and resumption;
- :mod:`~saddles.experiments.lm.hypotheses`: the hypotheses H1-H4 as numbers with CIs
  (:func:`hypothesis_table`) and their report section;
- :mod:`~saddles.experiments.lm.experiment`: :func:`run_lm_training` (every size) and
  :func:`run_lm_experiment` (train, analyze every checkpoint, report).

This package re-exports the public names of all of them.
"""

from __future__ import annotations

from saddles.experiments.lm.data import (
    batch_at,
    batches,
    char_corpus,
    decode,
    encode,
    fixed_eval_batch,
    train_val_split,
)
from saddles.experiments.lm.experiment import (
    default_lm_configs,
    run_lm_experiment,
    run_lm_training,
)
from saddles.experiments.lm.hf import HFCausalLMAdapter, load_hf_causal_lm
from saddles.experiments.lm.hypotheses import hypotheses_section, hypothesis_table, span_hypotheses
from saddles.experiments.lm.model import (
    GPT,
    MLP,
    Block,
    CausalSelfAttention,
    GPTConfig,
    lm_loss,
)
from saddles.experiments.lm.presets import PRESETS, SIZES, GPTSize, LMPreset, gpt_for_size
from saddles.experiments.lm.train import (
    checkpoint_name,
    learning_rate,
    list_checkpoints,
    load_lm_checkpoint,
    log_spaced_steps,
    train_lm,
)

__all__ = [
    "GPT",
    "MLP",
    "Block",
    "CausalSelfAttention",
    "GPTConfig",
    "GPTSize",
    "HFCausalLMAdapter",
    "LMPreset",
    "PRESETS",
    "SIZES",
    "batch_at",
    "batches",
    "char_corpus",
    "checkpoint_name",
    "decode",
    "default_lm_configs",
    "encode",
    "fixed_eval_batch",
    "gpt_for_size",
    "hypotheses_section",
    "hypothesis_table",
    "span_hypotheses",
    "learning_rate",
    "list_checkpoints",
    "lm_loss",
    "load_hf_causal_lm",
    "load_lm_checkpoint",
    "log_spaced_steps",
    "run_lm_experiment",
    "run_lm_training",
    "train_lm",
    "train_val_split",
]
