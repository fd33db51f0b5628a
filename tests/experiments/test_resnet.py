"""ResNet-20 with and without skips (He et al. 2016, Li et al. 2018), the CIFAR-10 reader and
its restricted unpickler, the digits substitute, training and accuracy, at tiny scale."""

from __future__ import annotations

import copy
import os
import pickle
import urllib.request

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from saddles.experiments.resnet import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    UnsafePickleError,
    accuracy,
    batch_accuracy,
    classification_loss,
    load_checkpoint,
    load_cifar10,
    load_digits_dataset,
    resnet20,
    save_checkpoint,
    train_classifier,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def blocks(model: nn.Module) -> list[nn.Module]:
    return [b for stage in (model.layer1, model.layer2, model.layer3) for b in stage]


# --- the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize("skip", [True, False])
def test_resnet20_size_and_shapes(skip):
    model = resnet20(skip=skip, seed=0)
    assert sum(p.numel() for p in model.parameters()) == 269_722
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # stem + 9 blocks x 2: with the head, the 20 layers
    assert [c.out_channels for c in convs] == [16] * 7 + [32] * 6 + [64] * 6
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    other = resnet20(skip=skip, num_classes=5, in_channels=1, seed=0)
    assert other(torch.randn(3, 1, 32, 32)).shape == (3, 5)
    again = resnet20(skip=skip, seed=0)
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_no_skip_model_has_no_skip_connections():
    """With every block's last BatchNorm zeroed, a block with a skip outputs ReLU(shortcut(x)),
    so the three stages reduce to He et al.'s option-A shortcut: subsample by 4 and put the 16
    input channels at channels 24..39 of 64 (zero-padded by 8, then by 16). Without skips the
    stages output zeros."""
    gen = torch.Generator().manual_seed(0)
    h = torch.rand(2, 16, 32, 32, generator=gen)  # non-negative, like the stem's ReLU output
    expected = torch.zeros(2, 64, 8, 8)
    expected[:, 24:40] = h[:, :, ::4, ::4]
    outputs = {}
    for skip in (True, False):
        model = resnet20(skip=skip, seed=0).eval()
        with torch.no_grad():
            for block in blocks(model):
                block.bn2.weight.zero_()
                block.bn2.bias.zero_()
            outputs[skip] = model.layer3(model.layer2(model.layer1(h)))
    torch.testing.assert_close(outputs[True], expected, rtol=0, atol=0)
    assert torch.count_nonzero(outputs[False]) == 0
    # Same seed, same weights, different wiring: untouched models disagree.
    x = torch.randn(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        a, b = resnet20(True, seed=0).eval()(x), resnet20(False, seed=0).eval()(x)
    assert not torch.allclose(a, b)


def test_checkpoints_round_trip_and_move_between_variants(tmp_path):
    model = resnet20(skip=True, seed=0)
    model.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        model(torch.randn(8, 3, 32, 32))
    path = save_checkpoint(model, tmp_path / "resnet.safetensors")
    # option-A shortcuts have no state, so the no-skip network takes the same checkpoint
    for target in (resnet20(skip=True, seed=1), resnet20(skip=False, seed=1)):
        load_checkpoint(target, path)
        for (k, a), (_, b) in zip(
            model.state_dict().items(), target.state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="unexpected"):
        load_checkpoint(nn.Linear(2, 2), path)


# --- CIFAR-10 ----------------------------------------------------------------------------------


def write_fake_cifar(folder, sizes: dict[str, int], protocol: int = 2, seed: int = 0):
    """Files in the CIFAR-10 python format: a dict with a (n, 3072) uint8 'data' array and a
    list of 'labels'. Returns ``{name: (data, labels)}``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, n in sizes.items():
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        entry = {
            "batch_label": f"fake {name}",
            "labels": labels,
            "data": data,
            "filenames": [f"img_{i}.png" for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=protocol)
        written[name] = (data, labels)
    return written


def normalized(data: np.ndarray) -> np.ndarray:
    images = data.reshape(-1, 3, 32, 32).astype(np.float64) / 255.0
    mean = np.array(CIFAR10_MEAN).reshape(1, 3, 1, 1)
    std = np.array(CIFAR10_STD).reshape(1, 3, 1, 1)
    return (images - mean) / std


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_load_cifar10_reads_the_python_files(tmp_path, protocol):
    names = {"test_batch": 5} | {f"data_batch_{i}": 3 for i in range(1, 6)}
    written = write_fake_cifar(tmp_path / "cifar-10-batches-py", names, protocol)
    x, y = load_cifar10(tmp_path, split="test")
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (5, 3, 32, 32)
    data, labels = written["test_batch"]
    np.testing.assert_allclose(x.numpy(), normalized(data), rtol=1e-5, atol=1e-5)
    assert y.tolist() == labels
    # the train split is data_batch_1..5 in order; n keeps the first n images
    x, y = load_cifar10(tmp_path / "cifar-10-batches-py", split="train", n=7)
    order = [written[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_allclose(
        x.numpy(), normalized(np.concatenate([d for d, _ in order]))[:7], rtol=1e-5, atol=1e-5
    )
    assert y.tolist() == sum((lab for _, lab in order), [])[:7]
    assert load_cifar10(tmp_path, split="train")[0].shape == (15, 3, 32, 32)


class Evil:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_load_cifar10_refuses_a_malicious_pickle(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(marker), "labels": [0]}, f, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|os|nt)\.system"):
        load_cifar10(tmp_path)
    assert not marker.exists()
    with open(folder / "test_batch", "wb") as f:  # an object other than an array is refused too
        pickle.dump({"data": nn.Linear(1, 1), "labels": [0]}, f)
    with pytest.raises(UnsafePickleError, match="not a genuine CIFAR-10 batch"):
        load_cifar10(tmp_path)


def test_load_cifar10_without_files_says_where_it_looked_and_never_downloads(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("load_cifar10 tried to download without download=True")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path / "nowhere", split="train")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py" / "test_batch") in message
    assert "No download is attempted" in message and "--dataset digits" in message
    with pytest.raises(ValueError, match="split must be"):
        load_cifar10(tmp_path, split="validation")
    write_fake_cifar(tmp_path / "cifar-10-batches-py", {"test_batch": 2})
    with pytest.raises(FileNotFoundError, match="data_batch_1 is missing"):
        load_cifar10(tmp_path, split="train")


# --- digits ------------------------------------------------------------------------------------


def test_digits_are_aligned_split_and_deterministic():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x_tr, y_tr = load_digits_dataset("train")
    x_te, y_te = load_digits_dataset("test")
    assert x_tr.shape == (1347, 3, 32, 32) and x_te.shape == (450, 3, 32, 32)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert torch.equal(x_tr[:, 0], x_tr[:, 2])  # grey images copied to 3 channels
    assert float(x_tr.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(x_tr.std()) == pytest.approx(1.0, rel=1e-4)
    # Oracle for alignment: 4x4 average pooling brings an image back near its 8x8 original;
    # its nearest original (by correlation) must be a distinct digit with the same label.
    originals = digits.images.reshape(len(digits.images), -1)
    originals = (originals - originals.mean(1, keepdims=True)) / originals.std(1, keepdims=True)
    matched = []
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        small = F.avg_pool2d(x[:, :1], 4).reshape(len(x), -1).double().numpy()
        small = (small - small.mean(1, keepdims=True)) / small.std(1, keepdims=True)
        best = np.argmax(small @ originals.T, axis=1)
        assert (digits.target[best] == y.numpy()).mean() > 0.99
        matched.append(set(best.tolist()))
    assert len(matched[0] | matched[1]) > 0.98 * len(originals)  # nearly all distinct digits
    assert len(matched[0] & matched[1]) < 0.02 * len(originals)  # and the splits are disjoint
    # stratified, deterministic, and the seed matters
    per_class = np.bincount(digits.target, minlength=10)
    in_test = np.bincount(y_te.numpy(), minlength=10)
    assert np.all(np.abs(in_test - 0.25 * per_class) <= 1)
    x_again, y_again = load_digits_dataset("test")
    assert torch.equal(x_again, x_te) and torch.equal(y_again, y_te)
    assert not torch.equal(load_digits_dataset("test", seed=1)[1], y_te)
    with pytest.raises(ValueError, match="split must be"):
        load_digits_dataset("val")


# --- training and accuracy ---------------------------------------------------------------------


def test_one_epoch_on_a_few_hundred_digits_lowers_the_loss():
    x, y = load_digits_dataset("train")
    data = (x[:256], y[:256])

    def full_loss(model):  # batch statistics, on a copy so running stats stay untouched
        with torch.no_grad():
            return float(classification_loss(copy.deepcopy(model).train(), data))

    model = resnet20(skip=True, seed=0)
    before = full_loss(model)
    info = train_classifier(model, data, epochs=1, batch_size=32, lr=0.05, seed=0)
    assert info["steps"] == 8 and len(info["losses"]) == 8 and len(info["epoch_losses"]) == 1
    assert info["epoch_losses"][0] == pytest.approx(np.mean(info["losses"]))
    assert full_loss(model) < 0.95 * before
    assert model.training


def test_training_is_deterministic_given_the_seed():
    x, y = load_digits_dataset("train")
    data = (x[:65], y[:65])  # 2 batches of 32 and a last one of a single image, skipped
    runs = []
    for seed in (0, 0, 1):
        model = resnet20(skip=False, seed=0)
        info = train_classifier(model, data, epochs=1, batch_size=32, seed=seed, schedule="step")
        runs.append((info["losses"], model.state_dict()))
    assert len(runs[0][0]) == 2
    assert runs[0][0] == runs[1][0]
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k]), k
    assert runs[0][0] != runs[2][0]  # a different seed visits the data in another order
    with pytest.raises(ValueError, match="schedule must be"):
        train_classifier(resnet20(seed=0), data, epochs=1, schedule="linear")


class ByFirstPixel(nn.Module):
    """Predicts class ``round(x[:, 0, 0, 0])`` (3 classes); a dropout layer shows the mode."""

    def __init__(self):
        super().__init__()
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        score = x[:, 0, 0, 0].round().long()
        return self.dropout(F.one_hot(score, 3).float())


def test_accuracy_counts_correct_predictions_in_eval_mode():
    pixel = torch.tensor([0.0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    x = pixel.view(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 1, 2, 0, 1])  # 6 of 10 right
    model = ByFirstPixel().train()
    assert accuracy(model, (x, y)) == pytest.approx(0.6)
    assert accuracy(model, (x, y), batch_size=3) == pytest.approx(0.6)
    assert accuracy(model, [(x[:4], y[:4]), (x[4:], y[4:])]) == pytest.approx(0.6)
    assert model.training  # mode restored
    assert float(batch_accuracy(model.eval(), (x, y))) == pytest.approx(0.6)
