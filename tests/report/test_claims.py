"""An experiment's report opens with its claims: the table, the CSV and the primary family
(saddles.report.summary.summarize with claims)."""

from __future__ import annotations

import csv
import re

import torch

from saddles.runs.analyze import AnalysisConfig, analyze
from saddles.runs.relate import Claim, claim_verdict

torch.set_num_threads(1)


def _model(scale: float):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    with torch.no_grad():
        m[0].weight.mul_(scale)
    return m


def _mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def test_report_opens_with_the_claims_table(tmp_path):
    from saddles.report.summary import summarize

    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, generator=g)
    data = [(x, torch.sin(x.sum(dim=1, keepdim=True)))]
    config = AnalysisConfig(resolution=7, hessian=False, directions=["random"], noise_points=4,
                            direction_seeds=2, representations=["grid-full"])  # fmt: skip
    analyses = [analyze(_model(b), _mse, data, config, name=f"beta={b:g}",
                        quality={"beta": b, "mae": 0.1 * b}, progress=False)
                for b in (0.5, 1.0, 2.0, 4.0, 8.0)]  # fmt: skip
    claims = (Claim("average_persistence", "beta", 1, "higher average persistence with beta"),
              Claim("n_saddles", "mae", 1, "more saddles with the error"),
              Claim("n_saddles", "hessian_trace", 1, "more saddles with the trace"))  # fmt: skip
    paths = summarize(analyses, tmp_path, x_key="beta", title="t", y_metrics=["mae"],
                      claims=claims, claims_source="a test")  # fmt: skip
    html = paths["report"].read_text()
    headings = re.findall(r"<h2>([^<]+)</h2>", html)
    assert headings[0] == "Claims"
    with open(paths["claims"]) as f:
        table = list(csv.DictReader(f))
    assert [t["metric"] for t in table] == ["average_persistence", "n_saddles", "n_saddles"]
    # No Hessian in this run: the trace claim is undefined, and inconclusive.
    assert table[2]["measured"].startswith("undefined") and table[2]["verdict"] == "inconclusive"
    with open(paths["relations"]) as f:
        rels = list(csv.DictReader(f))
    primary = [r for r in rels if r["family"] == "primary" and r["spearman_p"] != "nan"]
    assert {(r["x"], r["y"]) for r in primary} == {("average_persistence", "beta"),
                                                   ("n_saddles", "mae")}  # fmt: skip
    assert sum(r["family"] == "primary" for r in rels) == 3
    for t in table[:2]:
        rel = next(r for r in primary if r["x"] == t["metric"])
        row = {k: float(rel[k]) for k in ("spearman", "spearman_ci_low", "spearman_ci_high",
                                          "spearman_p_holm")}  # fmt: skip
        assert t["verdict"] == claim_verdict(row, 1) and t["verdict"] in html
    # With 5 models and 2 primary relations, Holm over the primary family alone:
    p = sorted(float(r["spearman_p"]) for r in primary)
    holm = sorted(float(r["spearman_p_holm"]) for r in primary)
    assert holm[0] == min(1.0, 2 * p[0])
