"""ResNet-20 with and without skip connections: models, data, training and accuracy.

- :func:`resnet20`: the CIFAR ResNet-20 of He et al. 2016 ("Deep residual learning for image
  recognition", section 4.2): a 3x3 stem, 3 stages of 3 basic blocks with 16/32/64 channels,
  BatchNorm, and option-A shortcuts (identity; where the shape changes, a stride-2 subsample
  padded with zero channels), global average pooling and a linear head: 269,722 parameters.
  ``skip=False`` gives the same blocks without ``out + shortcut(x)``, as Li et al. 2018
  ("Visualizing the loss landscape of neural nets") did for ``resnet20_noshort``; option-A
  shortcuts have no parameters, so both variants have the same 269,722.
- :func:`load_cifar10`: the standard CIFAR-10 python files, read by a restricted unpickler
  that can only rebuild numpy arrays (the files are pickles; a plain ``pickle.load`` would run
  whatever a tampered file asks for). Nothing is downloaded unless asked.
- :func:`load_digits_dataset`: an offline substitute, scikit-learn's 8x8 digits upsampled to
  3x32x32, so the experiment runs anywhere.
- :func:`train_classifier` (SGD with momentum, cosine or step schedule, seeded) and
  :func:`accuracy`.

A batch is a tuple ``(images, labels)``: float32 ``(n, C, 32, 32)`` and int64 ``(n,)``, the
loss-protocol layout of :mod:`saddles.io.data` (``classification_loss`` is the loss in that form).
This module owns the ResNet experiment's models, data and training; the analysis of the trained
models belongs to the pipeline.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from saddles.experiments import load_checkpoint, save_checkpoint
from saddles.io.data import Batch, as_batches, cross_entropy_variance, with_variance
from saddles.names import DATASETS

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "UnsafePickleError",
    "accuracy",
    "batch_accuracy",
    "classification_loss",
    "load_checkpoint",
    "load_cifar10",
    "load_digits_dataset",
    "resnet20",
    "save_checkpoint",
    "train_classifier",
]

# --- the model ---------------------------------------------------------------------------------


class PadShortcut(nn.Module):
    """He et al.'s option-A shortcut: subsample by ``stride`` and pad with zero channels."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        if planes < in_planes or (planes - in_planes) % 2:
            raise ValueError(f"cannot pad {in_planes} channels to {planes} symmetrically")
        self.stride = stride
        self.pad = (planes - in_planes) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut when ``skip``, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, skip: bool):
        super().__init__()
        self.skip = skip
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if not skip:
            self.shortcut = None
        elif stride != 1 or in_planes != planes:
            self.shortcut = PadShortcut(in_planes, planes, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    """Stem, three stages of basic blocks (16/32/64 channels), global pooling, linear head."""

    def __init__(self, blocks_per_stage: int, skip: bool, num_classes: int, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1, skip))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet20(
    skip: bool = True, num_classes: int = 10, in_channels: int = 3, seed: int | None = None
) -> ResNet:
    """CIFAR ResNet-20 (He et al. 2016), with (``skip=True``) or without skip connections.

    Convolutions are initialized with Kaiming-normal (fan-out), BatchNorm with weight 1 and
    bias 0, as in Li et al.'s code; the linear head keeps PyTorch's default. ``seed`` seeds
    ``torch`` first when given.
    """
    if num_classes < 1 or in_channels < 1:
        raise ValueError(
            f"num_classes and in_channels must be positive, got {num_classes}, {in_channels}"
        )
    if seed is not None:
        torch.manual_seed(seed)
    model = ResNet(3, bool(skip), num_classes, in_channels)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


# --- CIFAR-10 ----------------------------------------------------------------------------------

#: Per-channel mean and standard deviation of the CIFAR-10 training images (pixels in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}

# The only globals a CIFAR-10 batch file needs: numpy's array reconstruction and the ndarray and
# dtype classes, under numpy 1 and numpy 2 module names. Two more pure constructors let a copy
# re-saved from Python 3 load too: `_codecs.encode` (how protocol 2 writes bytes) and numpy's
# `_frombuffer` (how protocol 5 writes arrays).
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    *((f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for a global that a CIFAR-10 file never needs (a ``ValueError`` too: the
    file is refused as input, like any other file that is not a CIFAR-10 batch)."""


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build dicts, lists, strings, numbers and numpy arrays only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: a CIFAR-10 file holds only numpy arrays, lists "
            "and strings, so this file is not a genuine CIFAR-10 batch"
        )


def _read_batch_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data (n, 3072) uint8, labels (n,) int64)`` from one CIFAR-10 python batch file."""
    with open(path, "rb") as f:
        try:
            entry = _ArrayUnpickler(f, encoding="latin1").load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path}: {exc}") from exc
        except Exception as exc:  # a truncated or corrupt pickle raises one of many types
            raise ValueError(
                f"{path} is not a CIFAR-10 batch: it cannot be read as one "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    if not isinstance(entry, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch: it holds a {type(entry).__name__}")

    def field(key: str) -> Any:
        for k in (key, key.encode()):
            if k in entry:
                return entry[k]
        raise ValueError(f"{path} is not a CIFAR-10 batch: it has no '{key}' entry")

    data = np.asarray(field("data"))
    labels = np.asarray(field("labels"), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: 'data' must be uint8 of shape (n, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    return data, labels


def _cifar_folder(data_dir: Path) -> Path | None:
    """The folder holding the batch files: ``data_dir`` itself or its ``cifar-10-batches-py``."""
    for folder in (data_dir / CIFAR10_FOLDER, data_dir):
        if (folder / "test_batch").is_file():
            return folder
    return None


def load_cifar10(
    data_dir: str | os.PathLike,
    split: str = "test",
    n: int | None = None,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 as one batch ``(images, labels)``: float32 ``(n, 3, 32, 32)`` normalized by
    :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`, and int64 labels.

    ``data_dir`` is the folder that holds ``cifar-10-batches-py`` (or that folder itself);
    ``split`` is ``"train"`` (``data_batch_1..5``, 50,000 images) or ``"test"`` (``test_batch``,
    10,000); ``n`` keeps the first ``n`` images. Nothing is downloaded unless ``download=True``,
    which fetches the official archive into ``data_dir`` (and checks its MD5).
    """
    if split not in _CIFAR10_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n is not None and n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    data_dir = Path(data_dir)
    folder = _cifar_folder(data_dir)
    if folder is None and download:
        download_cifar10(data_dir)
        folder = _cifar_folder(data_dir)
    if folder is None:
        raise FileNotFoundError(
            f"CIFAR-10 not found: looked for {data_dir / CIFAR10_FOLDER / 'test_batch'} and "
            f"{data_dir / 'test_batch'} (the python version of CIFAR-10). No download is "
            "attempted unless asked (download=True, or --download on the command line). To run "
            "without CIFAR-10, use --dataset digits (scikit-learn's digits, offline)."
        )
    datas, labels = [], []
    for name in _CIFAR10_FILES[split]:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10 {split} split incomplete: {path} is missing")
        d, y = _read_batch_file(path)
        datas.append(d)
        labels.append(y)
        if n is not None and sum(len(a) for a in datas) >= n:
            break
    data, label = np.concatenate(datas)[:n], np.concatenate(labels)[:n]
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    return (images - mean) / std, torch.from_numpy(label)


def download_cifar10(data_dir: str | os.PathLike) -> Path:
    """Download the official CIFAR-10 python archive and unpack it into ``data_dir``.

    The archive's MD5 is checked, and only regular files inside ``cifar-10-batches-py/`` are
    extracted. Returns the folder of batch files.
    """
    import urllib.request

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        with urllib.request.urlopen(CIFAR10_URL, timeout=60) as response, open(archive, "wb") as f:
            shutil.copyfileobj(response, f)
        md5 = hashlib.md5(archive.read_bytes()).hexdigest()
        if md5 != CIFAR10_MD5:
            raise ValueError(f"downloaded CIFAR-10 archive has MD5 {md5}, expected {CIFAR10_MD5}")
        with tarfile.open(archive, "r:gz") as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.isfile()
                and m.name.startswith(CIFAR10_FOLDER + "/")
                and ".." not in Path(m.name).parts
            ]
            out = data_dir / CIFAR10_FOLDER
            out.mkdir(exist_ok=True)
            for m in members:
                src = tar.extractfile(m)
                assert src is not None
                (out / Path(m.name).name).write_bytes(src.read())
    return data_dir / CIFAR10_FOLDER


# --- the offline substitute: scikit-learn's digits ---------------------------------------------


def load_digits_dataset(
    split: str = "train", seed: int = 0, test_fraction: float = 0.25, size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's handwritten digits (1,797 8x8 images, 10 classes) as CIFAR-shaped batches.

    Images are upsampled to ``size`` x ``size`` by bilinear interpolation
    (``align_corners=False``), copied to 3 channels, and standardized with the mean and standard
    deviation of the upsampled training split's pixels (the same two numbers for both splits).
    The split is stratified by class and fixed by ``seed``
    (``sklearn.model_selection.train_test_split``). Returns float32
    ``(n, 3, size, size)`` images and int64 labels.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError(
            "the digits dataset needs scikit-learn: pip install scikit-learn"
        ) from exc
    digits = load_digits()
    images = digits.images.astype(np.float32)  # (1797, 8, 8), values 0..16
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index, test_size=test_fraction, random_state=seed, stratify=labels
    )
    big = F.interpolate(
        torch.from_numpy(images)[:, None], size=(size, size), mode="bilinear", align_corners=False
    )
    train = big[torch.from_numpy(train_idx)]
    mean, std = train.mean(), train.std()
    chosen = torch.from_numpy(train_idx if split == "train" else test_idx)
    x = (big[chosen] - mean) / std
    return x.expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(labels[chosen])


# --- training and evaluation -------------------------------------------------------------------


def classification_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy of ``model(images)`` against ``labels``: the loss-protocol form."""
    images, labels = batch[0], batch[1]
    return F.cross_entropy(model(images), labels)


def _classification_stats(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`classification_loss` and its squared standard error over the batch's images."""
    images, labels = batch[0], batch[1]
    out = model(images)
    return F.cross_entropy(out, labels), cross_entropy_variance(out, labels)


with_variance(classification_loss, _classification_stats)


def batch_accuracy(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Fraction of a batch ``(images, labels)`` classified correctly, as a scalar tensor."""
    images, labels = batch[0], batch[1]
    return (model(images).argmax(dim=-1) == labels).to(torch.float32).mean()


def accuracy(model: nn.Module, data: Any, batch_size: int = 1024) -> float:
    """Accuracy over ``data`` (a batch ``(images, labels)`` or an iterable of batches) in eval
    mode, evaluated ``batch_size`` images at a time; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    correct, total = 0, 0
    try:
        with torch.no_grad():
            for batch in as_batches(data):
                images, labels = batch[0], batch[1]
                for i in range(0, len(labels), batch_size):
                    logits = model(images[i : i + batch_size])
                    correct += int((logits.argmax(-1) == labels[i : i + batch_size]).sum())
                    total += len(labels[i : i + batch_size])
    finally:
        model.train(was_training)
    return correct / total


def _schedule(name: str, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per step: cosine to zero, or He et al.'s x0.1 at 50% and 75%."""
    if name == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps))
    if name == "step":
        return lambda step: 0.1 ** ((step >= total_steps // 2) + (step >= 3 * total_steps // 4))
    if name == "constant":
        return lambda step: 1.0
    raise ValueError(f"schedule must be 'cosine', 'step' or 'constant', got {name!r}")


def train_classifier(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    batch_size: int = 128,
    lr: float = 0.1,
    seed: int = 0,
    *,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "cosine",
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    callback: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place with SGD (momentum, weight decay) on ``(images, labels)``.

    Each epoch visits the data in a random order drawn from a generator seeded with ``seed``
    (the last partial batch is kept unless it holds a single image, which BatchNorm cannot
    normalize); the learning rate follows ``schedule`` per step
    (``"cosine"`` to zero over the run, ``"step"``: x0.1 at 50% and 75% of the steps as in
    He et al., or ``"constant"``). ``augment(images, generator)`` may transform each batch;
    ``callback(epoch, step, loss)`` is called after every step. With the same seed and
    threads, two runs on CPU give the same weights.

    Returns ``losses`` (per step), ``epoch_losses`` (mean per epoch), ``steps``, ``seconds``
    and ``seconds_per_epoch``.
    """
    images, labels = train_data
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images, got {len(images)} and {len(labels)}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}"
        )
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(images) // batch_size + (len(images) % batch_size > 1)
    total_steps = epochs * steps_per_epoch
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(schedule, total_steps))
    device = next(model.parameters()).device
    losses: list[float] = []
    epoch_losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        start = len(losses)
        for i in range(0, len(images), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) == 1 and len(images) > 1:
                continue  # BatchNorm cannot normalize a batch of one
            x, y = images[idx], labels[idx]
            if augment is not None:
                x = augment(x, gen)
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if callback is not None:
                callback(epoch, len(losses), losses[-1])
        epoch_losses.append(float(np.mean(losses[start:])))
    seconds = time.perf_counter() - t0
    return {
        "losses": losses,
        "epoch_losses": epoch_losses,
        "steps": len(losses),
        "seconds": seconds,
        "seconds_per_epoch": seconds / epochs,
    }


# --- the experiment ------------------------------------------------------------------------


def _claims():
    """The paper's ResNet-20 claims (Xie et al. 2024, sec. 6.1 of the notes), the primary
    relations of this experiment: skip connections give fewer saddles and higher average
    persistence; saddles relate inversely, and average persistence directly, to accuracy,
    the top Hessian eigenvalue and the Hessian trace (as the notes state them)."""
    from saddles.runs.relate import Claim

    src = "Xie et al. 2024, ResNet-20"
    out = [
        Claim("n_saddles", "skip", -1, f"fewer saddles with skip connections ({src})"),
        Claim("average_persistence", "skip", 1,
              f"higher average persistence with skip connections ({src})"),
        Claim("average_persistence_relative", "skip", 1,
              "higher average persistence / value range with skips (scale-free companion)"),
    ]  # fmt: skip
    for q, name in (("accuracy", "accuracy"), ("hessian_top_eigenvalue", "top Hessian "
                    "eigenvalue"), ("hessian_trace", "Hessian trace")):  # fmt: skip
        out += [Claim("n_saddles", q, -1, f"saddles inversely related to {name} ({src})"),
                Claim("average_persistence", q, 1,
                      f"average persistence directly related to {name} ({src})")]  # fmt: skip
    return tuple(out)


#: The experiment's pre-stated (primary) relations; everything else is exploratory.
CLAIMS = _claims()

SEEDS = (0, 123, 123456, 2023)


def run_resnet_experiment(
    out_dir: str | Path,
    config: Any = None,
    *,
    dataset: str = "digits",
    data_dir: str | Path | None = None,
    download: bool = False,
    seeds: Sequence[int] = SEEDS,
    epochs: int = 10,
    eval_images: int = 1024,
    train_images: int | None = None,
    lr: float = 0.1,
    progress: bool = True,
) -> dict[str, Path]:
    """Xie et al.'s ResNet experiment: ResNet-20 with and without skips, one model per seed,
    each trained (or reused from the run directory), scored, and analyzed on a fixed evaluation
    batch of ``eval_images`` test images; then the metrics are related across models.

    ``dataset``: ``"cifar10"`` (needs ``data_dir`` with the standard python files) or
    ``"digits"`` (offline substitute, see :func:`load_digits_dataset`); ``train_images`` keeps
    the first that many training images (quick runs).

    ``seeds``: the training runs of each architecture (folders ``resnet20-<arch>-seed<s>``,
    reused when finished); rows name the configuration ``resnet20-<arch>`` as ``model`` and
    the run as ``train_seed``, so the summary is over training runs, then direction seeds
    (:func:`saddles.runs.summary.seed_summary`) and each run is one observation of the
    relations.
    """
    from rich.console import Console

    from saddles.experiments import trained_model
    from saddles.report.figures import write_figures
    from saddles.report.summary import summarize
    from saddles.runs.analyze import AnalysisConfig, analyze

    config = config or AnalysisConfig()
    out_dir = Path(out_dir)
    console = Console(quiet=not progress)
    started = time.perf_counter()
    if dataset == "cifar10":
        if data_dir is None:
            raise ValueError(
                "CIFAR-10 needs --data-dir pointing at the folder with cifar-10-batches-py; "
                "without the files, use --dataset digits (an offline substitute)"
            )
        train_data = load_cifar10(data_dir, "train", download=download)
        test_data = load_cifar10(data_dir, "test", download=download)
    elif dataset == "digits":
        train_data, test_data = load_digits_dataset("train"), load_digits_dataset("test")
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, not {dataset!r}")
    if train_images is not None:
        train_data = (train_data[0][:train_images], train_data[1][:train_images])
    n_eval = min(eval_images, len(test_data[1]))
    eval_batch = (test_data[0][:n_eval], test_data[1][:n_eval])
    analyses, figures = [], {}
    for skip in (True, False):
        arch = "skip" if skip else "no-skip"
        for seed in seeds:
            # one configuration per architecture, one training run (and folder) per seed
            name, run_name = f"resnet20-{arch}", f"resnet20-{arch}-seed{seed}"
            label = name if seed == seeds[0] else f"{name}, training seed {seed}"
            model_dir = out_dir / run_name
            analysis_dir = model_dir / f"analysis-{config.short_id()}"  # per configuration
            settings = {"dataset": dataset, "skip": skip, "seed": int(seed), "epochs": epochs,
                        "lr": lr, "train_images": train_images}  # fmt: skip

            def train(skip=skip, seed=seed):
                model = resnet20(skip=skip, seed=seed)
                info = train_classifier(model, train_data, epochs, lr=lr, seed=seed)
                return model, {k: v for k, v in info.items() if isinstance(v, (int, float))}

            t0 = time.perf_counter()
            model, info, loaded = trained_model(
                model_dir, settings, lambda skip=skip, seed=seed: resnet20(skip=skip, seed=seed),
                train,
            )  # fmt: skip
            acc = accuracy(model, test_data)
            with torch.no_grad():
                model.eval()
                test_loss = float(classification_loss(model, eval_batch))
            console.print(f"[bold]{run_name}[/]: {'loaded' if loaded else 'trained'} in "
                          f"{time.perf_counter() - t0:.1f} s, test accuracy {acc:.3f}")  # fmt: skip
            quality = {"architecture": arch, "skip": int(skip), "train_seed": int(seed),
                       "accuracy": acc, "error": 1 - acc, "eval_loss": test_loss}  # fmt: skip
            analysis = analyze(
                model, classification_loss, eval_batch, config, name=name, quality=quality,
                run_dir=analysis_dir, progress=progress,
            )  # fmt: skip
            figures[label] = write_figures(analysis, analysis_dir / "figures")
            analyses.append(analysis)
    info = {"experiment": f"ResNet-20 with and without skips, {dataset}", "epochs": epochs,
            "seeds": [int(s) for s in seeds], "evaluation images": n_eval,
            "device": config.device, "torch threads": torch.get_num_threads(),
            "wall seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    return summarize(analyses, out_dir, x_key="architecture", categorical=True,
                     y_metrics=["skip", "accuracy", "eval_loss"],
                     title=f"ResNet-20 with and without skip connections ({dataset})",
                     figures=figures, info=info, claims=CLAIMS,
                     claims_source="the paper's ResNet-20 claims, notes sec. 6.1")  # fmt: skip
