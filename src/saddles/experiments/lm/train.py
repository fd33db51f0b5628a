"""Training one GPT with log-spaced safetensors checkpoints, resumable after an interruption.

AdamW (Loshchilov & Hutter 2019, "Decoupled weight decay regularization"; decay on matrices
and embeddings only, betas (0.9, 0.95), gradients clipped at norm 1) with linear warmup and
cosine decay to a tenth of the peak rate. A checkpoint directory holds
``step_000123.safetensors`` with a JSON sidecar ``step_000123.json`` (step, tokens seen, train
and val loss on fixed batches), ``run.json`` with the model configuration and the training
settings, and the latest optimizer state under ``resume/`` so that an interrupted run continues
from its latest checkpoint (safetensors for tensors, JSON for scalars; never pickle).

:func:`train_lm` reads top to bottom as its pieces: :func:`_checkpoint_steps` (the schedule),
:func:`_open_run_dir` and :func:`_resume` (where to start), :func:`_train_step` (one update),
:func:`_write_checkpoint` (weights, optimizer state, sidecar).

Owns training: imports torch, safetensors, :mod:`saddles.experiments` (the checkpoint helpers)
and this package's data and model modules; nothing of presets, the experiment or hypotheses.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from saddles.experiments import load_checkpoint, save_checkpoint
from saddles.experiments.lm.data import batches, fixed_eval_batch
from saddles.experiments.lm.model import GPT, lm_loss
from saddles.files import atomic_write_text
from saddles.io.data import Batch

# --- the schedule --------------------------------------------------------------------------


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


def _checkpoint_steps(steps: int, checkpoint_steps: Sequence[int] | None) -> list[int]:
    """The sorted steps to checkpoint: ``checkpoint_steps`` (default log-spaced) plus ``steps``."""
    chosen = checkpoint_steps if checkpoint_steps is not None else log_spaced_steps(steps)
    ckpt_steps = sorted(set(chosen) | {steps})
    if ckpt_steps[0] < 0 or ckpt_steps[-1] > steps:
        raise ValueError(f"checkpoint steps must lie in [0, {steps}], got {ckpt_steps}")
    return ckpt_steps


# --- checkpoint files ----------------------------------------------------------------------


def checkpoint_name(step: int) -> str:
    """``step_000123``: the stem of a checkpoint and of its sidecar."""
    return f"step_{step:06d}"


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    from saddles.io.checkpoints import save_state_dict

    save_state_dict(path, tensors, metadata)


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


# --- the optimizer and its saved state -----------------------------------------------------


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


# --- the pieces of a training run ----------------------------------------------------------


def _open_run_dir(checkpoint_dir: Path, model: GPT, settings: dict[str, Any]) -> dict[int, dict]:
    """Create ``checkpoint_dir`` and its ``run.json``, or check that the ``run.json`` there has
    the same model and settings; return the finished checkpoints (:func:`list_checkpoints`)."""
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
    return list_checkpoints(checkpoint_dir)


def _resume(
    checkpoint_dir: Path, done: dict[int, dict], steps: int, model: GPT, opt: torch.optim.Optimizer
) -> int | None:
    """Load the latest checkpoint a run can continue from into ``model`` and ``opt``: the final
    one (nothing left to do), or one whose optimizer state is in ``resume/``. Its step, or None
    when there is none (start from the initialization)."""
    for step in sorted(done, reverse=True):  # the final step first: then nothing is left
        if step == steps or _load_resume_state(checkpoint_dir / "resume", step, opt):
            load_checkpoint(model, checkpoint_dir / f"{checkpoint_name(step)}.safetensors")
            return step
    return None


def _train_step(
    model: nn.Module, opt: torch.optim.Optimizer, batch: Batch, grad_clip: float
) -> torch.Tensor:
    """One AdamW update on ``batch`` at the optimizer's current rate, gradients clipped at norm
    ``grad_clip`` (0: no clipping); returns the loss before the update."""
    loss = lm_loss(model, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss


def _write_checkpoint(
    checkpoint_dir: Path,
    record: dict[str, Any],
    steps: int,
    model: nn.Module,
    opt: torch.optim.Optimizer,
) -> Path:
    """Write the checkpoint of ``record["step"]``: the weights (with the record as safetensors
    metadata), the optimizer state unless training is finished, then the sidecar, which marks
    the checkpoint finished. The final checkpoint removes ``resume/``. Returns the weights."""
    step = record["step"]
    stem = checkpoint_dir / checkpoint_name(step)
    meta = {k: str(v) for k, v in record.items()}
    tmp = save_checkpoint(model, stem.with_name(stem.name + ".safetensors.tmp"), meta)
    os.replace(tmp, stem.with_suffix(".safetensors"))
    if step < steps:
        _save_resume_state(checkpoint_dir / "resume", step, opt)
    _write_json(stem.with_suffix(".json"), record)
    if step == steps:  # finished: the optimizer state is no longer needed
        shutil.rmtree(checkpoint_dir / "resume", ignore_errors=True)
    return stem.with_suffix(".safetensors")


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
    ckpt_steps = _checkpoint_steps(steps, checkpoint_steps)
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
    checkpoints: dict[int, Path] = {}
    resumed_from = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        done = _open_run_dir(checkpoint_dir, model, settings)
        resumed_from = _resume(checkpoint_dir, done, steps, model, opt)
        checkpoints = {s: checkpoint_dir / f"{checkpoint_name(s)}.safetensors" for s in done}
    start = resumed_from or 0

    history: list[dict[str, Any]] = []
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
            checkpoints[step] = _write_checkpoint(checkpoint_dir, record, steps, model, opt)
            done[step] = record
        if callback is not None:
            callback(record)

    if start < steps:
        model.train()
        if start not in done:  # a resumed run's start was recorded by its checkpoint
            evaluate(start)
        stream = batches(train_ids, batch_size, block_size, seed, start=start)
        for step in range(start, steps):
            batch = tuple(t.to(device) for t in next(stream))
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, lr, warmup, steps, min_lr_ratio)
            t0 = time.perf_counter()
            _train_step(model, opt, batch, grad_clip)
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
