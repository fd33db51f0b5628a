"""Fixtures of the language-model tests: the corpus, encoded and split once per module."""

from __future__ import annotations

import pytest

from saddles.experiments.lm import char_corpus, encode, train_val_split


@pytest.fixture(scope="module")
def corpus():
    text, vocab = char_corpus()
    ids = encode(text, vocab)
    train, val = train_val_split(ids)
    return text, vocab, ids, train, val
