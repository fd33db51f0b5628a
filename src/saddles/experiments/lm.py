"""A character-level GPT on text that ships with Python: data, model, training with checkpoints.

The language-model workload of the training-dynamics study: small decoder-only transformers
at several sizes, trained with the same data order and the same schedule, checkpointed at
log-spaced steps so that the landscape of each checkpoint can be analyzed later.

- data: ``pydoc_data.topics`` (the text of Python's ``help()`` topics, 464,970 characters, 103
  distinct), character-level, the first 90% for training and the last 10% for validation;
  training batch ``i`` is a pure function of ``(seed, i)``, so every model size sees the same
  batches in the same order, and a resumed run sees what an uninterrupted one would;
- model: a nanoGPT-style decoder (Radford et al. 2019, "Language models are unsupervised
  multitask learners"; Karpathy's nanoGPT): token and learned position embeddings, pre-LayerNorm
  blocks of causal self-attention and a 4x GELU MLP, a final LayerNorm and an *untied* linear
  head without bias. Untied, because a tied head makes two state-dict entries share storage,
  which safetensors refuses to save, and makes every tool that swaps parameters in by name
  (``functional_call``, direction vectors) handle the alias;
- loss: :func:`lm_loss`, mean next-token cross-entropy in the ``loss(model, batch)`` protocol
  of :mod:`saddles.data`, with a batch ``(x, y)`` of int64 tensors ``(B, T)`` and ``y`` the
  text shifted by one;
- training: AdamW (Loshchilov & Hutter 2019, "Decoupled weight decay regularization"; decay on
  matrices and embeddings only, betas (0.9, 0.95), gradients clipped at norm 1) with linear
  warmup and cosine decay to a tenth of the peak rate; checkpoints ``step_000123.safetensors``
  with a JSON sidecar ``step_000123.json`` (step, tokens seen, train and val loss on fixed
  batches), ``run.json`` with the model configuration and the training settings, and the latest
  optimizer state under ``resume/`` so that an interrupted run continues from its latest
  checkpoint (safetensors for tensors, JSON for scalars; never pickle);
- Hugging Face style models: :class:`HFCausalLMAdapter` makes any causal LM whose forward takes
  ``input_ids`` (and returns logits, or only a loss) usable with :func:`lm_loss`;
  :func:`load_hf_causal_lm` loads one from a local directory, never from the network.

The model is written for ``torch.func``: attention is explicit matmuls and a softmax under a
registered (non-persistent) causal-mask buffer, with no in-place operations on parameters and
no data-dependent Python control flow, so :func:`lm_loss` runs under ``torch.vmap`` over
stacked parameter sets (the landscape sampler's batched engine) and under double backward
(Hessian-vector products). ``scaled_dot_product_attention(is_causal=True)`` was tried and
rejected: on CPU (torch 2.13) it has no vmap batching rule (a slow per-sample fallback) and no
double-backward or forward-mode derivative, so Hessian-vector products through it fail.

Parameter counts of :data:`SIZES` (vocabulary 103; the position table is the only part that
depends on ``block_size``):

======== ======= ====== ======= ============ =============
name     layers  width  heads   block 64     block 128
======== ======= ====== ======= ============ =============
L1-d32   1       32     2       21,408       23,456
L2-d64   2       64     4       117,376      121,472
L3-d96   3       96     6       361,632      367,776
L4-d128  4       128    8       827,904      836,096
======== ======= ====== ======= ============ =============
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from saddles._files import atomic_write_text
from saddles.data import Batch
from saddles.experiments import load_checkpoint, save_checkpoint

__all__ = [
    "GPT",
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
    "encode",
    "fixed_eval_batch",
    "gpt_for_size",
    "learning_rate",
    "list_checkpoints",
    "lm_loss",
    "load_hf_causal_lm",
    "load_lm_checkpoint",
    "log_spaced_steps",
    "run_lm_training",
    "train_lm",
    "train_val_split",
]

# --- data ----------------------------------------------------------------------------------


def char_corpus() -> tuple[str, str]:
    """``(text, vocab)``: the values of ``pydoc_data.topics.topics`` joined in sorted-key order,
    and the sorted string of its distinct characters (464,970 and 103 with CPython 3.11).

    The text depends on the Python version that ships it; :func:`run_lm_training` records its
    length and vocabulary in ``run.json``.
    """
    from pydoc_data.topics import topics

    text = "".join(topics[key] for key in sorted(topics))
    return text, "".join(sorted(set(text)))


def encode(text: str, vocab: str) -> torch.Tensor:
    """Characters to int64 ids (positions in ``vocab``); an unknown character is an error."""
    index = {ch: i for i, ch in enumerate(vocab)}
    try:
        return torch.tensor([index[ch] for ch in text], dtype=torch.int64)
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary") from None


def decode(ids: torch.Tensor | Sequence[int], vocab: str) -> str:
    """Ids back to text."""
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
    return "".join(vocab[i] for i in ids)


def train_val_split(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, ...]:
    """``(train, val)``: the first ``1 - val_fraction`` of the ids and the rest (no shuffling)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_train = int(round(len(ids) * (1.0 - val_fraction)))
    return ids[:n_train], ids[n_train:]


def _windows(ids: torch.Tensor, starts: np.ndarray, block_size: int) -> Batch:
    offsets = torch.as_tensor(starts, dtype=torch.int64)[:, None] + torch.arange(block_size + 1)
    chunk = ids[offsets]
    return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()


def _check_lengths(ids: torch.Tensor, batch_size: int, block_size: int) -> None:
    if batch_size < 1 or block_size < 1:
        raise ValueError(
            f"batch_size and block_size must be positive, got {batch_size}, {block_size}"
        )
    if len(ids) < block_size + 1:
        raise ValueError(f"{len(ids)} tokens cannot fill one window of block_size {block_size}")


def batch_at(ids: torch.Tensor, step: int, batch_size: int, block_size: int, seed: int) -> Batch:
    """Training batch number ``step``: ``(x, y)``, int64 ``(batch_size, block_size)``, with
    ``y`` the next character of each position of ``x``.

    The window starts are drawn uniformly by numpy's PCG64 seeded with ``(seed, step)``: a pure
    function of its arguments, independent of the model and of any global random state.
    """
    _check_lengths(ids, batch_size, block_size)
    rng = np.random.default_rng([seed, step])
    return _windows(ids, rng.integers(0, len(ids) - block_size, size=batch_size), block_size)


def batches(
    ids: torch.Tensor, batch_size: int, block_size: int, seed: int, start: int = 0
) -> Iterator[Batch]:
    """The endless, deterministic stream of training batches ``batch_at(..., step)`` for
    ``step = start, start + 1, ...``: the same order for every model trained with ``seed``."""
    step = start
    while True:
        yield batch_at(ids, step, batch_size, block_size, seed)
        step += 1


def fixed_eval_batch(ids: torch.Tensor, batch_size: int, block_size: int, seed: int = 0) -> Batch:
    """A fixed batch for evaluation and landscapes: ``batch_size`` windows whose starts are
    drawn without replacement by PCG64 seeded with ``(seed, "eval")``, then sorted."""
    _check_lengths(ids, batch_size, block_size)
    n_starts = len(ids) - block_size
    if batch_size > n_starts:
        raise ValueError(
            f"{len(ids)} tokens hold only {n_starts} distinct windows of "
            f"block_size {block_size}, fewer than batch_size {batch_size}"
        )
    rng = np.random.default_rng([seed, 0x6576616C])  # "eval": a stream apart from batch_at's
    return _windows(ids, np.sort(rng.choice(n_starts, size=batch_size, replace=False)), block_size)


# --- model ---------------------------------------------------------------------------------


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
    """Mean next-token cross-entropy of ``model`` on ``batch = (x, y)`` (the loss protocol).

    ``model(x)`` must return logits ``(B, T, V)``; an :class:`HFCausalLMAdapter` is asked for
    its own next-token loss, which also covers models that return only a loss.
    """
    if len(batch) != 2:
        raise ValueError(f"a language-model batch is (x, y), got {len(batch)} tensor(s)")
    x, y = batch
    if isinstance(model, HFCausalLMAdapter):
        return model.next_token_loss(x, y)
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@dataclass(frozen=True)
class GPTSize:
    """Depth, width and heads of one model size (head dimension 16 throughout)."""

    n_layer: int
    n_embd: int
    n_head: int


#: The model sizes, smallest first: width and depth grow together (``n_embd = 32 n_layer``).
SIZES: dict[str, GPTSize] = {
    "L1-d32": GPTSize(1, 32, 2),
    "L2-d64": GPTSize(2, 64, 4),
    "L3-d96": GPTSize(3, 96, 6),
    "L4-d128": GPTSize(4, 128, 8),
}


def _size_name(name_or_index: str | int) -> str:
    names = list(SIZES)
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
        if not -len(names) <= name_or_index < len(names):
            raise IndexError(f"size index {name_or_index} out of range; {len(names)} sizes")
        return names[name_or_index]
    if name_or_index not in SIZES:
        raise KeyError(f"unknown size {name_or_index!r}; choose one of {names}")
    return str(name_or_index)


def gpt_for_size(name_or_index: str | int, vocab_size: int, block_size: int, seed: int = 0) -> GPT:
    """The :class:`GPT` of size ``SIZES[name]`` (or the ``index``-th size), initialized after
    ``torch.manual_seed(seed)``."""
    size = SIZES[_size_name(name_or_index)]
    torch.manual_seed(seed)
    return GPT(vocab_size, size.n_layer, size.n_head, size.n_embd, block_size)


# --- training ------------------------------------------------------------------------------


def log_spaced_steps(total: int, n: int = 12) -> list[int]:
    """``min(n, total + 1)`` distinct steps from 0 to ``total``, roughly evenly spaced in
    log(step): 0 (the initialization), then ``geomspace(1, total, n - 1)`` rounded, each moved
    up to one past its predecessor where rounding would repeat it; ``total`` is last."""
    if total < 0 or n < 2:
        raise ValueError(f"need total >= 0 and n >= 2, got total={total}, n={n}")
    if total + 1 <= n:
        return list(range(total + 1))
    targets = np.round(np.geomspace(1, total, n - 1)).astype(int)
    steps = [0]
    for i, target in enumerate(targets):
        room = total - (len(targets) - 1 - i)  # leave one step for each point still to come
        steps.append(int(min(max(target, steps[-1] + 1), room)))
    return steps


def learning_rate(step: int, lr: float, warmup: int, steps: int, min_lr_ratio: float) -> float:
    """The rate for update ``step`` (0-based): linear warmup over ``warmup`` updates to ``lr``,
    then cosine decay to ``min_lr_ratio * lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def checkpoint_name(step: int) -> str:
    """``step_000123``: the stem of a checkpoint and of its sidecar."""
    return f"step_{step:06d}"


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata)
    os.replace(tmp, path)


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> dict[int, dict]:
    """The finished checkpoints of a directory: ``{step: sidecar record}``, ordered by step.

    A checkpoint counts when both ``step_*.safetensors`` and its ``step_*.json`` exist (the
    sidecar is written last)."""
    found = {}
    for side in sorted(Path(checkpoint_dir).glob("step_*.json")):
        if side.with_suffix(".safetensors").is_file():
            record = json.loads(side.read_text())
            found[int(record["step"])] = record
    return dict(sorted(found.items()))


def load_lm_checkpoint(checkpoint_dir: str | os.PathLike, step: int | None = None) -> GPT:
    """Rebuild the :class:`GPT` described by ``run.json`` and load checkpoint ``step`` (default:
    the latest) into it; returned in eval mode."""
    checkpoint_dir = Path(checkpoint_dir)
    run_file = checkpoint_dir / "run.json"
    if not run_file.is_file():
        raise FileNotFoundError(f"{checkpoint_dir} has no run.json (not a train_lm directory)")
    cfg = json.loads(run_file.read_text())["model"]
    done = list_checkpoints(checkpoint_dir)
    if not done:
        raise FileNotFoundError(f"{checkpoint_dir} holds no finished checkpoint")
    step = max(done) if step is None else step
    if step not in done:
        raise FileNotFoundError(
            f"no checkpoint for step {step} in {checkpoint_dir}; steps: {list(done)}"
        )
    model = GPT(**cfg)
    return load_checkpoint(model, checkpoint_dir / f"{checkpoint_name(step)}.safetensors").eval()


def _optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings, none on biases and LayerNorms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def _save_resume_state(resume_dir: Path, step: int, opt: torch.optim.Optimizer) -> None:
    """The optimizer's per-parameter tensors (safetensors) and its scalars (JSON) at ``step``,
    plus torch's CPU random state (for dropout); replaces the previous state."""
    state = opt.state_dict()
    tensors = {"torch_rng_state": torch.get_rng_state()}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            tensors[f"{index}.{key}"] = value
    resume_dir.mkdir(parents=True, exist_ok=True)
    _write_tensors(resume_dir / "optimizer.safetensors", tensors, {"step": str(step)})
    groups = [{k: v for k, v in g.items() if k != "params"} for g in state["param_groups"]]
    _write_json(resume_dir / "optimizer.json", {"step": step, "param_groups": groups})


def _load_resume_state(resume_dir: Path, step: int, opt: torch.optim.Optimizer) -> bool:
    """Restore the state saved at ``step``; False when there is none for that step."""
    from safetensors.torch import load_file

    meta_file, tensor_file = resume_dir / "optimizer.json", resume_dir / "optimizer.safetensors"
    if not (meta_file.is_file() and tensor_file.is_file()):
        return False
    meta = json.loads(meta_file.read_text())
    if meta["step"] != step:
        return False
    tensors = load_file(str(tensor_file))
    state = opt.state_dict()
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name != "torch_rng_state":
            index, key = name.split(".", 1)
            per_param.setdefault(int(index), {})[key] = value
    groups = [
        {**g, "betas": tuple(g["betas"]), "params": own["params"]}
        for g, own in zip(meta["param_groups"], state["param_groups"], strict=True)
    ]
    opt.load_state_dict({"state": per_param, "param_groups": groups})
    torch.set_rng_state(tensors["torch_rng_state"])
    return True


@torch.no_grad()
def _eval_loss(model: nn.Module, batch: Batch, device: torch.device) -> float:
    was_training = model.training
    model.eval()
    value = float(lm_loss(model, tuple(t.to(device) for t in batch)))
    model.train(was_training)
    return value


def train_lm(
    model: GPT,
    train_ids: torch.Tensor,
    val_ids: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    block_size: int,
    lr: float,
    weight_decay: float = 0.1,
    warmup: int = 0,
    seed: int = 0,
    min_lr_ratio: float = 0.1,
    grad_clip: float = 1.0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_steps: Sequence[int] | None = None,
    eval_every: int | None = None,
    eval_batch_size: int = 32,
    device: str | torch.device | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place for ``steps`` AdamW updates on batches ``batch_at(train_ids,
    i, batch_size, block_size, seed)``, ``i = 0 .. steps - 1``.

    The schedule is :func:`learning_rate` (``warmup``, cosine to ``min_lr_ratio * lr``); train
    and val loss are measured on :func:`fixed_eval_batch` of ``eval_batch_size`` windows from
    each split (the same ``seed``), at every checkpoint step, every ``eval_every`` steps and at
    the end. "Step" counts finished updates: step 0 is the initialization.

    With ``checkpoint_dir``, the weights at each of ``checkpoint_steps`` (default
    ``log_spaced_steps(steps)``; ``steps`` is always added) are written as
    ``step_000123.safetensors`` plus a ``step_000123.json`` sidecar (step, tokens_seen,
    train_loss, val_loss, lr, seconds), and ``run.json`` records the model configuration and
    these settings. Each checkpoint also replaces ``resume/`` with the optimizer state, so a
    rerun with the same settings continues from the latest checkpoint and reproduces the
    uninterrupted run exactly (on the same device); existing checkpoints are never rewritten.
    A directory trained with other settings is refused.

    ``callback(record)`` gets each evaluation record (after its checkpoint is written); the
    records' ``seconds`` count from the start of this call. The model is left in eval mode.
    Returns ``steps``, ``params``,
    ``resumed_from`` (a step or None), ``final_train_loss``, ``final_val_loss``, ``history``
    (the records of this call), ``checkpoints`` (step -> path), ``seconds`` and
    ``seconds_per_step`` (training updates only, evaluation excluded).
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    ckpt_steps = sorted(
        set(checkpoint_steps if checkpoint_steps is not None else log_spaced_steps(steps)) | {steps}
    )
    if ckpt_steps[0] < 0 or ckpt_steps[-1] > steps:
        raise ValueError(f"checkpoint steps must lie in [0, {steps}], got {ckpt_steps}")
    train_eval = fixed_eval_batch(train_ids, eval_batch_size, block_size, seed)
    val_eval = fixed_eval_batch(val_ids, eval_batch_size, block_size, seed)
    opt = _optimizer(model, lr, weight_decay)
    settings = {
        "steps": steps,
        "batch_size": batch_size,
        "block_size": block_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup": warmup,
        "seed": seed,
        "min_lr_ratio": min_lr_ratio,
        "grad_clip": grad_clip,
        "checkpoint_steps": ckpt_steps,
        "eval_batch_size": eval_batch_size,
        "train_tokens": len(train_ids),
        "val_tokens": len(val_ids),
    }

    done: dict[int, dict] = {}
    start, resumed_from = 0, None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        run = {"model": asdict(model.config), "training": settings}
        run_file = checkpoint_dir / "run.json"
        if run_file.is_file():
            previous = json.loads(run_file.read_text())
            if previous != json.loads(json.dumps(run)):
                raise ValueError(
                    f"{checkpoint_dir} holds a run with other settings "
                    f"({previous}); use another directory or delete it"
                )
        else:
            _write_json(run_file, run)
        done = list_checkpoints(checkpoint_dir)
        for step in sorted(done, reverse=True):  # the final step first: then nothing is left
            if step == steps or _load_resume_state(checkpoint_dir / "resume", step, opt):
                load_checkpoint(model, checkpoint_dir / f"{checkpoint_name(step)}.safetensors")
                start = resumed_from = step
                break

    history: list[dict[str, Any]] = []
    checkpoints = (
        {s: checkpoint_dir / f"{checkpoint_name(s)}.safetensors" for s in done}
        if checkpoint_dir is not None
        else {}
    )
    train_seconds = 0.0
    started = time.perf_counter()

    def evaluate(step: int) -> None:
        record = {
            "step": step,
            "tokens_seen": step * batch_size * block_size,
            "train_loss": _eval_loss(model, train_eval, device),
            "val_loss": _eval_loss(model, val_eval, device),
            "lr": learning_rate(max(step - 1, 0), lr, warmup, steps, min_lr_ratio),
            "seconds": round(time.perf_counter() - started, 3),
        }
        history.append(record)
        if checkpoint_dir is not None and step in ckpt_steps and step not in done:
            stem = checkpoint_dir / checkpoint_name(step)
            meta = {k: str(v) for k, v in record.items()}
            tmp = save_checkpoint(model, stem.with_name(stem.name + ".safetensors.tmp"), meta)
            os.replace(tmp, stem.with_suffix(".safetensors"))
            if step < steps:
                _save_resume_state(checkpoint_dir / "resume", step, opt)
            _write_json(stem.with_suffix(".json"), record)
            checkpoints[step] = stem.with_suffix(".safetensors")
            done[step] = record
            if step == steps:  # finished: the optimizer state is no longer needed
                shutil.rmtree(checkpoint_dir / "resume", ignore_errors=True)
        if callback is not None:
            callback(record)

    if start < steps:
        model.train()
        if start not in done:  # a resumed run's start was recorded by its checkpoint
            evaluate(start)
        stream = batches(train_ids, batch_size, block_size, seed, start=start)
        for step in range(start, steps):
            x, y = (t.to(device) for t in next(stream))
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, lr, warmup, steps, min_lr_ratio)
            t0 = time.perf_counter()
            loss = lm_loss(model, (x, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            train_seconds += time.perf_counter() - t0
            finished = step + 1
            if finished in ckpt_steps or (eval_every and finished % eval_every == 0):
                evaluate(finished)
        if not history or history[-1]["step"] != steps:
            evaluate(steps)
    model.eval()
    final = history[-1] if history else done[steps]
    trained = steps - start
    return {
        "steps": steps,
        "params": sum(p.numel() for p in model.parameters()),
        "resumed_from": resumed_from,
        "final_train_loss": final["train_loss"],
        "final_val_loss": final["val_loss"],
        "history": history,
        "checkpoints": dict(sorted(checkpoints.items())),
        "seconds": time.perf_counter() - started,
        "seconds_per_step": train_seconds / trained if trained else float("nan"),
    }


# --- the experiment's training runs --------------------------------------------------------


@dataclass(frozen=True)
class LMPreset:
    """Sizes and training settings of a family of runs (same data order and schedule)."""

    sizes: tuple[str, ...]
    steps: int
    batch_size: int
    block_size: int
    lr: float
    weight_decay: float
    warmup: int
    n_checkpoints: int
    eval_batch_size: int
    device: str  # "cpu", "cuda" or "auto" (cuda when available)


PRESETS: dict[str, LMPreset] = {
    # CPU-sized: about 70 s of training on one CPU thread (see run_lm_training).
    "small": LMPreset(
        sizes=("L1-d32", "L2-d64", "L3-d96"),
        steps=1000,
        batch_size=16,
        block_size=64,
        lr=4e-3,
        weight_decay=0.1,
        warmup=50,
        n_checkpoints=12,
        eval_batch_size=32,
        device="cpu",
    ),
    # GPU-sized: all four sizes, 128-character contexts, 12.3M training tokens per size (about
    # 29 passes over the training text); L4-d128 takes about 0.5 s per step on one CPU thread.
    "full": LMPreset(
        sizes=tuple(SIZES),
        steps=3000,
        batch_size=32,
        block_size=128,
        lr=3e-3,
        weight_decay=0.1,
        warmup=100,
        n_checkpoints=15,
        eval_batch_size=64,
        device="auto",
    ),
}


def run_lm_training(
    out_dir: str | os.PathLike,
    preset: str = "small",
    sizes: Sequence[str | int] | None = None,
    steps: int | None = None,
    seed: int = 0,
    *,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Train every size of ``PRESETS[preset]`` (or ``sizes``) into ``out_dir/<size>/checkpoints``
    with the same data, data order, schedule and seed; returns ``{size: checkpoint directory}``.

    Resumable: finished runs are skipped and interrupted ones continue (see :func:`train_lm`).
    ``steps`` overrides the preset's; ``device`` its device (``"auto"``: cuda when available).
    The small preset (1,000 steps at 16 x 64 tokens) measured on a shared CPU, one thread:
    0.005, 0.015 and 0.044 s per step for its three sizes, 67 s of wall time in all including
    evaluations, final val loss 1.79, 1.55 and 1.43 (nats per character).
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    p = PRESETS[preset]
    names = [_size_name(s) for s in (sizes if sizes is not None else p.sizes)]
    steps = p.steps if steps is None else steps
    device = device or p.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    text, vocab = char_corpus()
    train_ids, val_ids = train_val_split(encode(text, vocab))
    out_dir = Path(out_dir)
    dirs = {}
    for name in names:
        ckpt_dir = out_dir / name / "checkpoints"
        model = gpt_for_size(name, len(vocab), p.block_size, seed)

        def report(record: dict, name: str = name) -> None:
            if progress:
                print(
                    f"{name} step {record['step']:>6}: train {record['train_loss']:.3f}, "
                    f"val {record['val_loss']:.3f} ({record['seconds']:.0f} s)",
                    flush=True,
                )

        info = train_lm(
            model,
            train_ids,
            val_ids,
            steps=steps,
            batch_size=p.batch_size,
            block_size=p.block_size,
            lr=p.lr,
            weight_decay=p.weight_decay,
            warmup=min(p.warmup, steps),
            seed=seed,
            checkpoint_dir=ckpt_dir,
            checkpoint_steps=log_spaced_steps(steps, p.n_checkpoints),
            eval_batch_size=p.eval_batch_size,
            device=device,
            callback=report,
        )
        if progress:
            speed = (
                "already trained"
                if info["resumed_from"] == steps
                else f"{info['seconds_per_step']:.3f} s/step"
            )
            print(
                f"{name}: {info['params']:,} parameters, final val loss "
                f"{info['final_val_loss']:.3f} ({speed})"
            )
        dirs[name] = ckpt_dir
    return dirs


# --- Hugging Face style causal language models ---------------------------------------------


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

        From the logits when the model returns them; otherwise (or with ``use_labels``) the
        model's own loss on the full sequence ``x + y[:, -1]`` with ``labels`` equal to it,
        which is the same average over the same ``T`` predictions."""
        if not self.use_labels:
            logits = self(x)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
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

    Local files only (``local_files_only=True``: nothing is downloaded) and safetensors weights
    only (``use_safetensors=True``: pickled ``.bin`` weights are refused).
    """
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise FileNotFoundError(f"{local_dir} is not a directory (only local models are loaded)")
    if not any(local_dir.iterdir()):
        raise FileNotFoundError(f"{local_dir} is empty: save a model there with save_pretrained")
    if not (local_dir / "config.json").is_file():
        raise FileNotFoundError(f"{local_dir} has no config.json (not a save_pretrained folder)")
    try:
        from transformers import AutoModelForCausalLM
    except ImportError as exc:
        raise ImportError(
            "loading Hugging Face models needs the `transformers` package "
            "(pip install transformers)"
        ) from exc
    model = AutoModelForCausalLM.from_pretrained(
        str(local_dir), local_files_only=True, use_safetensors=True
    )
    if getattr(model, "config", None) is not None and hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    model.to(device=device, dtype=dtype)
    return HFCausalLMAdapter(model.eval()).eval()


# --- the experiment: topology over training, across sizes ------------------------------------


def default_lm_configs(seed: int = 0) -> dict[str, Any]:
    """A 2D grid (image representations, Hessian metrics) and a 4D Sobol sample with a kNN
    graph, per checkpoint: sized for a CPU."""
    from saddles.pipeline import AnalysisConfig

    return {
        "2d": AnalysisConfig(resolution=21, representations=["grid-full", "grid-ttk"],
                             hessian_top_k=2, trace_matvecs=30, density_lanczos=30, seed=seed),
        "4d": AnalysisConfig(sampling="sobol", n_points=512, n_directions=4,
                             representations=["knn"], hessian=False, seed=seed),
    }  # fmt: skip


def run_lm_experiment(
    out_dir: str | os.PathLike,
    preset: str = "small",
    *,
    sizes: Sequence[str | int] | None = None,
    steps: int | None = None,
    seed: int = 0,
    configs: dict[str, Any] | None = None,
    policy: str = "fixed",
    eval_batch_size: int = 8,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Train every size (resumable), analyze every checkpoint of every size (incremental),
    then write ``dynamics.csv``, ``hypotheses.csv``, the figures and ``report.html``.

    Landscapes use one fixed batch of ``eval_batch_size`` training windows for every checkpoint
    and size. Returns the paths written.
    """
    from saddles import plots
    from saddles.dynamics import analyze_checkpoints, hypothesis_table, with_policy
    from saddles.pipeline import write_csv
    from saddles.relations import fit_power_law, relations_table
    from saddles.report import dynamics_section, write_report

    started = time.perf_counter()
    out_dir = Path(out_dir)
    ckpt_dirs = run_lm_training(out_dir / "training", preset, sizes, steps, seed,
                                device=device, progress=progress)  # fmt: skip
    p = PRESETS[preset]
    text, vocab = char_corpus()
    train_ids, _ = train_val_split(encode(text, vocab))
    eval_batch = fixed_eval_batch(train_ids, eval_batch_size, p.block_size, seed)
    configs = configs or default_lm_configs(seed)
    rows: list[dict[str, Any]] = []
    for size, ckdir in ckpt_dirs.items():
        model_cfg = json.loads((ckdir / "run.json").read_text())["model"]
        n_params = sum(t.numel() for t in GPT(**model_cfg).parameters())
        if progress:
            print(f"analyzing the checkpoints of {size} ({n_params:,} parameters)", flush=True)
        rows += analyze_checkpoints(
            lambda cfg=model_cfg: GPT(**cfg), ckdir, lm_loss, eval_batch, configs,
            out_dir / "analysis" / size, policy=policy, run_name=size,
            extra={"size": size, "n_params": n_params}, progress=progress,
        )  # fmt: skip
    for r in rows:
        r["model"] = f"{r['size']}@{r['step']}"
    paths = {"dynamics": write_csv(out_dir / "dynamics.csv", rows)}

    label = next(iter(configs))
    rep = configs[label].representations[0]
    saddles_col = f"{label}.{rep}.n_saddles"
    pers_col = f"{label}.{rep}.average_persistence"
    kd_cols = [f"{k}.{c.representations[0]}.n_saddles" for k, c in configs.items() if k != label]
    hypotheses = hypothesis_table(rows, saddles_col, pers_col, kd_metrics=kd_cols, seed=seed)
    paths["hypotheses"] = write_csv(out_dir / "hypotheses.csv", hypotheses)

    figures = {}
    for metric in ("val_loss", saddles_col, pers_col, *kd_cols, "top_eigenvalue", "trace"):
        if any(metric in r for r in rows):
            safe = metric.replace(".", "-")
            fig = plots.dynamics_figure(rows, metric, "size")
            figures[f"{metric} against step"] = plots.save(fig, out_dir / f"dynamics-{safe}.png")
    finals = {}
    for r in rows:
        finals[r["size"]] = r  # rows are ordered by step within a size
    n = [finals[s]["n_params"] for s in finals]
    loss = [float(finals[s].get("val_loss", np.nan)) for s in finals]
    fit, note = None, "fewer than 3 sizes: no power-law fit"
    if len(n) >= 3 and np.isfinite(loss).all():
        offset = len(n) >= 4
        try:
            fit = fit_power_law(n, loss, offset=offset, n_boot=500, seed=seed)
            note = (f"final val loss = {fit.a:.3g} N^-{fit.alpha:.3g} + {fit.c:.3g}, alpha 95% "
                    f"CI [{fit.alpha_ci[0]:.3g}, {fit.alpha_ci[1]:.3g}], residuals "
                    f"{np.array2string(fit.residuals, precision=3)}"
                    + ("" if offset else " (c fixed at 0: 3 sizes cannot fit 3 parameters "
                       "with any check left)"))  # fmt: skip
        except (RuntimeError, ValueError) as exc:
            note = f"power-law fit failed: {exc}"
    figures["final val loss against size"] = plots.save(
        plots.scaling_figure(n, loss, fit), out_dir / "scaling.png"
    )
    final_rows = list(finals.values())
    tda = [saddles_col, pers_col, *kd_cols]
    correlations = relations_table(final_rows, tda, ["n_params", "val_loss"], seed=seed)
    relations = [{"direction": policy, "representation": rep, **c.as_row()} for c in correlations]
    info = {"experiment": f"character-level GPT, preset {preset}", "sizes": list(ckpt_dirs),
            "checkpoints analyzed": len(rows), "direction policy": policy,
            "torch threads": torch.get_num_threads(),
            "wall seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    cfg = {k: with_policy(c, policy).to_dict() for k, c in configs.items()}
    cfg["representations"] = [rep]
    columns = ["model", "step", "val_loss", *tda, f"{label}.{rep}.n_minima",
               f"{label}.{rep}.n_loops", "top_eigenvalue", "trace"]  # fmt: skip
    paths["report"] = write_report(
        out_dir / "report.html", title=f"Loss landscape topology over training ({preset})",
        config=cfg, analyses=[], figures={}, rows=rows, relations=relations,
        relation_figures={}, info=info,
        extra_sections=[("Dynamics", dynamics_section(figures, hypotheses, note))],
        table_columns=columns,
    )  # fmt: skip
    return paths
