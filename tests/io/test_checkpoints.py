"""saddles.io.checkpoints: one safe loader and saver, read back by safetensors and torch."""

from __future__ import annotations

import collections

import pytest
import torch
from safetensors.torch import load_file

from saddles.io.checkpoints import CheckpointError, load_into, load_state_dict, save_state_dict


def net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_round_trip_through_safetensors_and_torch(tmp_path):
    a, b = net(0), net(1)
    path = save_state_dict(tmp_path / "w.safetensors", a.state_dict(), {"step": "7"})
    assert set(load_file(str(path))) == set(a.state_dict())  # the library's own reader
    load_into(b, path)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k
    torch.save({"model_state_dict": net(2).state_dict()}, tmp_path / "w.pt")
    assert torch.equal(load_state_dict(tmp_path / "w.pt")["0.weight"], net(2)[0].weight)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_shared_storage_is_saved(tmp_path):
    w = torch.randn(4, 4)
    path = save_state_dict(tmp_path / "tied.safetensors", {"a": w, "b": w})
    loaded = load_state_dict(path)
    assert torch.equal(loaded["a"], loaded["b"])


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.pt", b"", "is empty"),
        ("bad.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}", "not a readable"),
        ("junk.pt", b"not a zip or pickle at all", "cannot be read"),
        ("w.npy", b"x", "unsupported checkpoint"),
    ],
)
def test_unusable_files_give_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_state_dict(path)
    assert str(path) in str(caught.value) or name in str(caught.value)
    assert "\n" not in str(caught.value)


class Opaque:
    """Not a tensor: torch.load(weights_only=True) must refuse to build it."""


def test_objects_are_refused_never_unpickled(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"w": torch.ones(2), "f": Opaque()}, path)
    with pytest.raises(CheckpointError, match=r"pickled \S*Opaque, refused"):
        load_state_dict(path)
    torch.save({"w": torch.ones(2), "f": collections.Counter("ab")}, path)  # allowed, not a tensor
    with pytest.raises(CheckpointError, match="'f' is a Counter, not a tensor"):
        load_state_dict(path)


def test_a_mismatched_model_is_named(tmp_path):
    path = save_state_dict(tmp_path / "w.safetensors", net().state_dict())
    other = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5))
    with pytest.raises(CheckpointError, match="shape"):
        load_into(other, path)
    with pytest.raises(CheckpointError, match="missing 'bias', 'weight', unexpected '0.bias'"):
        load_into(torch.nn.Linear(3, 4), path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_state_dict(tmp_path / "nope.pt")


class Tied(torch.nn.Module):
    """An embedding and an output layer sharing one weight, inside a wrapper (``body.``)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Module()
        self.body.embed = torch.nn.Embedding(5, 3)
        self.head = torch.nn.Linear(3, 5, bias=False)
        self.head.weight = self.body.embed.weight


def test_folders_shards_prefixes_and_ties(tmp_path):
    import json

    torch.manual_seed(3)
    source = Tied()
    # a folder of the unwrapped body's names, the tied head left out, in two shards
    folder = tmp_path / "step10"
    save_state_dict(folder / "a.safetensors", {"embed.weight": source.body.embed.weight})
    save_state_dict(folder / "b.safetensors", {"extra": torch.ones(1)})
    index = {"weight_map": {"embed.weight": "a.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    target = Tied()
    load_into(target, folder)
    assert torch.equal(target.head.weight, source.head.weight)
    assert target.head.weight.data_ptr() == target.body.embed.weight.data_ptr()
    with pytest.raises(CheckpointError, match="holds none of"):
        load_into(Tied(), tmp_path)
    with pytest.raises(CheckpointError, match="unexpected 'extra'"):
        load_into(Tied(), folder / "b.safetensors")
