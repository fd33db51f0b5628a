"""saddles.runs.cost: the measurements a prediction starts from, the counting rules against
what a run really spends, and --dry-run on the command line."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from saddles.cli import app
from saddles.hessian import HessianOperator
from saddles.io.data import make_loss
from saddles.runs import cost
from saddles.runs.analyze import compute_hessian
from saddles.runs.config import AnalysisConfig


def mlp_problem():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    return net, make_loss(criterion="cross_entropy"), [(x[:32], y[:32]), (x[32:], y[32:])]


def test_the_probe_measures_the_run_s_own_model_and_data():
    net, loss, data = mlp_problem()
    p = cost.probe(net, loss, data)
    assert p.n_params == sum(q.numel() for q in net.parameters()) == 131
    assert p.param_bytes == 4 * 131 and p.itemsize == 4 and p.n_batches == 2
    assert min(p.forward_s, p.gradient_s, p.hvp_s) > 0
    assert all(q.grad is None for q in net.parameters())  # left as it was found


@pytest.mark.parametrize("top_k", [1, 3, 5])
def test_the_hvp_count_is_within_a_factor_of_two_of_a_real_solve(top_k):
    net, loss, data = mlp_problem()
    p = cost.probe(net, loss, data)
    predicted = cost.hessian_cost(p, top_k=top_k, trace_matvecs=30, density_lanczos=20)
    op = HessianOperator(net, loss, data)
    before = op.n_hvps
    compute_hessian(op, top_k=top_k, trace_matvecs=30, n_lanczos=20)
    spent = op.n_hvps - before
    assert spent / 2 <= predicted.count <= 2 * spent, (predicted.count, spent)
    assert predicted.seconds == pytest.approx(predicted.count * p.hvp_s)


def test_a_small_budget_predicts_more_hvps_and_less_storage():
    p = cost.Probe(n_params=10_000_000, param_bytes=40_000_000, itemsize=4, n_batches=1,
                   forward_s=0.1, gradient_s=0.3, hvp_s=0.6, forward_bytes=10**8,
                   gradient_bytes=2 * 10**8, hvp_bytes=4 * 10**8, device="cpu")  # fmt: skip
    whole = cost.hessian_cost(p, top_k=5, trace_matvecs=99, density_lanczos=80, memory=1 << 40)
    tight = cost.hessian_cost(p, top_k=5, trace_matvecs=99, density_lanczos=80,
                              memory=16 * 40_000_000)  # fmt: skip
    assert tight.count > whole.count and tight.peak_bytes < whole.peak_bytes
    assert tight.peak_bytes <= p.hvp_bytes + 16 * 40_000_000


def test_an_analysis_is_counted_stage_by_stage():
    p = cost.Probe(n_params=1000, param_bytes=4000, itemsize=4, n_batches=1, forward_s=0.01,
                   gradient_s=0.03, hvp_s=0.05, forward_bytes=100, gradient_bytes=200,
                   hvp_bytes=300, device="cpu")  # fmt: skip
    config = AnalysisConfig(resolution=11, direction_seeds=3, noise_points=8)
    rows = cost.analysis_cost(p, config, checkpoints=4)
    stages = [r.stage for r in rows]
    assert stages == ["landscape (random, 3 planes)", "landscape (hessian, 1 plane)", "hessian",
                      "total (4 checkpoints)"]  # fmt: skip
    random, hessian_plane = rows[0], rows[1]
    assert random.count == 3 * (121 + cost.NOISE_EVALUATIONS * 8)
    assert hessian_plane.count == 121 + cost.NOISE_EVALUATIONS * 8
    assert rows[-1].seconds == pytest.approx(4 * sum(r.seconds for r in rows[:-1]))
    assert rows[-1].peak_bytes == max(r.peak_bytes for r in rows[:-1])
    assert math.isclose(random.seconds, random.count * p.forward_s)


FACTORY = """
import torch

def make_net():
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
"""


def test_dry_run_prints_the_prediction_and_a_run_records_it(tmp_path, monkeypatch):
    (tmp_path / "netdef.py").write_text(FACTORY)
    torch.manual_seed(0)
    torch.save((torch.randn(40, 4), torch.randint(0, 3, (40,))), tmp_path / "batch.pt")
    (tmp_path / "config.yaml").write_text(textwrap.dedent("""
        model: netdef.py:make_net
        data: batch.pt
        criterion: cross_entropy
        out: out
        analysis: {resolution: 7, representations: [grid-full], hessian_top_k: 2,
                   trace_matvecs: 9, density_lanczos: 10, noise_points: 4}
    """))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    dry = runner.invoke(app, ["run", "config.yaml", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "landscape (random, 1 plane)" in dry.output and "predicted s" in dry.output
    assert not (tmp_path / "out").exists()  # it stopped before the run
    real = runner.invoke(app, ["run", "config.yaml", "--quiet"])
    assert real.exit_code == 0, real.output
    record = json.loads((tmp_path / "out" / "cost.json").read_text())
    assert [r["stage"] for r in record["predicted"]][-1] == "total"
    assert record["measured"]["seconds"] > 0 and "hessian_s" in record["measured"]["stages"]
    common = "--model netdef.py:make_net --data batch.pt --criterion cross_entropy --dry-run"
    for command in (f"hessian {common} --top-k 2 --out h", f"landscape {common} --out l"):
        done = runner.invoke(app, command.split())
        assert done.exit_code == 0, done.output
        assert "total" in done.output and "measured on 51 parameters" in done.output
    assert not (tmp_path / "h").exists() and not (tmp_path / "l").exists()


def test_run_and_dynamics_take_a_thread_count(tmp_path, monkeypatch):
    (tmp_path / "netdef.py").write_text(FACTORY)
    torch.save((torch.randn(40, 4), torch.randint(0, 3, (40,))), tmp_path / "batch.pt")
    (tmp_path / "config.yaml").write_text(
        "model: netdef.py:make_net\ndata: batch.pt\ncriterion: cross_entropy\n"
        "analysis: {resolution: 5, hessian: false, representations: [grid-full]}\n"
    )
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        done = CliRunner().invoke(app, ["run", "config.yaml", "--threads", "1", "--dry-run"])
        assert done.exit_code == 0, done.output
        assert torch.get_num_threads() == 1
        bad = CliRunner().invoke(app, ["run", "config.yaml", "--threads", "0", "--dry-run"])
        assert bad.exit_code == 2
        assert "--threads" in CliRunner().invoke(app, ["dynamics", "--help"]).output
    finally:
        torch.set_num_threads(before)
