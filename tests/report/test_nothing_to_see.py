"""Reports that say when there is nothing to see: constant metrics said once (not drawn, not
fitted), undefined relations in one line, distances as numbers a person reads on a colour
scale from 0, a summary sentence first, and step 0 drawn on the log axis."""

from __future__ import annotations

import re

import numpy as np

from saddles.report import plots
from saddles.report.compare import constant_metrics, write_comparison
from saddles.report.dynamics import dynamics_report
from saddles.report.html import fmt
from saddles.runs.compare import Comparison
from saddles.runs.relate import power_laws, relations_from_rows


def _suite_rows():
    """A Pythia-like suite where topology never appears: 1 minimum, 0 saddles, entropy 0 at
    every checkpoint of every size; only the loss scale moves."""
    rows = []
    for size in (1_000, 10_000, 100_000):
        for step in (0, 10, 100, 1000, 3000):
            rows.append({"model": f"s{size}", "run": f"s{size}", "direction": "random",
                         "representation": "grid-full", "subspace": "2d", "direction_seed": 0,
                         "step": step, "n_params": size, "n_saddles": 0, "n_minima": 1,
                         "persistence_entropy": 0.0, "average_persistence_relative": 1.0,
                         "average_persistence": 2.0 / (1 + step) + 1e-3 * size ** 0.1})  # fmt: skip
    return rows


def test_dynamics_report_lists_constants_once_and_opens_with_a_summary(tmp_path):
    rows = [r for r in _suite_rows() if r["n_params"] == 1_000]
    html = dynamics_report(rows, tmp_path, n_boot=50).read_text()
    body = html.split("<h1>")[1]
    first = re.search(r"<p class='result'>(.*?)</p>", body).group(1)
    assert body.index(first) < body.index("<table")  # the sentence comes first
    assert first.startswith("5 checkpoints (steps 0..3000).")
    assert "n_saddles = 0" in first and "n_minima = 1" in first
    assert first.endswith("No line drawn (1 line) moves with the step beyond its interval.")
    assert "Constant at every checkpoint" in html and "persistence_entropy = 0" in html
    figs = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figs == ["dynamics-average_persistence.png"]  # constants are not drawn
    assert "n_saddles against the step" not in html


def test_step_zero_is_drawn_on_a_symlog_axis():
    points = [{"series": "a", "step": s, "m": v, "err": 0.1}
              for s, v in ((0, 3.0), (10, 2.0), (1000, 1.0))]  # fmt: skip
    ax = plots.dynamics_figure(points, "m", group_key="series", err_key="err").axes[0]
    assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] == 0
    xs = np.concatenate([line.get_xdata() for line in ax.lines])
    assert 0 in xs and "step 0 at 0" in ax.get_xlabel()
    later = plots.dynamics_figure(points[1:], "m", group_key="series").axes[0]
    assert later.get_xscale() == "log"


def test_distances_read_as_numbers_on_a_scale_from_zero():
    assert fmt(2.2250738585072014e-308) == "0" and fmt(-1e-320) == "0" and fmt(1e-5) == "1e-05"
    zero = np.full((3, 3), 2.2250738585072014e-308)
    fig = plots.distance_matrix_figure(zero, ["a", "b", "c"])
    image = fig.axes[0].images[0]
    assert image.get_clim() == (0.0, 1.0)
    assert {t.get_text() for t in fig.axes[0].texts} == {"0"}
    some = plots.distance_matrix_figure(np.array([[0, 0.2], [0.2, 0]]), ["a", "b"])
    assert some.axes[0].images[0].get_clim() == (0.0, 0.2)


def test_constant_metrics_get_constant_not_a_power_law():
    rows = [r for r in _suite_rows() if r["step"] == 3000]
    laws = {r["metric"]: r for r in power_laws(rows, ["n_saddles", "average_persistence"],
                                               by=(), n_boot=20)}  # fmt: skip
    assert laws["n_saddles"]["fit"] == "constant" and laws["n_saddles"]["c"] == 0
    assert np.isnan(laws["n_saddles"]["alpha"]) and "constant: 0 at every size" in (
        laws["n_saddles"]["note"])  # fmt: skip
    assert laws["average_persistence"]["fit"] == "power law"
    assert constant_metrics(rows, ["n_saddles", "n_minima", "average_persistence"]) == {
        "n_saddles": 0.0, "n_minima": 1.0}  # fmt: skip


def test_compare_report_summarises_nan_relations_in_one_line(tmp_path):
    rows = [r for r in _suite_rows() if r["step"] == 3000]
    metrics = ["n_saddles", "n_minima", "persistence_entropy", "average_persistence"]
    rels = [{"subspace": "2d", **r} for r in relations_from_rows(rows, metrics, ["n_params"],
                                                                 n_perm=100)]  # fmt: skip
    laws = power_laws(rows, ["n_saddles", "average_persistence"], n_boot=20)
    result = Comparison("n_params", rels, laws, [], rows, [r["run"] for r in rows])
    html = write_comparison(result, tmp_path)["report"].read_text()
    body = html.split("<h1>")[1]
    first = re.search(r"<p class='result'>(.*?)</p>", body).group(1)
    assert first.startswith("3 runs (s1000, s10000, s100000) related to n_params: 1 relation "
                            "defined")  # fmt: skip
    same = re.search(r"(\d) metric\(s\) are the same in every run \((.*?)\)\.", first)
    assert int(same.group(1)) >= 3
    assert {"n_saddles = 0", "n_minima = 1", "persistence_entropy = 0"} <= set(
        same.group(2).split(", "))  # fmt: skip
    assert ("3 of 4 relations are undefined (NaN): 3 because an input is constant (n_saddles, "
            "n_minima, persistence_entropy).") in html  # fmt: skip
    relations = html.split("<h2>Relations</h2>")[1].split("</section>")[0]
    assert relations.count("<tr>") == 2  # the header and the one defined relation
    assert "<td class='t'>constant</td>" in html


def test_a_checkpoint_number_with_a_standard_error_gets_error_bars(tmp_path):
    rows = [{**r, "hessian_trace": 10.0 + r["step"] / 100, "hessian_trace_stderr": 0.5,
             "val_loss": 3.0 - r["step"] / 1000}
            for r in _suite_rows() if r["n_params"] == 1_000]  # fmt: skip
    html = dynamics_report(rows, tmp_path, n_boot=20).read_text()
    assert "hessian_trace against the step (mean; error bars: standard error)" in html
    assert "<th>val_loss</th>" in html  # the evaluation loss as a column, and a curve
    assert (tmp_path / "figures" / "dynamics-val_loss.png").exists()
