"""The language-model experiment end to end at tiny scale: train, analyze, hypotheses, report."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch
from typer.testing import CliRunner

from saddles.cli import app
from saddles.experiments.lm import run_lm_experiment
from saddles.runs.analyze import AnalysisConfig


def test_lm_experiment_tiny(tmp_path):
    threads = torch.get_num_threads()
    configs = {
        "2d": AnalysisConfig(resolution=5, representations=["grid-full"], hessian_top_k=1,
                             trace_matvecs=6, density_lanczos=6),
        "3d": AnalysisConfig(sampling="sobol", n_points=32, n_directions=3,
                             representations=["knn"], hessian=False),
    }  # fmt: skip
    try:
        paths = run_lm_experiment(tmp_path, "small", sizes=["L1-d32", "L2-d64", "L3-d96"],
                                  steps=6, configs=configs, eval_batch_size=2, train_seeds=1,
                                  policy="fixed", progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    with open(paths["dynamics"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 7  # log-spaced checkpoints 0..6 for each size
    assert {r["size"] for r in rows} == {"L1-d32", "L2-d64", "L3-d96"}
    assert all(r["2d.grid-full.n_saddles"] != "" and r["3d.knn.n_minima"] != "" for r in rows)
    assert all(float(r["val_loss"]) > 0 for r in rows)
    with open(paths["hypotheses"]) as f:
        hyps = {r["hypothesis"] for r in csv.DictReader(f)}
    assert {"H1", "H2", "H3", "H4"} <= hyps
    html = paths["report"].read_text()
    assert "<h2>Dynamics</h2>" in html and html.count("data:image/png;base64,") >= 4
    # A metric the same at every checkpoint of every size is said once, not drawn.
    for metric in ("val_loss", "2d.grid-full.n_saddles_above_noise",
                   "2d.grid-full.average_persistence"):  # fmt: skip
        values = {float(r[metric]) for r in rows if r[metric] not in ("", "nan")}
        drawn = (tmp_path / f"dynamics-{metric.replace('.', '-')}.png").exists()
        assert drawn == (len(values) > 1), metric
        if len(values) == 1:
            assert f"{metric} = {values.pop():g}" in html


def test_lm_command_help_and_bad_policy(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["experiment", "lm", "--help"])
    assert result.exit_code == 0 and "--preset" in result.output
    result = runner.invoke(app, ["experiment", "lm", "--out", str(tmp_path), "--preset", "huge"])
    assert result.exit_code == 2 and "huge" in result.output  # bad input: exit 2


def test_lm_experiment_with_two_training_seeds(tmp_path):
    """Each size trained twice (seeds 0 and 1): rows carry train_seed, the summary over
    training runs has variance shares, the relations count runs, and the finished seed is
    reused when the run is repeated."""
    threads = torch.get_num_threads()
    configs = {"2d": AnalysisConfig(resolution=5, representations=["grid-full"], hessian=False)}
    kwargs = dict(sizes=["L1-d32", "L2-d64"], steps=3, configs=configs, eval_batch_size=2,
                  train_seeds=2, policy="fixed", progress=False)  # fmt: skip
    try:
        paths = run_lm_experiment(tmp_path, "small", **kwargs)
        ckpt = tmp_path / "training-seed1" / "L2-d64" / "checkpoints"
        stamps = {p: p.stat().st_mtime_ns for p in ckpt.rglob("*") if p.is_file()}
        assert stamps
        again = run_lm_experiment(tmp_path, "small", **kwargs)
    finally:
        torch.set_num_threads(threads)
    assert {p: p.stat().st_mtime_ns for p in ckpt.rglob("*") if p.is_file()} == stamps
    with open(paths["dynamics"]) as f:
        rows = list(csv.DictReader(f))
    assert {r["train_seed"] for r in rows} == {"0", "1"}
    final = {(r["size"], r["train_seed"]): r["val_loss"] for r in rows if r["step"] == "3"}
    assert final[("L1-d32", "0")] != final[("L1-d32", "1")]  # two different trainings
    with open(again["summary"]) as f:
        summary = list(csv.DictReader(f))
    assert {r["n_train_seeds"] for r in summary} == {"2"}
    assert "val_loss_share_training" in summary[0]
    with open(paths["hypotheses"]) as f:  # pooled: each size's trend counts both runs
        trends = [r for r in csv.DictReader(f) if r["quantity"].startswith("Spearman(")]
    per_size = [r for r in trends if ", size " in r["quantity"]]
    assert per_size and all(r["note"].startswith("2 training runs pooled") for r in per_size)


def test_lm_experiment_sweeps_spans_with_a_batch_floor_on_the_top_bottom_plane(tmp_path):
    """The study's own shape at tiny scale: 2 sizes x 2 training runs, the Hessian policy's
    top/bottom plane at two spans with a batch floor. Rows carry every span's columns; the
    hypotheses are one table per span (pooled, one Holm family); the report names the spans."""
    threads = torch.get_num_threads()
    shared = dict(span=[0.01, 0.1], batch_floor=2, noise_points=4, hessian_which="top_bottom")
    configs = {"2d": AnalysisConfig(resolution=5, representations=["grid-full"],
                                    hessian_top_k=2, trace_matvecs=4, density_lanczos=4,
                                    **shared)}  # fmt: skip
    try:
        paths = run_lm_experiment(
            tmp_path,
            "small",
            sizes=["L1-d32", "L2-d64"],
            steps=2,
            configs=configs,
            eval_batch_size=4,
            progress=False,
        )  # fmt: skip (policy hessian, 2 seeds)
    finally:
        torch.set_num_threads(threads)
    with open(paths["dynamics"]) as f:
        rows = list(csv.DictReader(f))
    assert {r["train_seed"] for r in rows} == {"0", "1"} and len(rows) == 2 * 2 * 3
    for tag in ("0p01", "0p1"):
        column = f"2d.grid-full@{tag}.n_saddles_above_noise"
        assert all(r[column] != "" for r in rows), column
        assert all(r[f"2d.grid-full@{tag}.noise_floor_source"] in ("batch", "arithmetic")
                   for r in rows)  # fmt: skip
    assert all(r["bottom_eigenvalue"] != "" for r in rows)  # the top/bottom plane's
    with open(paths["hypotheses"]) as f:
        hyps = list(csv.DictReader(f))
    assert {r["span"] for r in hyps} == {"0.01", "0.1"}
    # one Holm family over both spans: the adjusted p of a plain step-down loop over all
    p = np.array([float(r["p"]) for r in hyps if r["p"] != "nan"])
    order = np.argsort(p, kind="stable")
    holm = np.minimum(1, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    expected = np.empty_like(p)
    expected[order] = holm
    got = [float(r["p_holm"]) for r in hyps if r["p"] != "nan"]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    html = paths["report"].read_text()
    assert "0.01, 0.1" in html  # the spans, in the run's information
    for size in ("L1-d32", "L2-d64"):  # each size's scale sweep, drawn
        assert (tmp_path / f"spans-{size}.png").exists() and f"{size}: metrics against" in html


def test_the_command_prints_the_hypotheses_as_one_table_and_what_is_missing_below():
    from rich.console import Console

    from saddles.cli.experiment import _print_hypotheses

    rows = [
        {"span": "0.01", "hypothesis": "H1", "quantity": "Spearman(c, step), size 10",
         "value": "-0.75", "ci_low": "-0.9", "ci_high": "-0.4", "n": "24", "p": "0.001",
         "p_holm": "0.004", "verdict": "significant after correction", "note": ""},
        {"span": "0.3", "hypothesis": "H1, H3", "quantity": "what is missing", "value": "0",
         "ci_low": "nan", "ci_high": "nan", "n": "96", "p": "nan", "p_holm": "nan",
         "verdict": "", "note": "c is 0 at every checkpoint of every size, at span 0.3"},
    ]  # fmt: skip
    console = Console(width=200, record=True)
    _print_hypotheses(console, rows)
    text = console.export_text()
    assert "-0.75 [-0.9, -0.4]" in text and "significant after correction" in text
    assert "H1, H3 cannot be asked: c is 0 at every checkpoint of every size, at span 0.3" in text
    assert text.count("what is missing") == 0  # said as a sentence, not as a table row


def test_lm_experiment_on_ray_workers_gives_the_same_rows(tmp_path, cluster, one_thread):
    """Checkpoints on two Ray workers (the loopback cluster of conftest.py) give the rows of one
    process, but the seconds; the trained checkpoints are shared (a copy of the training)."""
    import shutil

    configs = {"2d": AnalysisConfig(resolution=5, representations=["grid-full"], hessian=False,
                                    noise_points=4)}  # fmt: skip
    kwargs = dict(sizes=["L1-d32"], steps=2, configs=configs, eval_batch_size=2,
                  train_seeds=1, policy="fixed", progress=False)  # fmt: skip
    local = run_lm_experiment(tmp_path / "local", "small", **kwargs)
    shutil.copytree(tmp_path / "local" / "training", tmp_path / "ray" / "training")
    spread = run_lm_experiment(tmp_path / "ray", "small", executor="ray", workers=2, **kwargs)

    def rows(paths):
        with open(paths["dynamics"]) as f:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]

    assert len(rows(local)) == 3 and rows(spread) == rows(local)
    record = tmp_path / "ray" / "analysis" / "L1-d32" / "step_000001" / "row.json"
    assert json.loads(record.read_text())["execution"]["executor"] == "ray"
