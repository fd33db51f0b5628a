"""A tiny GPT for the language-model tests (2 layers, width 16, vocabulary 103)."""

from __future__ import annotations

import torch

from saddles.experiments.lm import GPT


def tiny_gpt(seed: int = 0, block_size: int = 16) -> GPT:
    torch.manual_seed(seed)
    return GPT(vocab_size=103, n_layer=2, n_head=2, n_embd=16, block_size=block_size)
