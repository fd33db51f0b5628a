"""A span sweep on the dynamics and compare pages: one series per span (never averaged across
spans), a first sentence that names the spans where nothing exceeds the noise, the metrics
against the span, and relation grids sized for their labels."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from saddles.report import plots
from saddles.report.compare import write_comparison
from saddles.report.dynamics import dynamics_report
from saddles.report.spans import noise_sentence, quiet_spans, spans_text
from saddles.runs.compare import Comparison
from saddles.runs.relate import trend
from saddles.runs.summary import seed_summary

STEPS = (0, 10, 100, 1000, 3000)


def _sweep_rows(above=lambda step, span, seed: 0, model="m"):
    """Rows of a two-span sweep of one random plane, two direction seeds: at span 0.1 the
    saddle count rises with the step, at span 1 it falls; ``above`` gives the above-noise
    count; the scale summaries sit on rows with an empty span."""
    rows = []
    for step in STEPS:
        for seed in (0, 1):
            for span in (0.1, 1.0):
                n = (1 + STEPS.index(step) if span == 0.1 else 10 - STEPS.index(step)) + seed
                rows.append({"run": model, "model": model, "step": step, "subspace": "2d",
                             "direction": "random", "representation": "grid-full",
                             "direction_seed": seed, "sweep_span": span, "n_saddles": n,
                             "n_saddles_above_noise": above(step, span, seed),
                             "noise_floor_source": "batch", "n_minima": 1,
                             "average_persistence": 0.5 * span + 0.01 * step})  # fmt: skip
            rows.append({"run": model, "model": model, "step": step, "subspace": "2d",
                         "direction": "random", "representation": "grid-full",
                         "direction_seed": seed, "sweep_span": "",
                         "critical_span": 0.1 if above(step, 0.1, seed) else float("nan"),
                         "basin_radius": 1.0 / (1 + step)})  # fmt: skip
    return rows


def _first_sentence(html: str) -> str:
    return re.search(r"<p class='result'>(.*?)</p>", html.split("<h1>")[1]).group(1)


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_sweep_draws_one_series_per_span_not_their_mean(tmp_path):
    rows = _sweep_rows()
    html = dynamics_report(rows, tmp_path, n_boot=50).read_text()
    series = [r for r in _read(tmp_path / "series.csv") if r["metric"] == "n_saddles"]
    labels = {r["series"] for r in series}
    assert labels == {"2d random grid-full @ span 0.1", "2d random grid-full @ span 1"}
    for r in series:  # each point the mean over the two seeds of its own span only
        span = 0.1 if r["series"].endswith("0.1") else 1.0
        expected = np.mean([x["n_saddles"] for x in rows if x.get("sweep_span") == span
                            and x["step"] == int(r["step"])])  # fmt: skip
        assert float(r["mean"]) == pytest.approx(expected)
        assert float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"])
    # the trends are per span: rising at 0.1, falling at 1 (a mix of the two would be flat)
    cells = r"<td class='t'>n_saddles</td><td class='t'>(2d random grid-full @ span [0-9.]+)"
    rho = dict(re.findall(cells + r"</td><td>\d+</td><td>([-0-9.]+)</td>", html))
    for label, sign in (("2d random grid-full @ span 0.1", 1), ("2d random grid-full @ span 1",
                                                                -1)):  # fmt: skip
        sub = [x for x in rows if x.get("sweep_span") == (0.1 if sign > 0 else 1.0)]
        means = [np.mean([x["n_saddles"] for x in sub if x["step"] == s]) for s in STEPS]
        t = trend(list(STEPS), means, n_boot=50)
        assert float(rho[label]) == pytest.approx(t.spearman, abs=1e-3)
        assert np.sign(t.spearman) == sign
    # the scale summaries are drawn against the step like any metric
    assert (tmp_path / "figures" / "dynamics-basin_radius-2d-random-grid-full.png").exists()
    assert (tmp_path / "figures" / "spans-2d-random-grid-full.png").exists()
    assert "metrics against the span, one line per checkpoint" in html


def test_a_metric_constant_at_some_spans_is_listed_once_for_them(tmp_path):
    rows = _sweep_rows()
    for r in rows:
        if r.get("sweep_span") == 1.0:
            r["n_saddles"] = 4
    html = dynamics_report(rows, tmp_path, n_boot=20).read_text()
    assert "n_saddles = 4 at span 1" in _first_sentence(html)
    labels = {r["series"] for r in _read(tmp_path / "series.csv") if r["metric"] == "n_saddles"}
    assert labels == {"2d random grid-full @ span 0.1"}


def test_the_first_sentence_says_plainly_where_nothing_exceeds_the_noise(tmp_path):
    html = dynamics_report(_sweep_rows(), tmp_path, n_boot=20).read_text()
    assert _first_sentence(html).startswith(
        "random plane: nothing above the noise floor (batch floor) at any span from 0.1 to 1."
    )


def test_the_first_sentence_names_the_spans_and_checkpoints_with_a_feature(tmp_path):
    def above(step, span, seed):
        return int(span == 1.0 and step >= 100 and seed == 1)

    rows = _sweep_rows(above)
    html = dynamics_report(rows, tmp_path, n_boot=20).read_text()
    assert _first_sentence(html).startswith(
        "random plane: saddles above the noise floor (batch floor) at span 1 in 3 of 5 "
        "checkpoints; nothing above it at span 0.1."
    )
    planes = quiet_spans(rows)
    assert planes[("2d", "random", "grid-full")]["quiet"] == [0.1]
    assert planes[("2d", "random", "grid-full")]["units"] == {1.0: {100, 1000, 3000}}


def test_spans_read_as_runs_and_lists():
    ladder = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    assert spans_text([0.001, 0.003, 0.01, 0.3, 1.0], ladder) == "0.001 to 0.01, 0.3, 1"
    assert spans_text(ladder, ladder) == "0.001 to 1"
    assert noise_sentence([{"step": 0, "n_saddles": 1}]) == ""  # one span: nothing said


def test_single_span_rows_keep_their_page(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "sweep_span"} for r in _sweep_rows()
            if r["sweep_span"] == 0.1]  # fmt: skip
    html = dynamics_report(rows, tmp_path, n_boot=20).read_text()
    assert _first_sentence(html).startswith("5 checkpoints (steps 0..3000).")
    assert "@ span" not in html and "Metrics against the span" not in html
    assert (tmp_path / "figures" / "dynamics-n_saddles.png").exists()


def test_the_compare_page_shows_each_span_and_the_noise_sentence(tmp_path):
    rows = []
    for model, size in (("a-seed0", 100), ("a-seed1", 100), ("b-seed0", 1000), ("b-seed1", 1000)):
        group = model.split("-")[0]
        for r in _sweep_rows(lambda step, span, seed, size=size: int(span == 1.0 and size > 100),
                             model=group):  # fmt: skip
            if r["step"] == 3000:
                rows.append({**r, "run": model, "train_seed": int(model[-1]), "n_params": size})
    summary = [{"subspace": "2d", **r} for r in seed_summary(rows, n_boot=50)]
    result = Comparison("n_params", [], [], [], rows, ["a-seed0", "a-seed1", "b-seed0",
                                                        "b-seed1"], [], summary)  # fmt: skip
    html = write_comparison(result, tmp_path)["report"].read_text()
    assert _first_sentence(html).startswith(
        "random plane: saddles above the noise floor (batch floor) at span 1 in 2 of 4 runs; "
        "nothing above it at span 0.1."
    )
    assert (tmp_path / "figures" / "spans-2d-random-grid-full.png").exists()
    assert "one line per configuration" in html
    assert "<th>sweep_span</th>" in html  # the training-seed summary, per span


def test_relation_grids_grow_with_the_metrics_and_keep_readable_labels():
    rows = [{"model": f"configuration-{i}", "x": i, **{f"metric_{j}": i * j for j in range(12)}}
            for i in range(6)]  # fmt: skip
    few = plots.relation_figure(rows, "model", ["metric_0", "metric_1"], categorical=True)
    many = plots.relation_figure(rows, "model", [f"metric_{j}" for j in range(12)],
                                 categorical=True)  # fmt: skip
    w_few, h_few = few.get_size_inches()
    w_many, h_many = many.get_size_inches()
    assert h_many >= 4 * plots.PANEL_SIZE[1] and h_many > 2 * h_few and w_many >= w_few
    # every panel keeps its size: the figure grows with the rows and columns of the grid
    assert w_many / 3 == pytest.approx(plots.PANEL_SIZE[0])
    ax = many.axes[0]
    assert ax.title.get_fontsize() >= 11 and ax.xaxis.label.get_fontsize() >= 10
    ticks = ax.get_xticklabels()
    assert ticks[0].get_fontsize() >= 10 and ticks[0].get_rotation() > 0  # long names rotated
    assert ax.get_title() == "metric_0"


def test_metrics_against_the_span_one_line_per_step_on_a_log_axis():
    points = [{"step": s, "span": sp, "m": s * sp, "m_low": s * sp - 1, "m_high": s * sp + 1}
              for s in (0, 10, 100) for sp in (0.01, 0.1, 1.0)]  # fmt: skip
    fig = plots.span_figure(points, ["m"], "step", line_label="step")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["step 0", "step 10", "step 100"]
    assert len(ax.containers) == 3  # one errorbar line per step
