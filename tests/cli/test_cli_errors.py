"""The CLI's exit-code policy and its one-line errors, command by command.

Exit status 2: the input was refused before anything was computed; 1: the computation failed.
Every refusal is one line on stderr that names the problem, never a traceback.
"""

from __future__ import annotations

import math
import pickle
import re
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from saddles.cli import app

runner = CliRunner()

FACTORIES = textwrap.dedent(
    """
    import torch

    def mlp():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))

    def broken():
        raise ZeroDivisionError("the factory is broken")

    def failing_loss(model, batch):
        if not torch.is_grad_enabled() or getattr(model, "_calls", 0) >= 1:
            raise RuntimeError("out of memory (simulated)")
        model._calls = 1
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
    """
)


class Opaque:  # an arbitrary object that a safe checkpoint loader must refuse
    pass


@pytest.fixture
def files(tmp_path, monkeypatch):
    (tmp_path / "errfactory.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    state = model.state_dict()
    torch.save(state, tmp_path / "ckpt.pt")
    nan_state = {k: v.clone() for k, v in state.items()}
    nan_state["2.bias"][0] = math.nan
    torch.save(nan_state, tmp_path / "nan.pt")
    torch.save({"0.weight": torch.zeros(6, 4), "evil": Opaque()}, tmp_path / "pickled.pt")
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a safetensors file at all")
    (tmp_path / "empty.pt").write_bytes(b"")
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    torch.save((x, y), tmp_path / "data.pt")
    torch.save(x, tmp_path / "inputs_only.pt")
    torch.save(np.zeros(3), tmp_path / "numpy_data.pt")  # a pickled numpy array
    (tmp_path / "a_file").write_text("in the way")
    return tmp_path


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    result.plain = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())
    return result


def refused(result, *words: str, code: int = 2) -> None:
    """Exit status ``code``, one line of error naming ``words``, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], (word, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)


MODEL = ("--model", "errfactory:mlp")


@pytest.fixture(params=["landscape", "hessian"])
def command(request, files):
    """`landscape` or `hessian`, with quick settings and a fresh output folder."""
    quick = {
        "landscape": ["--grid", "3", "--quiet"],
        "hessian": ["--top-k", "1", "--n-lanczos", "4", "--trace-matvecs", "4"],
    }[request.param]

    def run(*args, out="out"):
        return invoke(request.param, *quick, "--out", out, *args)

    return run


def test_corrupt_and_empty_checkpoints(command):
    data = ("--data", "data.pt")
    refused(command(*MODEL, *data, "--checkpoint", "corrupt.safetensors"),
            "--checkpoint", "corrupt.safetensors")  # fmt: skip
    refused(command(*MODEL, *data, "--checkpoint", "empty.pt"), "--checkpoint", "empty")


def test_pickled_checkpoints_and_data_are_refused_in_our_own_words(command):
    result = command(*MODEL, "--data", "data.pt", "--checkpoint", "pickled.pt")
    refused(result, "--checkpoint", "Opaque", "state_dict")
    assert "Weights only load failed" not in result.output and "\x1b" not in result.output
    result = command(*MODEL, "--data", "numpy_data.pt", "--checkpoint", "ckpt.pt")
    refused(result, "--data", "numpy")
    assert "safe_globals" not in result.output and "weights_only" not in result.output


def test_bad_devices(command):
    data = ("--data", "data.pt", "--checkpoint", "ckpt.pt")
    result = command(*MODEL, *data, "--device", "bogus")
    refused(result, "--device", "bogus")
    assert "Expected one of" not in result.output
    if not torch.cuda.is_available():
        refused(command(*MODEL, *data, "--device", "cuda"), "--device", "CUDA")


def test_nan_weights_are_refused_before_computing(command):
    refused(command(*MODEL, "--data", "data.pt", "--checkpoint", "nan.pt"), "2.bias", "NaN")


def test_a_failing_model_factory_is_named(command):
    refused(command("--model", "errfactory:broken", "--data", "data.pt"),
            "--model", "errfactory:broken", "the factory is broken")  # fmt: skip


def test_data_without_targets(command):
    refused(command(*MODEL, "--data", "inputs_only.pt", "--checkpoint", "ckpt.pt"),
            "--data", "targets")  # fmt: skip


def test_out_naming_a_file(command):
    refused(command(*MODEL, "--data", "data.pt", "--checkpoint", "ckpt.pt", out="a_file"),
            "--out", "a_file")  # fmt: skip


def test_no_checkpoint_warns_once(command):
    result = command(*MODEL, "--data", "data.pt")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "--checkpoint" in line]
    assert len(warnings) == 1 and "random initialization" in warnings[0], result.stderr


def test_a_failure_while_computing_exits_1(command):
    result = command(*MODEL, "--data", "data.pt", "--checkpoint", "ckpt.pt",
                     "--loss", "errfactory:failing_loss")  # fmt: skip
    refused(result, "out of memory", code=1)


def test_hessian_top_k_above_the_parameter_count_is_said(files):
    result = invoke("hessian", *MODEL, "--data", "data.pt", "--checkpoint", "ckpt.pt",
                    "--top-k", "100", "--n-lanczos", "4", "--trace-matvecs", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "--top-k" in line]
    assert len(notes) == 1 and "51" in notes[0], result.stderr
    assert len(result.stdout.splitlines()) < 25, result.stdout  # no wall of residuals


# --- topology ------------------------------------------------------------------------------


def test_topology_plot_onto_a_file(tmp_path):
    field = tmp_path / "field.npy"
    np.save(field, np.add.outer(np.arange(5.0) ** 2, np.arange(5.0) ** 2))
    (tmp_path / "taken").write_text("")
    result = invoke("topology", field, "--plot", tmp_path / "taken")
    refused(result, "--plot", "taken")
    assert "Errno" not in result.output


def test_topology_failure_while_computing_exits_1(tmp_path, monkeypatch):
    import saddles.topology

    def boom(*args, **kwargs):
        raise MemoryError("no memory left")

    monkeypatch.setattr(saddles.topology, "compute_metrics", boom)
    field = tmp_path / "field.npy"
    np.save(field, np.arange(5.0))
    refused(invoke("topology", field), "no memory left", code=1)


def test_topology_bad_input_exits_2(tmp_path):
    refused(invoke("topology", tmp_path / "missing.npy"), "no such file")
    result = invoke("topology", tmp_path / "x.npy", "--representation", "bogus")
    assert result.exit_code == 2


# --- run -------------------------------------------------------------------------------------

CONFIG = """
model: errfactory.py:mlp
checkpoint: ckpt.pt
data: data.pt
criterion: cross_entropy
out: out
analysis:
  resolution: 5
  directions: [random]
  representations: [grid-full]
  hessian: false
"""


def config(tmp_path, text=CONFIG, **replace):
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('  hessian: "no"\n', ["hessian", "true or false", "'no'"]),
        ("  loops: 1\n", ["loops", "true or false"]),
        ("  ignore_1d: yes please\n", ["ignore_1d", "true or false"]),
    ],
)
def test_run_booleans_must_be_booleans(files, text, words):
    path = config(files, CONFIG.replace("  hessian: false\n", text))
    refused(invoke("run", path), *words)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("batch_size: abc\n", ["batch_size", "abc"]),
        ("batch_size: 0\n", ["batch_size", "0"]),
        ("batch_size: -4\n", ["batch_size", "-4"]),
        ("batch_size: true\n", ["batch_size"]),
    ],
)
def test_run_batch_size_is_a_positive_integer(files, line, words):
    refused(invoke("run", config(files, CONFIG + line)), *words)


def test_run_analysis_must_be_a_mapping(files):
    text = CONFIG.split("analysis:")[0] + "analysis: 5\n"
    refused(invoke("run", config(files, text)), "analysis", "mapping")


def test_run_yaml_syntax_error_names_the_file(files):
    result = invoke("run", config(files, CONFIG + "model: [unclosed\n"))
    refused(result, "config.yaml")
    assert "<unicode string>" not in result.output


def test_run_given_a_directory(files):
    refused(invoke("run", files), str(files), "folder")


def test_run_checkpoint_problems(files):
    for name, word in (("corrupt.safetensors", "safetensors"), ("empty.pt", "empty")):
        path = config(files, **{"checkpoint: ckpt.pt": f"checkpoint: {name}"})
        refused(invoke("run", path), "checkpoint", name, word)


def test_run_without_checkpoint_warns_once(files):
    result = invoke("run", config(files, **{"checkpoint: ckpt.pt\n": ""}), "--quiet")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "checkpoint" in line]
    assert len(warnings) == 1 and "random initialization" in warnings[0], result.stderr


def test_run_failure_while_computing_exits_1(files, monkeypatch):
    import saddles.runs.analyze

    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(saddles.runs.analyze, "analyze", boom)
    refused(invoke("run", config(files), "--quiet"), "out of memory", code=1)


# --- experiment --------------------------------------------------------------------------------


def _cifar_folder(tmp_path, payload: bytes):
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ["test_batch", *(f"data_batch_{i}" for i in range(1, 6))]:
        (folder / name).write_bytes(payload)
    return tmp_path / "cifar"


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    ("payload", "word"),
    [(b"\x80\x04 truncated", "CIFAR-10"), (pickle.dumps(Evil()), "refusing")],
)
def test_experiment_resnet_refuses_bad_cifar_files(tmp_path, payload, word):
    data_dir = _cifar_folder(tmp_path, payload)
    result = invoke("experiment", "resnet", "--out", tmp_path / "out", "--data-dir", data_dir,
                    "--quiet")  # fmt: skip
    refused(result, word)
    assert "this must never run" not in result.output


def test_experiment_unknown_choices_exit_2(tmp_path):
    result = invoke("experiment", "resnet", "--dataset", "imagenet", "--out", tmp_path)
    assert result.exit_code == 2 and "imagenet" in result.plain
    result = invoke("experiment", "lm", "--preset", "huge", "--out", tmp_path)
    assert result.exit_code == 2 and "huge" in result.plain


def test_experiment_failure_while_computing_exits_1(tmp_path, monkeypatch):
    import saddles.experiments.pinn

    def boom(*args, **kwargs):
        raise FloatingPointError("the loss diverged (simulated)")

    monkeypatch.setattr(saddles.experiments.pinn, "run_pinn_experiment", boom)
    refused(invoke("experiment", "pinn", "--out", tmp_path, "--quiet"), "diverged", code=1)


def test_debug_shows_the_traceback(files, monkeypatch):
    monkeypatch.setenv("SADDLES_DEBUG", "1")
    result = invoke("hessian", *MODEL, "--data", "data.pt", "--checkpoint", "pickled.pt")
    assert result.exit_code == 2 and "Traceback" in result.stderr
    assert "UnpicklingError" in result.stderr and "error: --checkpoint" in result.stderr
