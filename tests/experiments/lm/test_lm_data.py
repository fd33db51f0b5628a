"""The character corpus and its batches: deterministic windows of shifted text."""

from __future__ import annotations

import sys

import pytest
import torch

from saddles.experiments.lm import (
    batch_at,
    batches,
    char_corpus,
    data,
    decode,
    encode,
    fixed_eval_batch,
    gpt_for_size,
    train_lm,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


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

    monkeypatch.setattr(data, "batch_at", recording)  # what train_lm draws from
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
