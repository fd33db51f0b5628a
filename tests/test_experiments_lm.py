"""The character-level GPT workload: corpus, batches, model, loss (autograd, vmap, Hessian),
training with log-spaced checkpoints and resumption, and the Hugging Face adapter."""

from __future__ import annotations

import json
import math
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from saddles.experiments import lm
from saddles.experiments.lm import (
    GPT,
    SIZES,
    HFCausalLMAdapter,
    batch_at,
    batches,
    char_corpus,
    decode,
    encode,
    fixed_eval_batch,
    gpt_for_size,
    learning_rate,
    list_checkpoints,
    lm_loss,
    load_hf_causal_lm,
    load_lm_checkpoint,
    log_spaced_steps,
    run_lm_training,
    train_lm,
    train_val_split,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def corpus():
    text, vocab = char_corpus()
    ids = encode(text, vocab)
    train, val = train_val_split(ids)
    return text, vocab, ids, train, val


def tiny_gpt(seed: int = 0, block_size: int = 16) -> GPT:
    torch.manual_seed(seed)
    return GPT(vocab_size=103, n_layer=2, n_head=2, n_embd=16, block_size=block_size)


# --- data ----------------------------------------------------------------------------------


def test_corpus_is_pydoc_topics_joined_in_key_order(corpus):
    from pydoc_data.topics import topics

    text, vocab, ids, train, val = corpus
    assert text.startswith(topics[min(topics)]) and text.endswith(topics[max(topics)])
    assert vocab == "".join(sorted(set(text))) and "\n" in vocab
    assert char_corpus() == (text, vocab)
    if sys.version_info[:2] == (3, 11):  # the text ships with Python and changes with it
        assert (len(text), len(vocab)) == (464_970, 103)
    assert len(train) == round(0.9 * len(ids)) and len(train) + len(val) == len(ids)
    assert torch.equal(torch.cat([train, val]), ids)  # first 90% then last 10%, no shuffling


def test_encode_decode_round_trip(corpus):
    text, vocab, ids, _, _ = corpus
    assert ids.dtype == torch.int64 and int(ids.min()) == 0 and int(ids.max()) == len(vocab) - 1
    assert decode(ids, vocab) == text
    assert decode(encode("def f(x):\n", vocab), vocab) == "def f(x):\n"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        encode("snowman \u2603", vocab)


def test_batches_are_deterministic_shifted_text_windows(corpus):
    _, _, _, train, _ = corpus
    stream = batches(train, 8, 32, seed=3)
    first = [next(stream) for _ in range(4)]
    again = batches(train, 8, 32, seed=3)
    for (x, y), (x2, y2) in zip(first, (next(again) for _ in range(4)), strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
        assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.int64
        assert torch.equal(y[:, :-1], x[:, 1:])  # y is the next character
    x, y = first[2]
    text, vocab, _, _, _ = corpus
    assert decode(x[1], vocab) + decode(y[1, -1:], vocab) in text[: len(train)]
    assert not torch.equal(first[0][0], first[1][0])  # steps differ
    assert not torch.equal(next(batches(train, 8, 32, seed=4))[0], first[0][0])  # seeds differ
    late = next(batches(train, 8, 32, seed=3, start=2))  # a stream can start anywhere
    assert torch.equal(late[0], first[2][0])


def test_every_model_size_sees_the_same_batches(corpus, monkeypatch):
    _, _, _, train, val = corpus
    seen: dict[str, list] = {}
    current = []

    def recording(*args, **kwargs):
        batch = batch_at(*args, **kwargs)
        current.append(batch[0].clone())
        return batch

    monkeypatch.setattr(lm, "batch_at", recording)
    for size in ("L1-d32", "L2-d64"):
        current = seen.setdefault(size, [])
        model = gpt_for_size(size, 103, block_size=16, seed=0)
        train_lm(model, train, val, steps=3, batch_size=4, block_size=16, lr=1e-3,
                 checkpoint_steps=[], eval_batch_size=4)  # fmt: skip
    assert len(seen["L1-d32"]) == len(seen["L2-d64"]) == 3
    for a, b in zip(seen["L1-d32"], seen["L2-d64"], strict=True):
        assert torch.equal(a, b)


def test_fixed_eval_batch(corpus):
    _, _, _, _, val = corpus
    x, y = fixed_eval_batch(val, 16, 64, seed=0)
    x2, _ = fixed_eval_batch(val, 16, 64, seed=0)
    assert torch.equal(x, x2) and x.shape == (16, 64) and torch.equal(y[:, :-1], x[:, 1:])
    assert not torch.equal(fixed_eval_batch(val, 16, 64, seed=1)[0], x)
    assert len({tuple(row.tolist()) for row in x}) == 16  # distinct windows
    with pytest.raises(ValueError, match="distinct windows"):
        fixed_eval_batch(val[:20], 16, 8)


# --- model ---------------------------------------------------------------------------------


def test_sizes_grow_in_width_and_depth_and_parameter_counts_match_the_docstring():
    counts = [sum(p.numel() for p in gpt_for_size(i, 103, 64).parameters()) for i in range(4)]
    assert counts == sorted(counts) and 15_000 < counts[0] < 30_000 < 500_000 < counts[-1] < 1.1e6
    for name, count in zip(SIZES, counts, strict=True):
        assert f"{name}" in lm.__doc__ and f"{count:,}" in lm.__doc__
    block_128 = sum(p.numel() for p in gpt_for_size("L4-d128", 103, 128).parameters())
    assert f"{block_128:,}" in lm.__doc__
    layers = [s.n_layer for s in SIZES.values()]
    widths = [s.n_embd for s in SIZES.values()]
    assert layers == sorted(layers) and widths == sorted(widths) and len(set(layers)) == 4
    with pytest.raises(KeyError, match="unknown size"):
        gpt_for_size("huge", 103, 64)
    a, b = gpt_for_size(0, 103, 64, seed=5), gpt_for_size("L1-d32", 103, 64, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_forward_shapes_and_causality():
    model = tiny_gpt().eval()
    idx = torch.randint(0, 103, (3, 12), generator=torch.Generator().manual_seed(0))
    logits = model(idx)
    assert logits.shape == (3, 12, 103)
    changed = idx.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 103
    other = model(changed)
    torch.testing.assert_close(other[:, :7], logits[:, :7], rtol=0, atol=0)
    assert (other[:, 7:] - logits[:, 7:]).abs().amax() > 1e-4
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, 17, dtype=torch.int64))


def test_loss_at_initialization_is_about_log_vocab(corpus):
    _, _, _, train, _ = corpus
    model = gpt_for_size("L2-d64", 103, 64).eval()
    with torch.no_grad():
        loss = float(lm_loss(model, fixed_eval_batch(train, 16, 64)))
    assert abs(loss - math.log(103)) < 0.05


def test_the_gpt_trains(corpus):
    _, _, _, train, val = corpus
    model = gpt_for_size("L1-d32", 103, block_size=32, seed=0)
    info = train_lm(model, train, val, steps=30, batch_size=16, block_size=32, lr=3e-3,
                    warmup=3, checkpoint_steps=[], eval_batch_size=16)  # fmt: skip
    first, last = info["history"][0], info["history"][-1]
    assert (first["step"], last["step"]) == (0, 30)
    assert first["val_loss"] > 4.5 and last["val_loss"] < first["val_loss"] - 0.8
    assert last["train_loss"] < first["train_loss"] - 0.8
    assert not model.training


def test_learning_rate_schedule_warms_up_then_decays():
    rates = [learning_rate(s, 1.0, warmup=10, steps=100, min_lr_ratio=0.1) for s in range(101)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(rates[:10], rates[1:10], strict=False))
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[55] == pytest.approx(0.55) and rates[100] == pytest.approx(0.1)


@pytest.mark.parametrize("total,n", [(0, 12), (5, 12), (11, 12), (12, 12), (40, 12),
                                     (600, 12), (10_000, 12), (4000, 15), (100, 10)])  # fmt: skip
def test_log_spaced_steps(total, n):
    steps = log_spaced_steps(total, n)
    assert len(steps) == min(n, total + 1)
    assert steps[0] == 0 and steps[-1] == total
    assert all(isinstance(s, int) for s in steps) and all(np.diff(steps) > 0)
    if total >= 1000:  # spacing is even in log(step): successive ratios are all alike
        ratios = np.diff(np.log([s for s in steps if s >= 10]))  # rounding spares larger steps
        assert len(ratios) >= n - 6 and ratios.max() < 1.2 * ratios.min()


# --- loss under torch.func: vmap and Hessian-vector products --------------------------------


class LossOf(nn.Module):
    """``forward(batch) = lm_loss(model, batch)``, so functional_call swaps the parameters for
    the whole loss (as the landscape sampler's batched engine does)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return lm_loss(self.model, batch)


def test_lm_loss_vmaps_over_stacked_parameters_and_matches_a_loop(corpus):
    _, _, _, train, _ = corpus
    model = tiny_gpt().eval()
    batch = fixed_eval_batch(train, 4, 16)
    gen = torch.Generator().manual_seed(1)
    stacked = {
        f"model.{k}": torch.stack(
            [v.detach(), v.detach() + 0.05 * torch.randn(v.shape, generator=gen)]
        )
        for k, v in model.named_parameters()
    }
    wrapper = LossOf(model)

    def loss_at(params):
        return torch.func.functional_call(wrapper, params, (batch,))

    mapped = torch.vmap(loss_at)(stacked)
    loop = torch.stack([loss_at({k: v[i] for k, v in stacked.items()}) for i in range(2)])
    torch.testing.assert_close(mapped, loop, rtol=1e-5, atol=1e-5)
    assert float(loop[0]) == pytest.approx(float(lm_loss(model, batch).detach()), abs=1e-6)
    assert abs(float(loop[1] - loop[0])) > 1e-3  # the two parameter sets really differ


def test_hessian_vector_products_through_the_attention(corpus):
    """Double backward works (the reason attention is explicit matmuls, not fused SDPA): the
    HVP matches a central difference of gradients in float64."""
    _, _, _, train, _ = corpus
    model = tiny_gpt().double().eval()
    batch = fixed_eval_batch(train, 4, 16)
    params = list(model.parameters())
    v = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
         for i, p in enumerate(params)]  # fmt: skip
    grads = torch.autograd.grad(lm_loss(model, batch), params, create_graph=True)
    hv = torch.autograd.grad(grads, params, v)
    eps = 1e-5

    def grad_at(sign):
        with torch.no_grad():
            for p, d in zip(params, v, strict=True):
                p.add_(sign * eps * d)
        g = torch.autograd.grad(lm_loss(model, batch), params)
        with torch.no_grad():
            for p, d in zip(params, v, strict=True):
                p.sub_(sign * eps * d)
        return g

    fd = [(a - b) / (2 * eps) for a, b in zip(grad_at(1.0), grad_at(-1.0), strict=True)]
    flat_hv, flat_fd = torch.cat([h.ravel() for h in hv]), torch.cat([f.ravel() for f in fd])
    assert flat_hv.norm() > 1e-3
    assert float((flat_hv - flat_fd).norm() / flat_hv.norm()) < 1e-5


def test_landscape_engines_agree_on_the_gpt_without_fallback(corpus):
    from saddles import directions, sampling
    from saddles.landscape import EngineFallbackWarning, evaluate

    _, _, _, _, val = corpus
    model = tiny_gpt()
    batch = fixed_eval_batch(val, 4, 16)
    dirs = directions.random_directions(model, 2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineFallbackWarning)
        kw = {"progress": False}
        batched = evaluate(model, lm_loss, batch, dirs, sampling.grid(3), engine="batched", **kw)
        loop = evaluate(model, lm_loss, batch, dirs, sampling.grid(3), engine="sequential", **kw)
    assert batched.info["fallback"] is None
    np.testing.assert_allclose(batched.loss, loop.loss, rtol=1e-5)
    assert np.ptp(loop.loss) > 1e-3


# --- training with checkpoints -------------------------------------------------------------

SETTINGS = {"steps": 12, "batch_size": 4, "block_size": 16, "lr": 3e-3, "warmup": 2,
            "checkpoint_steps": [0, 1, 3, 6, 12], "eval_batch_size": 4}  # fmt: skip


def test_checkpoints_with_sidecars_reload_to_identical_logits(corpus, tmp_path):
    _, _, _, train, val = corpus
    model = tiny_gpt()
    info = train_lm(model, train, val, checkpoint_dir=tmp_path, **SETTINGS)
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    stems = [f"step_{s:06d}" for s in SETTINGS["checkpoint_steps"]]
    assert names == sorted([*(s + ".safetensors" for s in stems), *(s + ".json" for s in stems),
                            "run.json"])  # fmt: skip
    assert not (tmp_path / "resume").exists()  # optimizer state dropped when finished
    assert list(list_checkpoints(tmp_path)) == SETTINGS["checkpoint_steps"]
    assert list(info["checkpoints"]) == SETTINGS["checkpoint_steps"]
    x, y = fixed_eval_batch(val, 4, 16)
    for step in (0, 6):
        record = json.loads((tmp_path / f"step_{step:06d}.json").read_text())
        assert record["step"] == step and record["tokens_seen"] == step * 4 * 16
        again = load_lm_checkpoint(tmp_path, step)
        assert not again.training
        assert float(lm_loss(again, (x, y)).detach()) == pytest.approx(record["val_loss"], abs=1e-6)
    final = load_lm_checkpoint(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(final(x), model(x), rtol=0, atol=0)
    assert (
        info["final_val_loss"]
        == json.loads((tmp_path / "step_000012.json").read_text())["val_loss"]
    )
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["model"]["n_embd"] == 16 and run["training"]["steps"] == 12
    from safetensors import safe_open

    with safe_open(str(tmp_path / "step_000006.safetensors"), "pt") as f:
        assert f.metadata()["step"] == "6"


def test_interrupted_training_resumes_and_matches_an_uninterrupted_run(corpus, tmp_path):
    _, _, _, train, val = corpus
    reference = tiny_gpt()
    train_lm(reference, train, val, **SETTINGS)

    class Interrupt(Exception):
        pass

    def stop_after_7(record):
        if record["step"] >= 7:
            raise Interrupt

    model = tiny_gpt()
    with pytest.raises(Interrupt):  # at step 7, before checkpoint 12
        train_lm(model, train, val, checkpoint_dir=tmp_path, eval_every=7, callback=stop_after_7,
                 **SETTINGS)  # fmt: skip
    assert list(list_checkpoints(tmp_path)) == [0, 1, 3, 6]
    assert json.loads((tmp_path / "resume" / "optimizer.json").read_text())["step"] == 6
    written = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("step_*")}

    model = tiny_gpt(seed=99)  # any starting weights: resumption loads the checkpoint
    info = train_lm(model, train, val, checkpoint_dir=tmp_path, **SETTINGS)
    assert info["resumed_from"] == 6 and [r["step"] for r in info["history"]] == [12]
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)
    assert all(written[p.name] == p.stat().st_mtime_ns for p in tmp_path.glob("step_*")
               if p.name in written)  # fmt: skip

    finished = tiny_gpt(seed=98)
    again = train_lm(finished, train, val, checkpoint_dir=tmp_path, **SETTINGS)
    assert again["resumed_from"] == 12 and again["history"] == []
    assert again["final_val_loss"] == info["final_val_loss"]
    assert all(
        torch.equal(p, q)
        for p, q in zip(finished.parameters(), reference.parameters(), strict=True)
    )

    with pytest.raises(ValueError, match="other settings"):
        train_lm(tiny_gpt(), train, val, checkpoint_dir=tmp_path, **{**SETTINGS, "lr": 1e-3})


def test_run_lm_training_writes_one_checkpoint_directory_per_size(tmp_path):
    dirs = run_lm_training(tmp_path, "small", sizes=[0, "L2-d64"], steps=2, progress=False)
    assert list(dirs) == ["L1-d32", "L2-d64"]
    for name, path in dirs.items():
        assert path == tmp_path / name / "checkpoints"
        assert list(list_checkpoints(path)) == [0, 1, 2]
        run = json.loads((path / "run.json").read_text())
        assert run["model"]["n_embd"] == SIZES[name].n_embd
        assert run["training"]["block_size"] == lm.PRESETS["small"].block_size
    with pytest.raises(KeyError, match="unknown preset"):
        run_lm_training(tmp_path, "medium")


# --- Hugging Face style models -------------------------------------------------------------


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
