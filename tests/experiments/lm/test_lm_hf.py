"""Hugging Face style causal LMs: the adapter, the local-only loader, a tiny GPT-2."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import torch
from gpt_for_tests import tiny_gpt
from torch import nn

from saddles.experiments.lm import (
    GPT,
    HFCausalLMAdapter,
    fixed_eval_batch,
    lm_loss,
    load_hf_causal_lm,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


class DictLM(nn.Module):
    """A causal LM in the Hugging Face calling convention, built on a GPT: returns a dict
    with ``logits``, or with only ``loss`` when given ``labels``."""

    def __init__(self, gpt: GPT, loss_only: bool = False):
        super().__init__()
        self.gpt, self.loss_only = gpt, loss_only

    def forward(self, input_ids, labels=None):
        logits = self.gpt(input_ids)
        if labels is None:
            return {"loss": None} if self.loss_only else {"logits": logits}
        shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
        return {"loss": nn.functional.cross_entropy(shifted, labels[:, 1:].reshape(-1))}


def test_adapter_gives_the_same_loss_through_logits_or_labels(corpus):
    _, _, _, _, val = corpus
    gpt = tiny_gpt().eval().requires_grad_(False)
    batch = fixed_eval_batch(val, 4, 15)  # 15 + 1 tokens fit block_size 16 on the labels path
    direct = float(lm_loss(gpt, batch))
    assert float(lm_loss(HFCausalLMAdapter(DictLM(gpt)), batch)) == pytest.approx(direct, abs=1e-6)
    loss_only = HFCausalLMAdapter(DictLM(gpt, loss_only=True), use_labels=True)
    assert float(lm_loss(loss_only, batch)) == pytest.approx(direct, abs=1e-5)
    with pytest.raises(TypeError, match="without logits"):
        lm_loss(HFCausalLMAdapter(DictLM(gpt, loss_only=True)), batch)


def test_hf_loader_refuses_missing_or_empty_folders_and_missing_transformers(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_hf_causal_lm(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="empty"):
        load_hf_causal_lm(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install transformers"):
        load_hf_causal_lm(tmp_path)


def test_tiny_random_gpt2_saved_locally_loads_and_evaluates(corpus, tmp_path):
    transformers = pytest.importorskip("transformers")
    _, _, _, _, val = corpus
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=103,
                                     n_positions=64, bos_token_id=0, eos_token_id=0)  # fmt: skip
    original = transformers.GPT2LMHeadModel(config).eval()
    original.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    adapter = load_hf_causal_lm(tmp_path)
    assert isinstance(adapter, HFCausalLMAdapter) and not adapter.training
    x, y = fixed_eval_batch(val, 4, 32)
    with torch.no_grad():
        expected = nn.functional.cross_entropy(original(input_ids=x).logits.reshape(-1, 103),
                                               y.reshape(-1))  # fmt: skip
        loss = lm_loss(adapter, (x, y))
    assert float(loss) == pytest.approx(float(expected), abs=1e-6)
    assert abs(float(loss) - math.log(103)) < 0.1
    adapter.use_labels = True  # the model's own shifted loss agrees
    assert float(lm_loss(adapter, (x, y)).detach()) == pytest.approx(float(expected), abs=1e-5)

    from saddles import directions, sampling
    from saddles.landscape import EngineFallbackWarning, evaluate

    adapter.use_labels = False
    dirs = directions.random_directions(adapter, 2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineFallbackWarning)  # the batched engine runs it
        grid = evaluate(adapter, lm_loss, (x, y), dirs, sampling.grid(3), engine="batched",
                        progress=False)  # fmt: skip
    assert grid.loss[4] == pytest.approx(float(expected), abs=1e-5) and np.ptp(grid.loss) > 1e-4

    wide = load_hf_causal_lm(tmp_path, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in wide.parameters())
