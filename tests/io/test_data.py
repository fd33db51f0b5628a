"""saddles.io: data files, batches, the loss check and load_problem, without the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from saddles.io import data, load_problem
from saddles.io.problem import InputError

FACTORY = """
import torch

def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))

def vector_loss(model, batch):
    return model(batch[0]).sum(dim=1)
"""


class Opaque:
    pass


@pytest.fixture
def files(tmp_path, monkeypatch):
    (tmp_path / "iofactory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(0)
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    torch.save((x, y), tmp_path / "data.pt")
    np.savez(tmp_path / "data.npz", x.numpy(), y.numpy())
    np.savez(tmp_path / "tokens.npz", input_ids=np.arange(12).reshape(2, 6))
    np.save(tmp_path / "ids.npy", np.arange(12).reshape(2, 6))
    save_file({"inputs": x, "targets": y}, str(tmp_path / "data.safetensors"))
    torch.save({"x": x, "evil": Opaque()}, tmp_path / "pickled.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "ckpt.pt")
    return tmp_path, x, y


def test_read_data_keeps_each_form(files):
    tmp, x, y = files
    pt = data.read_data(tmp / "data.pt")
    assert isinstance(pt, tuple) and torch.equal(pt[0], x) and torch.equal(pt[1], y)
    npz = data.read_data(tmp / "data.npz")
    assert isinstance(npz, tuple) and torch.equal(npz[0], x) and torch.equal(npz[1], y)
    tokens = data.read_data(tmp / "tokens.npz")
    assert list(tokens) == ["input_ids"] and tokens["input_ids"].shape == (2, 6)
    assert data.read_data(tmp / "ids.npy").shape == (2, 6)
    named = data.read_data(tmp / "data.safetensors")
    assert sorted(named) == ["inputs", "targets"] and torch.equal(named["inputs"], x)


def test_read_data_refuses_in_one_line(files):
    tmp, *_ = files
    with pytest.raises(ValueError, match=r"pickled \S*Opaque, refused"):
        data.read_data(tmp / "pickled.pt")
    (tmp / "d.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unsupported data file 'd.csv'"):
        data.read_data(tmp / "d.csv")
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.read_data(tmp / "nope.pt")


def test_split_batches_keeps_the_samples_in_order(files):
    _, x, y = files
    batches = data.split_batches((x, y), 4)
    assert [data.batch_size(b) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in batches]), x)
    dicts = data.split_batches({"inputs": x, "targets": y}, 3)
    assert all(sorted(b) == ["inputs", "targets"] for b in dicts) and len(dicts) == 4
    with pytest.raises(ValueError, match="positive integer"):
        data.split_batches((x, y), 0)


def test_check_loss_and_tokens_refuse_what_cannot_be_used(files):
    _, x, y = files
    net = torch.nn.Linear(4, 3)
    loss = data.make_loss(criterion="cross_entropy")
    data.check_loss(net, loss, (x, y))  # usable: no error
    with pytest.raises(ValueError, match="first batch"):
        data.check_loss(net, loss, (x,))
    with pytest.raises(ValueError, match="scalar tensor"):
        data.check_loss(net, lambda m, b: m(b[0]), (x, y))
    emb = torch.nn.Module()
    emb.get_input_embeddings = lambda: torch.nn.Embedding(5, 2)
    with pytest.raises(ValueError, match="batch 1: token ids range from 0 to 7"):
        data.check_tokens(emb, [{"input_ids": torch.zeros(1, 3).long()},
                                {"input_ids": torch.arange(8).view(2, 4)}])  # fmt: skip


def test_load_problem_returns_the_checked_pieces(files):
    tmp, x, y = files
    problem = load_problem("iofactory:mlp", tmp / "data.pt", batch_size=4,
                           params={"exclude_1d": True})  # fmt: skip
    assert [data.batch_size(b) for b in problem.data] == [4, 4, 2]
    assert problem.loss_label == "cross_entropy"
    assert sorted(problem.selection.names) == ["0.weight", "2.weight"]
    expected = torch.nn.functional.cross_entropy(problem.model(x), y)
    assert torch.allclose(problem.loss(problem.model, (x, y)), expected)


@pytest.mark.parametrize(
    "kwargs, argument, words",
    [
        ({"model": "iofactory:nope"}, "model", "no 'nope'"),
        ({"checkpoint": "ckpt.pt"}, "checkpoint", "does not match"),
        ({"checkpoint": "missing.pt"}, "checkpoint", "no such file"),
        ({"data": "pickled.pt"}, "data", "Opaque"),
        ({"loss": "iofactory:vector_loss"}, "data", "scalar"),
        ({"loss": "iofactory:mlp", "criterion": "mse"}, "loss", "not both"),
        ({"criterion": "hinge"}, "criterion", "hinge"),
        ({"params": {"include": ["nothing.*"]}}, "params", "nothing"),
        ({"batch_size": 0}, "batch_size", "positive"),
    ],
)
def test_load_problem_names_the_argument_at_fault(files, kwargs, argument, words):
    tmp, *_ = files
    args = {"model": "iofactory:mlp", "data": "data.pt", **kwargs}
    for key in ("data", "checkpoint"):
        if key in args:
            args[key] = tmp / args[key]
    with pytest.raises(InputError, match=words) as caught:
        load_problem(args.pop("model"), args.pop("data"), **args)
    assert caught.value.argument == argument and "\n" not in str(caught.value)
