"""`saddles run config.yaml` on a model given by a factory file, a checkpoint and a data file."""

from __future__ import annotations

import csv
import textwrap

import torch
from typer.testing import CliRunner

from saddles.cli import app

runner = CliRunner()

FACTORY = """
import torch

def make_net():
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
"""


def setup_files(tmp_path):
    (tmp_path / "netdef.py").write_text(FACTORY)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    x = torch.randn(40, 4)
    torch.save((x, torch.randint(0, 3, (40,))), tmp_path / "batch.pt")
    return net


def write_config(tmp_path, extra=""):
    text = textwrap.dedent("""
        name: tiny
        model: netdef.py:make_net
        checkpoint: weights.pt
        data: batch.pt
        criterion: cross_entropy
        batch_size: 16
        out: out
        analysis:
          resolution: 7
          representations: [grid-full, gabriel]
          hessian_top_k: 2
          trace_matvecs: 9
          density_lanczos: 10
    """) + extra  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_run_writes_the_run_directory(tmp_path, monkeypatch):
    setup_files(tmp_path)
    monkeypatch.chdir("/")  # every path in the file is read relative to the file
    result = runner.invoke(app, ["run", str(write_config(tmp_path)), "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 and {r["model"] for r in rows} == {"tiny"}
    assert (out / "tiny" / "config.yaml").read_text().count("resolution: 7") == 1
    assert (out / "report.html").exists()
    assert "report:" in result.output


def test_run_rejects_bad_configurations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    setup_files(tmp_path)
    result = runner.invoke(app, ["run", str(write_config(tmp_path, "colour: red\n"))])
    assert result.exit_code != 0 and "unknown key" in result.output
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("resolution: 7", "resolutoin: 7"))
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code != 0 and "resolutoin" in result.output
    torch.save({"not": "tensors"}, tmp_path / "weights.pt")
    result = runner.invoke(app, ["run", str(write_config(tmp_path))])
    assert result.exit_code != 0 and "state dict" in result.output
    result = runner.invoke(app, ["run", str(tmp_path / "missing.yaml")])
    assert result.exit_code != 0 and "no such configuration" in result.output
