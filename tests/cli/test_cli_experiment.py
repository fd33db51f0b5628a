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


def test_pinn_train_seeds_are_separate_models_resumed_not_retrained(tmp_path):
    """--train-seeds 2: two trained models per beta, rows carry train_seed, the summary is
    hierarchical with variance shares; adding a third seed trains only the new ones."""
    from saddles.experiments import pinn

    out = tmp_path / "pinn"
    base = ["experiment", "pinn", "--out", str(out), "--betas", "1,2,3", "--max-iter", "5",
            "--resolution", "5", "--representations", "grid-full", "--direction-seeds", "2",
            "--directions", "random", "--quiet"]  # fmt: skip
    threads = torch.get_num_threads()
    trained = []
    original = pinn.train_pinn

    def counting(beta, seed=0, **kw):
        trained.append((beta, seed))
        return original(beta, seed=seed, **kw)

    try:
        pinn.train_pinn = counting
        result = runner.invoke(app, [*base, "--train-seeds", "2"])
        assert result.exit_code == 0, result.output
        assert sorted(trained) == [(b, s) for b in (1.0, 2.0, 3.0) for s in (0, 1)]
        rows = read_csv(out / "metrics.csv")
        assert len(rows) == 3 * 2 * 2  # betas x training seeds x direction seeds
        assert {r["train_seed"] for r in rows} == {"0", "1"}
        assert {r["model"] for r in rows} == {"beta=1", "beta=2", "beta=3"}
        assert (out / "beta-2-seed1" / "model.safetensors").exists()
        # the two training runs are different models: different initial weights
        by_seed = {r["train_seed"]: r["rel_l2"] for r in rows if r["model"] == "beta=2"}
        assert by_seed["0"] != by_seed["1"]
        summary = read_csv(out / "summary.csv")
        assert {r["n_train_seeds"] for r in summary} == {"2"}
        assert all(r["interval"] == "training seeds, then direction seeds" for r in summary)
        share = float(summary[0]["rel_l2_share_training"])
        assert share == 1.0  # the error is one number per training run: all of its spread
        relations = read_csv(out / "relations.csv")
        assert {r["n"] for r in relations if r["y"] == "beta"} == {"6"}  # runs, not models
        assert "train seeds" in result.output and "train share" in result.output
        html = (out / "report.html").read_text()
        assert "Over training seeds, then direction seeds" in html
        assert "beta=2, training seed 1" in html
        # Resume with a third seed: only the new training runs are trained.
        trained.clear()
        result = runner.invoke(app, [*base, "--train-seeds", "3"])
        assert result.exit_code == 0, result.output
        assert sorted(trained) == [(1.0, 2), (2.0, 2), (3.0, 2)]
        again = read_csv(out / "metrics.csv")
        old = {(r["model"], r["train_seed"], r["direction_seed"]): r["n_saddles"] for r in rows}
        new = {(r["model"], r["train_seed"], r["direction_seed"]): r["n_saddles"] for r in again}
        assert {k: new[k] for k in old} == old
        assert {r["n_train_seeds"] for r in read_csv(out / "summary.csv")} == {"3"}
    finally:
        pinn.train_pinn = original
        torch.set_num_threads(threads)


def test_resnet_experiment_on_digits(tmp_path):
    out = tmp_path / "resnet"
    result = runner.invoke(app, [
        "experiment", "resnet", "--out", str(out), "--dataset", "digits", "--seeds", "0,7,9",
        "--train-seeds", "2", "--epochs", "1", "--train-images", "96", "--eval-images", "32",
        "--resolution", "5", "--directions", "random", "--no-hessian", "--representations",
        "grid-full", "--quiet",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "metrics.csv")
    assert [r["architecture"] for r in rows] == ["skip", "skip", "no-skip", "no-skip"]
    assert [r["train_seed"] for r in rows] == ["0", "7", "0", "7"]
    assert {r["model"] for r in rows} == {"resnet20-skip", "resnet20-no-skip"}
    assert not (out / "resnet20-skip-seed9").exists()
    summary = read_csv(out / "summary.csv")
    assert [r["n_train_seeds"] for r in summary] == ["2", "2"]
    # one direction seed per run: the within-run variance, hence the shares, are unknown
    assert [r["accuracy_share_training"] for r in summary] == ["nan", "nan"]
    assert "resnet20-no-skip, training seed 7" in (out / "report.html").read_text()
    result = runner.invoke(app, ["experiment", "resnet", "--out", str(out), "--dataset",
                                 "digits", "--seeds", "0", "--train-seeds", "2"])  # fmt: skip
    assert result.exit_code == 2 and "--train-seeds 2 needs at least 2" in result.output


def test_cifar_without_files_says_what_to_do(tmp_path):
    result = runner.invoke(app, ["experiment", "resnet", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--data-dir" in result.output and "digits" in result.output
    result = runner.invoke(app, ["experiment", "resnet", "--out", str(tmp_path),
                                 "--data-dir", str(tmp_path / "nothing")])  # fmt: skip
    assert result.exit_code != 0
    assert "digits" in result.output


def test_demo_trains_each_beta_with_the_stated_number_of_seeds():
    from saddles.cli.experiment import DEMO_TRAIN_SEEDS

    result = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--train-seeds" in result.output
    assert f"[default: {DEMO_TRAIN_SEEDS}]" in result.output and DEMO_TRAIN_SEEDS >= 3
    result = runner.invoke(app, ["demo", "--train-seeds", "0"])
    assert result.exit_code == 2
