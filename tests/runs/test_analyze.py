"""saddles.runs.analyze and saddles.report.analysis: one model through every stage, and the
report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from saddles.report.figures import write_figures
from saddles.report.summary import summarize
from saddles.runs.analyze import AnalysisConfig, analyze
from saddles.topology import compute_metrics, merge_tree_grid
from saddles.topology.representations import REPRESENTATIONS


class Quadratic(torch.nn.Module):
    """loss(w) = 0.5 * sum_i a_i (w_i - 1)^2: Hessian diag(a), minimum at w = 1."""

    def __init__(self, a):
        super().__init__()
        self.register_buffer("a", torch.as_tensor(a, dtype=torch.float64))
        self.w = torch.nn.Parameter(torch.zeros(len(a), 3, dtype=torch.float64))

    def forward(self, x):
        return x


def quadratic_loss(model, batch):
    return 0.5 * (model.a[:, None] * (model.w - 1) ** 2).sum()


def tiny_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def mlp_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g)
    return x, torch.sin(x.sum(dim=1, keepdim=True))


def small_config(**kw):
    reps = ["grid-full", "grid-ttk", "knn", "delaunay"]
    base = dict(resolution=9, hessian_top_k=3, trace_matvecs=12, density_lanczos=12,
                representations=reps, threshold=0.05)  # fmt: skip
    return AnalysisConfig(**{**base, **kw})


def test_hessian_directions_are_eigenvectors_of_the_loss():
    a = [1.0, 2.0, 7.0, 3.0]
    model = Quadratic(a)
    # 99 Hutch++ products are capped at 3 x dim = 36, where Hutch++ is exact.
    cfg = small_config(directions=["hessian"], n_directions=1, norm="none", ignore_1d=False,
                       dtype="float64", representations=["grid-full"], resolution=11,
                       trace_matvecs=99)  # fmt: skip
    result = analyze(model, quadratic_loss, torch.zeros(1, 1), cfg, progress=False)
    assert result.hessian["top_eigenvalue"] == pytest.approx(7.0, rel=1e-8)
    assert result.hessian["trace"] == pytest.approx(3 * sum(a), rel=1e-6)
    land = result.landscapes["hessian"]
    c = land.coords[:, 0]
    base = 0.5 * 3 * sum(a)  # loss at w = 0
    # Along a unit eigenvector v of eigenvalue 7: L(c) = base + c * (grad . v) + 3.5 c^2.
    curvature = np.polyfit(c, land.loss - base, 2)[0]
    assert curvature == pytest.approx(3.5, rel=1e-8)


def test_analyze_mlp_end_to_end(tmp_path):
    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    cfg = small_config()
    quality = {"test_error": 0.25}
    result = analyze(model, mse, mlp_data(), cfg, name="mlp", quality=quality,
                     run_dir=tmp_path / "mlp", progress=False)  # fmt: skip
    for p, q in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, q)
    rows = result.rows()
    assert len(rows) == 2 * 4
    assert {(r["direction"], r["representation"]) for r in rows} == {
        (d, r) for d in ("random", "hessian") for r in cfg.representations
    }
    # The topology stage is the topology core on the landscape's grid.
    land = result.landscapes["random"]
    expect = compute_metrics(merge_tree_grid(land.grid(), "full"), 0.05, relative=True)
    got = result.topology["random"]["grid-full"]
    assert got["n_minima"] == expect["n_minima"]
    assert got["average_persistence"] == pytest.approx(expect["average_persistence"])
    # The centre of the grid is the unperturbed loss.
    with torch.no_grad():
        centre = float(mse(model, mlp_data()))
    mid = land.grid()[4, 4]
    assert mid == pytest.approx(centre, rel=1e-5)
    assert all(r["test_error"] == 0.25 for r in rows)
    # Files of the run directory.
    run = tmp_path / "mlp"
    assert (run / "config.yaml").exists() and (run / "metrics.json").exists()
    with open(run / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    record = json.loads((run / "metrics.json").read_text())
    assert record["topology"]["hessian"]["knn"]["n_minima"] >= 1
    figs = write_figures(result, tmp_path / "figs")
    assert all(p.stat().st_size > 2000 for p in figs.values())
    assert any("density" in k for k in figs)


def test_summary_and_report(tmp_path):
    analyses = []
    for i, width in enumerate((0.5, 1.0, 1.5, 2.0)):
        model = tiny_mlp()
        cfg = small_config(directions=["random"], hessian=False, representations=["grid-full"],
                           span=width)  # fmt: skip
        analyses.append(analyze(model, mse, mlp_data(), cfg, name=f"m<{i}>",
                                quality={"span": width, "score": width**2},
                                progress=False))  # fmt: skip
    figures = {a.name: write_figures(a, tmp_path / a.name) for a in analyses}
    paths = summarize(analyses, tmp_path / "summary", x_key="span", y_metrics=["score"],
                      title="test <report>", figures=figures, info={"device": "cpu"})  # fmt: skip
    html = paths["report"].read_text()
    for section in ("Configuration", "Models", "Metrics", "Relations", "Run"):
        assert f"<h2>{section}</h2>" in html
    assert html.count("data:image/png;base64,") >= 4 + 1
    assert "m&lt;0&gt;" in html and "<report>" not in html  # names are escaped
    assert "version numpy" in html
    with open(paths["relations"]) as f:
        rel = list(csv.DictReader(f))
    span_vs_score = [r for r in rel if r["y"] == "score"]
    assert span_vs_score and all(r["n"] == "4" for r in span_vs_score)


def test_config_validation_and_yaml(tmp_path):
    with pytest.raises(ValueError, match="unknown representation"):
        AnalysisConfig(representations=["image"])
    with pytest.raises(ValueError, match="directions"):
        AnalysisConfig(directions=["pca"])
    with pytest.raises(ValueError, match="unknown analysis setting"):
        AnalysisConfig.from_dict({"resolutoin": 5})
    path = tmp_path / "c.yaml"
    path.write_text("analysis:\n  resolution: 17\n  representations: [knn, gabriel]\n")
    cfg = AnalysisConfig.from_yaml(path)
    assert cfg.resolution == 17 and cfg.representations == ["knn", "gabriel"]
    assert set(REPRESENTATIONS) >= set(cfg.representations)
    path.write_text("- just a list")
    with pytest.raises(ValueError, match="mapping"):
        AnalysisConfig.from_yaml(path)
    with pytest.raises(FileNotFoundError, match="no such configuration"):
        AnalysisConfig.from_yaml(tmp_path / "missing.yaml")
