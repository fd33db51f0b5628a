"""End-to-end tests of `saddles landscape` (typer's CliRunner, files in a temporary folder)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from saddles.cli import app
from saddles.landscape import Landscape

runner = CliRunner()

FACTORY = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F

    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))

    def loss(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    def accuracy(model, batch):
        return (model(batch[0]).argmax(-1) == batch[1]).float().mean()

    def not_a_model():
        return 42
    """
)


@pytest.fixture
def files(tmp_path):
    """A factory module, a trained-looking checkpoint and a data file."""
    (tmp_path / "factory.py").write_text(FACTORY)
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(40, 4, generator=gen), torch.randint(0, 3, (40,), generator=gen)
    torch.save((x, y), tmp_path / "data.pt")
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=y.numpy())
    return tmp_path, model, (x, y)


def _run(*args):
    result = runner.invoke(app, ["landscape", *map(str, args)])
    # error messages come in a box that wraps lines; keep just the words
    result.text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())
    return result


def test_help_lists_the_options():
    result = _run("--help")
    assert result.exit_code == 0
    for option in ("--model", "--checkpoint", "--data", "--grid", "--scattered", "--resume"):
        assert option in result.text


def test_writes_a_run_directory_matching_the_library(files):
    tmp, model, data = files
    out = tmp / "run"
    result = _run(
        "--model", f"{tmp / 'factory.py'}:make", "--checkpoint", tmp / "ckpt.pt",
        "--data", tmp / "data.pt", "--grid", "7,5", "--range", "-2,2", "--range", "-1,1",
        "--seed", "3", "--metric", f"accuracy={tmp / 'factory.py'}:accuracy",
        "--engine", "sequential", "--out", out, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "35 points (grid 7x5)" in result.text
    assert (out / "config.json").exists() and any((out / "chunks").iterdir())
    land = Landscape.load(out / "landscape")
    assert land.shape == (7, 5) and set(land.metrics) == {"accuracy"}
    # the same landscape through the library
    from saddles import directions, sampling
    from saddles.landscape import evaluate

    dirs = directions.random_directions(model, 2, seed=3)
    coords = sampling.grid((7, 5), [(-2, 2), (-1, 1)])
    expected = evaluate(model, torch.nn.CrossEntropyLoss(), data, dirs, coords, progress=False)
    np.testing.assert_allclose(land.loss, expected.loss, rtol=1e-6)
    # the saved loss is grid-shaped, so `saddles topology` reads it directly
    topo = runner.invoke(app, ["topology", str(out / "landscape.npz"), "--json"])
    assert topo.exit_code == 0, topo.output
    assert json.loads(topo.output)["shape"] == [7, 5]


def test_resume_scattered_npz_data_and_a_loss_function(files):
    tmp, _, _ = files
    args = [
        "--model", f"{tmp / 'factory.py'}:make", "--data", tmp / "data.npz",
        "--loss", f"{tmp / 'factory.py'}:loss", "--directions", "3", "--scattered", "40",
        "--region", "ball", "--batch-size", "16", "--out", tmp / "run", "--quiet",
    ]  # fmt: skip
    first = _run(*args)
    assert first.exit_code == 0, first.output
    assert "40 points (scattered points) in 3-D" in first.text
    again = _run(*args)
    assert again.exit_code == 2 and "--resume" in again.text
    resumed = _run(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    other = _run(*[a if a != "40" else "41" for a in args], "--resume")
    assert other.exit_code == 2 and "differs in coordinates" in other.text


def test_interpolation_towards_another_checkpoint(files):
    tmp, model, data = files
    torch.manual_seed(5)
    target = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    torch.save(target.state_dict(), tmp / "target.pt")
    result = _run(
        "--model", f"{tmp / 'factory.py'}:make", "--checkpoint", tmp / "ckpt.pt",
        "--data", tmp / "data.pt", "--to", tmp / "target.pt", "--grid", "11", "--range", "0,1",
        "--out", tmp / "run", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    land = Landscape.load(tmp / "run" / "landscape")
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        np.testing.assert_allclose(land.loss[0], float(ce(model(data[0]), data[1])), rtol=1e-6)
        np.testing.assert_allclose(land.loss[-1], float(ce(target(data[0]), data[1])), rtol=1e-6)


def test_a_checkpoint_that_is_not_a_state_dict_is_refused(files):
    tmp, model, _ = files
    common = ["--model", f"{tmp / 'factory.py'}:make", "--data", tmp / "data.pt", "--quiet"]
    torch.save([torch.zeros(3)], tmp / "list.pt")
    result = _run(*common, "--checkpoint", tmp / "list.pt", "--out", tmp / "a")
    assert result.exit_code == 2 and "does not hold a state dict" in result.text
    torch.save(model, tmp / "pickled_module.pt")  # a whole module: needs unpickling, refused
    result = _run(*common, "--checkpoint", tmp / "pickled_module.pt", "--out", tmp / "b")
    assert result.exit_code == 2 and "plain state dict" in result.text
    wrong = {"0.weight": torch.zeros(2, 2)}
    torch.save(wrong, tmp / "wrong.pt")
    result = _run(*common, "--checkpoint", tmp / "wrong.pt", "--out", tmp / "c")
    assert result.exit_code == 2 and "does not match the model" in result.text


def test_other_bad_inputs_are_named(files):
    tmp, _, _ = files
    common = ["--data", tmp / "data.pt", "--quiet", "--out", tmp / "x"]
    result = _run("--model", f"{tmp / 'factory.py'}:not_a_model", *common)
    assert result.exit_code == 2 and "not a torch.nn.Module" in result.text
    result = _run("--model", "no_such_module_xyz:make", *common)
    assert result.exit_code == 2 and "cannot import" in result.text
    model = ["--model", f"{tmp / 'factory.py'}:make"]
    result = _run(*model, "--data", tmp / "missing.pt", "--out", tmp / "y")
    assert result.exit_code == 2 and "no such file" in result.text
    result = _run(*model, *common, "--grid", "5x5")
    assert result.exit_code == 2 and "51,31" in result.text
    result = _run(*model, *common, "--range", "1")
    assert result.exit_code == 2 and "low,high" in result.text
    result = _run(*model, *common, "--grid", "5", "--range", "1,-1")
    assert result.exit_code == 2 and "low < high" in result.text
    torch.save(torch.zeros(0, 4), tmp / "empty.pt")
    result = _run(*model, "--data", tmp / "empty.pt", "--out", tmp / "z", "--quiet")
    assert result.exit_code == 2 and "no samples" in result.text


def test_importing_the_command_does_not_import_torch():
    code = "import sys, saddles.cli.landscape; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_draws_the_landscape_over_its_coordinates(files):
    tmp, _, _ = files
    args = ["--model", f"{tmp / 'factory.py'}:make", "--checkpoint", tmp / "ckpt.pt",
            "--data", tmp / "data.pt", "--quiet", "--engine", "sequential"]  # fmt: skip
    two = _run(*args, "--grid", "9", "--out", tmp / "two", "--plot", tmp / "figs")
    assert two.exit_code == 0, two.output
    assert (tmp / "figs" / "two-contour.png").stat().st_size > 1000
    assert (tmp / "figs" / "two-surface.png").exists()
    one = _run(*args, "--directions", "1", "--grid", "11", "--out", tmp / "one", "--plot",
               tmp / "figs")  # fmt: skip
    assert one.exit_code == 0, one.output
    assert (tmp / "figs" / "one-curve.png").exists() and "figures:" in one.text
    (tmp / "afile").write_text("x")
    bad = _run(*args, "--grid", "5", "--out", tmp / "three", "--plot", tmp / "afile")
    assert bad.exit_code == 2 and "--plot" in bad.text


def test_eval_tokens_auto_saves_and_plots_the_tokens_per_point(files):
    tmp, _, _ = files
    args = ["--model", f"{tmp / 'factory.py'}:make", "--checkpoint", tmp / "ckpt.pt",
            "--data", tmp / "data.pt", "--quiet", "--grid", "7", "--span", "3"]  # fmt: skip
    auto = _run(*args, "--eval-tokens", "auto", "--stderr-target", "0.05", "--out",
                tmp / "auto", "--plot", tmp / "figs")  # fmt: skip
    assert auto.exit_code == 0, auto.output
    assert "eval_tokens auto:" in auto.text and "standard error of the loss" in auto.text
    land = Landscape.load(tmp / "auto")
    # tokens as saddles counts them (samples x the first tensor's second dimension: 40 x 4);
    # the doubling prefixes hold 3, 5, 10, 20 and 40 samples
    prefixes = land.info["data"]["prefix_tokens"]
    assert prefixes == [12, 20, 40, 80, 160]
    assert set(land.tokens) <= set(prefixes) and land.tokens.min() < 160
    assert land.info["data"]["stderr_target_relative"] == 0.05
    assert (tmp / "figs" / "auto-tokens.png").stat().st_size > 1000
    fixed = _run(*args, "--eval-tokens", "20", "--out", tmp / "fixed")
    assert fixed.exit_code == 0, fixed.output
    assert Landscape.load(tmp / "fixed").tokens is None


BOMB = "raise SystemExit('the model module was imported')\n"


@pytest.mark.parametrize(
    "args, option",
    [
        (["--grid", "1"], "--grid"),
        (["--resolution", "5,5,5", "--directions", "2"], "--grid"),
        (["--span", "0"], "--span"),
        (["--span", "1", "--range", "-1,1"], "--span"),
        (["--range", "-1,1", "--range", "0,1", "--range", "0,2"], "--range"),
        (["--directions", "5"], "--directions"),
        (["--scattered", "8", "--region", "ball", "--radius", "-1"], "--radius"),
        (["--to", "missing.pt"], "--to"),
        (["--max-memory", "lots"], "--max-memory"),
        (["--metric", "acc"], "--metric"),
        (["--device", "bogus"], "--device"),
        (["--eval-tokens", "lots"], "--eval-tokens"),
        (["--eval-tokens", "0"], "--eval-tokens"),
        (["--eval-tokens", "auto", "--stderr-target", "0"], "--stderr-target"),
    ],
)
def test_options_are_checked_before_the_model_is_imported(files, args, option):
    tmp, *_ = files
    (tmp / "bomb.py").write_text(BOMB)  # importing it ends the command with another message
    result = _run("--model", f"{tmp / 'bomb.py'}:make", "--data", tmp / "data.pt",
                  "--out", tmp / "o", "--quiet", *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "imported" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and option in errors[0], result.stderr


def test_defaults_are_the_analysis_config_defaults(files):
    from dataclasses import fields

    from saddles.runs.config import AnalysisConfig

    default = {f.name: f.default for f in fields(AnalysisConfig)}
    tmp, *_ = files
    model = ["--model", f"{tmp / 'factory.py'}:make", "--data", tmp / "data.pt", "--quiet"]
    result = _run(*model, "--directions", "1", "--out", tmp / "a")
    assert result.exit_code == 0, result.output
    land = Landscape.load(tmp / "a")
    assert land.shape == (default["resolution"],)
    assert land.coords.min() == -default["span"] and land.coords.max() == default["span"]
    assert _run("--help").text.count(str(default["resolution"])) >= 1
    # --span and the older --range say the same thing
    result = _run(*model, "--directions", "1", "--grid", "5", "--span", "0.5", "--out", tmp / "b")
    assert result.exit_code == 0, result.output
    again = _run(*model, "--directions", "1", "--grid", "5", "--range", "-0.5,0.5",
                 "--out", tmp / "c")  # fmt: skip
    assert again.exit_code == 0, again.output
    b, c = Landscape.load(tmp / "b"), Landscape.load(tmp / "c")
    np.testing.assert_array_equal(b.coords, c.coords)
    np.testing.assert_array_equal(b.loss, c.loss)
    assert b.coords.max() == 0.5
