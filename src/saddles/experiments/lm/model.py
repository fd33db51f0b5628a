"""A nanoGPT-style character transformer and its loss, in one file to read top to bottom.

References: Radford et al. 2019, "Language models are unsupervised multitask learners" (GPT-2);
Karpathy's nanoGPT (https://github.com/karpathy/nanoGPT, ``model.py``), which this follows.

Token and learned position embeddings, pre-LayerNorm blocks of causal self-attention and a 4x
GELU MLP, a final LayerNorm and an *untied* linear head without bias. Untied, because a tied
head makes two state-dict entries share storage, which safetensors refuses to save, and makes
every tool that swaps parameters in by name (``functional_call``, direction vectors) handle the
alias. :func:`lm_loss` is mean next-token cross-entropy in the ``loss(model, batch)`` protocol
of :mod:`saddles.io.data`, with a batch ``(x, y)`` of int64 tensors ``(B, T)``.

Attention is written out by hand: ``q @ k^T / sqrt(d)``, ``masked_fill`` under a registered
(non-persistent) causal-mask buffer, ``softmax``, ``@ v``; it does *not* call
``torch.nn.functional.scaled_dot_product_attention``. There are no in-place operations on
parameters and no data-dependent Python control flow, so :func:`lm_loss` runs under
``torch.vmap`` over stacked parameter sets (``torch.func.functional_call``: the landscape
sampler's batched engine), with a batching rule for every operation, and under double backward
and forward-over-reverse differentiation (Hessian-vector products); the tests check all three.
Fused ``scaled_dot_product_attention(is_causal=True)`` was tried and rejected: on CPU (torch
2.13) its flash kernel has no vmap batching rule (vmap falls back to a slow per-sample loop)
and no double-backward or forward-mode derivative, so Hessian-vector products through it fail.

Owns the network and the loss: imports torch and :mod:`saddles.experiments.lm.hf` (the adapter
that :func:`lm_loss` recognizes), nothing of data, training, presets or the experiment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from saddles.experiments.lm.hf import HFCausalLMAdapter
from saddles.io.data import Batch, next_token_loss, next_token_loss_and_variance, with_variance


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a :class:`GPT`."""

    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    dropout: float = 0.0


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` sees positions ``<= t`` only."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        mask = torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool).tril()
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
        att = att.masked_fill(~self.causal_mask[:T, :T], float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A nanoGPT-style decoder; ``forward(idx)`` maps int64 ``(B, T)`` ids, ``T <= block_size``,
    to logits ``(B, T, vocab_size)``.

    Initialization follows GPT-2/nanoGPT: normal(0, 0.02) weights and embeddings, zero biases,
    and the residual projections scaled by ``1 / sqrt(2 n_layer)``; the head is untied.
    """

    def __init__(
        self,
        vocab_size: int,
        n_layer: int,
        n_head: int,
        n_embd: int,
        block_size: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        if min(vocab_size, n_layer, n_head, n_embd, block_size) < 1 or n_embd % n_head:
            raise ValueError(
                f"need positive sizes and n_embd divisible by n_head, got vocab_size="
                f"{vocab_size}, n_layer={n_layer}, n_head={n_head}, n_embd={n_embd}, "
                f"block_size={block_size}"
            )
        self.config = cfg = GPTConfig(vocab_size, n_layer, n_head, n_embd, block_size, dropout)
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[-1]
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        x = self.drop(self.tok_emb(idx) + self.pos_emb.weight[:T])
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def lm_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean next-token cross-entropy of ``model`` on ``batch = (x, y)`` (the loss protocol):
    :func:`saddles.io.data.next_token_loss` of ``model(x)`` against ``y``.

    ``model(x)`` must return logits ``(B, T, V)``; an :class:`HFCausalLMAdapter` is asked for
    its own next-token loss, which also covers models that return only a loss.
    """
    if len(batch) != 2:
        raise ValueError(f"a language-model batch is (x, y), got {len(batch)} tensor(s)")
    x, y = batch
    if isinstance(model, HFCausalLMAdapter):
        return model.next_token_loss(x, y)
    return next_token_loss(model(x), y)


def _lm_stats(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lm_loss` and its squared standard error over the batch's sequences
    (:func:`saddles.io.data.next_token_loss_and_variance`); NaN for a model that returns only
    a loss."""
    if len(batch) != 2:
        raise ValueError(f"a language-model batch is (x, y), got {len(batch)} tensor(s)")
    x, y = batch
    if isinstance(model, HFCausalLMAdapter) and model.use_labels:
        value = model.next_token_loss(x, y)
        return value, torch.full((), float("nan"), dtype=value.dtype, device=value.device)
    return next_token_loss_and_variance(model(x), y)


with_variance(lm_loss, _lm_stats)
