"""`saddles experiment pinn|resnet` at tiny scale, as a user would run them."""

from __future__ import annotations

import csv

import torch
from typer.testing import CliRunner

from saddles.cli import app

runner = CliRunner()


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_pinn_experiment_runs_resumes_and_reports(tmp_path):
    out = tmp_path / "pinn"
    args = ["experiment", "pinn", "--out", str(out), "--betas", "1,2,3", "--max-iter", "30",
            "--resolution", "7", "--representations", "grid-full,knn", "--quiet"]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        rows = read_csv(out / "metrics.csv")
        assert len(rows) == 3 * 2 * 2
        assert {r["beta"] for r in rows} == {"1.0", "2.0", "3.0"}
        assert float(rows[0]["rel_l2"]) > 0 and float(rows[0]["hessian_trace"]) != 0
        html = (out / "report.html").read_text()
        for section in ("Configuration", "Models", "Metrics", "Relations", "Run"):
            assert f"<h2>{section}</h2>" in html
        assert len(list((out / "beta-2").glob("analysis-*/figures/solution.png"))) == 1
        # A second run reuses the checkpoints and landscapes and gives the same numbers.
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        again = read_csv(out / "metrics.csv")
        assert [r["n_minima"] for r in again] == [r["n_minima"] for r in rows]
        assert [r["rel_l2"] for r in again] == [r["rel_l2"] for r in rows]
        # Other analysis settings reuse the trained models in a separate analysis directory.
        result = runner.invoke(app, [*args[:-1], "--resolution", "5", "--quiet"])
        assert result.exit_code == 0, result.output
        assert len(list((out / "beta-2").glob("analysis-*"))) == 2
        # A different training setting in the same directory is refused with a message.
        result = runner.invoke(app, [*args[:-1], "--n-f", "50", "--quiet"])
        assert (
            result.exit_code != 0
            and result.exception is None
            or isinstance(result.exception, SystemExit)
        )
        assert "trained with" in result.output
    finally:
        torch.set_num_threads(threads)


def test_resnet_experiment_on_digits(tmp_path):
    out = tmp_path / "resnet"
    result = runner.invoke(app, [
        "experiment", "resnet", "--out", str(out), "--dataset", "digits", "--seeds", "0",
        "--epochs", "1", "--train-images", "96", "--eval-images", "32", "--resolution", "5",
        "--directions", "random", "--no-hessian", "--representations", "grid-full", "--quiet",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "metrics.csv")
    assert [r["architecture"] for r in rows] == ["skip", "no-skip"]
    assert (out / "report.html").exists()


def test_cifar_without_files_says_what_to_do(tmp_path):
    result = runner.invoke(app, ["experiment", "resnet", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--data-dir" in result.output and "digits" in result.output
    result = runner.invoke(app, ["experiment", "resnet", "--out", str(tmp_path),
                                 "--data-dir", str(tmp_path / "nothing")])  # fmt: skip
    assert result.exit_code != 0
    assert "digits" in result.output
