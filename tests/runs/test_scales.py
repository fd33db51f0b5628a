"""Topology across scales (saddles.landscape.scales through saddles.runs.analyze): span
sweeps, the critical span and the basin radius against analytic values, the top/bottom Hessian
plane against exact eigenvectors, single-span runs as before sweeps existed, and dynamics rows
per span."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from saddles.experiments import save_checkpoint
from saddles.landscape.scales import LADDER, critical_span, span_from_tag, span_tag
from saddles.runs.analyze import (
    AnalysisConfig,
    analyze,
    bottom_eigenpairs,
    plane_directions,
)
from saddles.runs.rows import planes_from_checkpoints
from saddles.runs.series import analyze_checkpoints

HERE = Path(__file__).parent

# --- a landscape with a known basin radius and a saddle beyond a known span ----------------

L0, A, X_RIDGE = 1.0, 2.0, 1.5
B = A / (2 * X_RIDGE**2)  # f along x: L0 + A x^2 - B x^4, ridge (maximum) at x = +-X_RIDGE


class Ridge(torch.nn.Module):
    """Two weights (x, y): loss L0 + A x^2 - B x^4 + y^2. The centre is the only minimum of
    ``[-s, s]^2`` for s below X_RIDGE; beyond it the loss falls again past the ridges, so the
    box's edges x = +-s hold two more minima, separated from the centre by saddles at
    (+-X_RIDGE, 0)."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, 2, dtype=dtype))

    def forward(self, x):
        return x


def ridge_loss(model, batch):
    x, y = model.w[0, 0], model.w[0, 1]
    return L0 + A * x**2 - B * x**4 + y**2 + 0.0 * batch[0].sum()


def axes(dtype=torch.float64):
    return [[torch.tensor([[1.0, 0.0]], dtype=dtype)], [torch.tensor([[0.0, 1.0]], dtype=dtype)]]


def ridge_config(**kw):
    base = dict(directions=["given"], norm="none", ignore_1d=False, hessian=False,
                representations=["grid-full"], resolution=41, threshold=None, loops=False,
                noise_points=8, dtype="float64")  # fmt: skip
    return AnalysisConfig(**{**base, **kw})


DATA = [(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))]


def analytic_radii(rise: float) -> list[float]:
    """Where A x^2 - B x^4 and y^2 first reach ``rise x L0``."""
    t = (A - math.sqrt(A**2 - 4 * B * rise * L0)) / (2 * B)  # the smaller root in x^2
    return [math.sqrt(t), math.sqrt(rise * L0)]


def test_critical_span_and_basin_radius_match_the_analytic_values(tmp_path):
    config = ridge_config(span=[0.5, 1.0, 2.0, 4.0], basin_rise=0.1)
    result = analyze(Ridge(), ridge_loss, DATA, config, given=axes(), progress=False,
                     run_dir=tmp_path)  # fmt: skip
    rows = result.rows()
    per_span = {r["sweep_span"]: r for r in rows if r["sweep_span"] != ""}
    assert sorted(per_span) == [0.5, 1.0, 2.0, 4.0]
    # No feature inside the ridges; past them, two saddles (one per ridge) above the floor.
    assert [per_span[s]["n_saddles_above_noise"] for s in (0.5, 1.0)] == [0, 0]
    assert [per_span[s]["n_saddles_above_noise"] for s in (2.0, 4.0)] == [2, 2]
    (summary,) = [r for r in rows if r["sweep_span"] == ""]
    assert summary["critical_span"] == 2.0 and summary["critical_span_reason"] == ""
    expected = analytic_radii(0.1)
    assert summary["basin_radii"] == pytest.approx(expected, rel=1e-5)
    assert summary["basin_radius"] == pytest.approx(min(expected), rel=1e-5)
    # Every span's landscape and pairs are kept; metrics.csv reads back with the span key.
    names = {p.name for p in tmp_path.iterdir()}
    assert {f"landscape-given-span{span_tag(s)}" for s in per_span} <= names
    assert {f"pairs-given-span{span_tag(s)}-grid-full.npz" for s in per_span} <= names
    with open(tmp_path / "metrics.csv") as f:
        spans = [r["sweep_span"] for r in csv.DictReader(f)]
    assert spans == ["0.5", "1.0", "2.0", "4.0", ""]


def test_a_sweep_inside_the_ridges_says_why_it_has_no_critical_span():
    result = analyze(Ridge(), ridge_loss, DATA, ridge_config(span=[0.5, 1.0], resolution=21),
                     given=axes(), progress=False)  # fmt: skip
    (summary,) = [r for r in result.rows() if r["sweep_span"] == ""]
    assert math.isnan(summary["critical_span"])
    assert "no saddle/minimum pair above the noise floor at any span from 0.5 to 1" in (
        summary["critical_span_reason"])  # fmt: skip
    off = analyze(Ridge(), ridge_loss, DATA,
                  ridge_config(span=[2.0, 4.0], resolution=21, noise_points=0),
                  given=axes(), progress=False)  # fmt: skip
    (summary,) = [r for r in off.rows() if r["sweep_span"] == ""]
    assert math.isnan(summary["critical_span"]) and "no noise floor" in (
        summary["critical_span_reason"])  # fmt: skip


def test_critical_span_is_the_smallest_span_with_a_feature_above_noise():
    per_span = [(3.0, {"n_saddles_above_noise": 1}), (1.0, {"n_saddles_above_noise": 0}),
                (2.0, {"n_saddles_above_noise": 4})]  # fmt: skip
    assert critical_span(per_span) == (2.0, "")


def test_auto_spans_run_from_the_flat_to_the_risen_span():
    # float32: the loss is flat within its rounding (~1e-7 of L0) while A s^2 is below it,
    # i.e. for s below about 3e-4; it has risen by span_rise x L0 = L0 first at s = 1 (the
    # x axis gives A - B = 1.56, y gives 1; at 0.316 both stay below 0.2).
    config = ridge_config(span="auto", dtype="float32", resolution=9, span_rise=1.0)
    result = analyze(Ridge(torch.float32), ridge_loss, DATA, config, given=axes(torch.float32),
                     progress=False)  # fmt: skip
    scales = result.scales["given"]
    assert scales["risen_span"] == 1.0
    assert 3.16e-5 <= scales["flat_span"] <= 3.16e-4
    lo, hi = LADDER.index(scales["flat_span"]), LADDER.index(1.0)
    assert scales["spans"] == list(LADDER[lo : hi + 1])
    assert sorted({r["sweep_span"] for r in result.rows()} - {""}) == scales["spans"]
    assert scales["threshold"] == pytest.approx(L0, rel=1e-6) and scales["notes"] == []


def test_span_settings_are_checked_and_single_spans_keep_their_ids():
    assert AnalysisConfig(span=[1, 0.1, 1.0]).span == [0.1, 1.0]
    assert AnalysisConfig(span="auto").sweeps and not AnalysisConfig().sweeps
    assert (
        AnalysisConfig(span=2.0).short_id()
        == AnalysisConfig(span=2.0, basin_rise=0.1, span_rise=1.0).short_id()
    )
    assert AnalysisConfig().identity() == AnalysisConfig(hessian_which="top").identity()
    assert AnalysisConfig(hessian_which="top_bottom").short_id() != AnalysisConfig().short_id()
    for bad in ([], [0.1, -1], "wide", [float("nan")]):
        with pytest.raises(ValueError, match="span"):
            AnalysisConfig(span=bad)
    with pytest.raises(ValueError, match="hessian_which"):
        AnalysisConfig(hessian_which="bottom")
    assert span_from_tag(span_tag(0.316)) == 0.316 and "." not in span_tag(0.0316)


# --- single-span runs: as before sweeps existed --------------------------------------------


def test_a_single_span_run_is_what_the_code_before_sweeps_wrote(tmp_path):
    """tests/runs/data/single_span_reference.json was written by scales_reference.py with the
    commit before span sweeps; on the machine that wrote it the files are equal byte for byte
    (the numbers are compared to 1e-12 here, for other machines' arithmetic)."""
    import scales_reference

    stored = json.loads((HERE / "data" / "single_span_reference.json").read_text())
    now = scales_reference.run(tmp_path)
    assert now["short_id"] == stored["short_id"]
    assert now["files"] == stored["files"]
    for name in ("metrics.csv", "summary.csv"):
        old = list(csv.reader(io.StringIO(stored[name])))
        new = list(csv.reader(io.StringIO(now[name])))
        # Training seeds came later and added two columns of their own to the summary (the
        # count of training runs and what the interval is over); nothing of the span.
        later = [i for i, c in enumerate(new[0]) if c in ("n_train_seeds", "interval")]
        assert len(later) == (2 if name == "summary.csv" else 0)
        new = [[x for i, x in enumerate(row) if i not in later] for row in new]
        assert new[0] == old[0] and len(new) == len(old)  # the same columns, no span
        for a, b in zip(new[1:], old[1:], strict=True):
            for x, y in zip(a, b, strict=True):
                try:
                    fx, fy = float(x), float(y)
                except ValueError:
                    assert x == y
                    continue
                assert fx == pytest.approx(fy, rel=1e-12, abs=1e-300, nan_ok=True)


# --- the plane of the top and the most negative Hessian eigenvectors -----------------------


def _mlp():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(),
                               torch.nn.Linear(3, 1)).double()  # fmt: skip


def _mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def _mlp_data():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, 2, generator=g, dtype=torch.float64)
    return x, torch.sin(3 * x[:, :1]) * x[:, 1:]


def _exact_hessian(model, data):
    from torch.func import functional_call, hessian

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def f(theta):
        parts, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            parts[n] = theta[i : i + s.numel()].reshape(s)
            i += s.numel()
        out = functional_call(model, parts, (data[0],))
        return ((out - data[1]) ** 2).mean()

    return hessian(f)(flat).numpy()


def test_the_top_bottom_plane_is_spanned_by_the_exact_extreme_eigenvectors():
    model, data = _mlp(), _mlp_data()
    values, vectors = np.linalg.eigh(_exact_hessian(model, data))
    assert values[0] < 0 < values[-1]  # the point is a saddle of the loss
    config = AnalysisConfig(directions=["hessian"], hessian_which="top_bottom", norm="none",
                            ignore_1d=False, dtype="float64", representations=["grid-full"],
                            resolution=7, hessian_top_k=2, trace_matvecs=6, density_lanczos=6,
                            noise_points=0)  # fmt: skip
    result = analyze(model, _mse, [data], config, progress=False)
    assert result.hessian["top_eigenvalue"] == pytest.approx(values[-1], rel=1e-6)
    assert result.hessian["bottom_eigenvalue"] == pytest.approx(values[0], rel=1e-6)
    assert "bottom_note" not in result.hessian
    row = result.rows()[0]
    assert row["hessian_bottom_eigenvalue"] == pytest.approx(values[0], rel=1e-6)
    # The plane's directions: the eigenvectors of the largest and the smallest eigenvalue.
    bottom = bottom_eigenpairs(model, _mse, [data], config, torch.float64)
    d = plane_directions(model, "hessian", config, None, None, result.eigenpairs, bottom)
    assert d.info["which"] == "top_bottom"
    assert d.info["eigenvalues"] == pytest.approx([values[-1], values[0]], rel=1e-6)
    flat = d.matrix().numpy()
    for got, want in zip(flat, (vectors[:, -1], vectors[:, 0]), strict=True):
        assert abs(got @ want) / np.linalg.norm(got) == pytest.approx(1.0, abs=1e-8)


def test_a_convex_point_says_so_and_still_uses_the_smallest_eigenvalue():
    from runs.test_analyze import Quadratic, quadratic_loss

    a = [1.0, 2.0, 7.0, 3.0]
    config = AnalysisConfig(directions=["hessian"], hessian_which="top_bottom", norm="none",
                            ignore_1d=False, dtype="float64", representations=["grid-full"],
                            resolution=5, hessian_top_k=2, trace_matvecs=6, density_lanczos=6,
                            noise_points=0)  # fmt: skip
    result = analyze(Quadratic(a), quadratic_loss, [torch.zeros(1)], config, progress=False)
    assert result.hessian["bottom_eigenvalue"] == pytest.approx(1.0, rel=1e-8)
    assert "not negative" in result.hessian["bottom_note"]
    info = result.landscapes["hessian"].info
    assert json.dumps(info).count("convex point") >= 1


# --- dynamics over two checkpoints ---------------------------------------------------------


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))


def _net_mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def _two_checkpoints(folder: Path) -> None:
    """Steps 0 and 5 of ``_net``, its first weight scaled by 1.5 before each."""
    net = _net()
    for step in (0, 5):
        with torch.no_grad():
            net[0].weight.mul_(1.5)
        save_checkpoint(net, folder / f"ckpt-{step}.safetensors")


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_dynamics_over_two_checkpoints_carries_per_span_rows(tmp_path, layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    data = (x, torch.sin(x[:, :1]))
    _two_checkpoints(tmp_path / "ckpts")
    cfg = AnalysisConfig(resolution=7, representations=["grid-full"], hessian=False,
                         noise_points=3, loops=False, span=[0.5, 1.0])  # fmt: skip
    rows = analyze_checkpoints(_net, tmp_path / "ckpts", _net_mse, data, cfg, tmp_path / "out",
                               progress=False, layout=layout)  # fmt: skip
    if layout == "wide":
        assert len(rows) == 2
        assert {
            "2d.grid-full@0p5.n_saddles",
            "2d.grid-full@1.n_saddles",
            "2d.grid-full.critical_span",
            "2d.grid-full.basin_radius",
        } <= set(rows[0])
        rows = planes_from_checkpoints(rows)
        assert {(r["step"], r.get("sweep_span", "")) for r in rows} == {
            (s, p) for s in (0, 5) for p in (0.5, 1.0, "")}  # fmt: skip
        return
    assert {(r["step"], r["sweep_span"]) for r in rows} == {(s, p) for s in (0, 5)
                                                      for p in (0.5, 1.0, "")}  # fmt: skip
    for r in rows:
        if r["sweep_span"] == "":
            assert r["basin_radius"] > 0 and "critical_span" in r
            assert math.isnan(r["bottleneck_to_previous"])
        else:
            assert "n_saddles" in r and r["n_vertices"] == 49
            previous = r["bottleneck_to_previous"]
            assert math.isnan(previous) if r["step"] == 0 else math.isfinite(previous)
    # Each span is its own series: the distance at span 0.5 is from span 0.5's diagram.
    later = {r["sweep_span"]: r["bottleneck_to_previous"] for r in rows
             if r["step"] == 5 and r["sweep_span"] != ""}  # fmt: skip
    assert later[0.5] != later[1.0]


# --- through the command line: `saddles run` with a sweep and the top/bottom plane ---------


def test_saddles_run_takes_a_span_sweep_and_the_top_bottom_plane(tmp_path, monkeypatch):
    from cli.test_cli_run import setup_files, write_config
    from typer.testing import CliRunner

    from saddles.cli import app

    setup_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    extra = "  span: [0.3, 1.0]\n  hessian_which: top_bottom\n  direction_seeds: 2\n"
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, extra)), "--quiet"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["direction"], r["sweep_span"]) for r in rows} == {
        (k, s) for k in ("random", "hessian") for s in ("0.3", "1.0", "")}  # fmt: skip
    assert all(float(r["hessian_bottom_eigenvalue"]) <= float(r["hessian_top_eigenvalue"])
               for r in rows)  # fmt: skip
    with open(tmp_path / "out" / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    random_rows = [r for r in summary if r["direction"] == "random"]
    assert {r["sweep_span"] for r in random_rows} == {"0.3", "1.0", ""}
    assert all(r["n_seeds"] == "2" for r in random_rows)
    bad = write_config(tmp_path, "  span: [0.3, -1]\n")
    result = CliRunner().invoke(app, ["run", str(bad), "--quiet"])
    assert result.exit_code == 2 and "span" in result.output


# --- compare: relations per span -----------------------------------------------------------


def test_compare_relates_each_span_and_the_scale_summaries_apart(tmp_path):
    from runs.test_compare import FACTORY, N_PARAMS
    from typer.testing import CliRunner

    from saddles.cli import app
    from saddles.runs.compare import compare_runs, load_runs
    from saddles.runs.relate import correlate

    (tmp_path / "nets.py").write_text(FACTORY)
    torch.manual_seed(0)
    torch.save((torch.randn(32, 4), torch.randint(0, 3, (32,))), tmp_path / "batch.pt")
    dirs = []
    for w in (4, 8, 16):
        (tmp_path / f"w{w}.yaml").write_text(
            f"name: w{w}\nmodel: nets.py:make_w{w}\ndata: batch.pt\ncriterion: cross_entropy\n"
            f"out: runs/w{w}\nanalysis:\n  directions: [random]\n  resolution: 7\n"
            f"  representations: [grid-full]\n  hessian: false\n  noise_points: 4\n"
            f"  span: [0.5, 2.0]\n"
        )
        result = CliRunner().invoke(app, ["run", str(tmp_path / f"w{w}.yaml"), "--quiet"])
        assert result.exit_code == 0, result.output
        dirs.append(tmp_path / "runs" / f"w{w}")
    table = compare_runs(load_runs(dirs), "n_params", n_boot=0, n_perm=10).relations
    assert {r["sweep_span"] for r in table} == {0.5, 2.0, ""}
    radius = [r for r in table if r["x"] == "basin_radius"]
    assert [r["sweep_span"] for r in radius] == [""] and radius[0]["n"] == 3
    # A span's relation is the correlation of that span's values only.
    row = next(r for r in table if r["x"] == "average_persistence" and r["sweep_span"] == 2.0)
    values = []
    for d, w in zip(dirs, (4, 8, 16), strict=True):
        with open(d / f"w{w}" / "metrics.csv") as f:
            values.append(next(float(r["average_persistence"]) for r in csv.DictReader(f)
                               if r["sweep_span"] == "2.0"))  # fmt: skip
    direct = correlate(np.array(values), np.array([N_PARAMS[w] for w in (4, 8, 16)], float),
                       "average_persistence", "n_params", n_boot=0, n_perm=10)  # fmt: skip
    assert row["spearman"] == direct.spearman and row["pearson"] == direct.pearson


def test_saddles_dynamics_prints_each_span_and_the_summaries(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from saddles.cli import app

    net = _net()
    for step in (0, 5):
        with torch.no_grad():
            net[0].weight.mul_(1.3)
        save_checkpoint(net, tmp_path / "ckpts" / f"ckpt-{step}.safetensors")
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    torch.save((x, torch.sin(x[:, :1])), tmp_path / "batch.pt")
    (tmp_path / "netdef.py").write_text(
        "import torch\n\ndef make_net():\n    return torch.nn.Sequential(torch.nn.Linear(2, 4), "
        "torch.nn.Tanh(), torch.nn.Linear(4, 1))\n"
    )
    (tmp_path / "d.yaml").write_text(
        "name: d\nmodel: netdef.py:make_net\ncheckpoints: ckpts\ndata: batch.pt\ncriterion: mse\n"
        "out: out\nanalysis:\n  resolution: 7\n  representations: [grid-full]\n"
        "  hessian: false\n  noise_points: 4\n  span: [0.5, 2.0]\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["dynamics", "d.yaml", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.count("span all") == 2 and result.output.count("span 2.0") == 2
    with open(tmp_path / "out" / "dynamics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["step"], r["sweep_span"]) for r in rows} == {
        (s, p) for s in ("0", "5") for p in ("0.5", "2.0", "")}  # fmt: skip


def test_saddles_experiment_takes_spans_and_the_hessian_plane(tmp_path):
    from typer.testing import CliRunner

    from saddles.cli import app

    out = tmp_path / "pinn"
    args = ["experiment", "pinn", "--out", str(out), "--betas", "1,3,5", "--max-iter", "20",
            "--resolution", "5", "--representations", "grid-full", "--span", "0.5,2",
            "--hessian-which", "top_bottom", "--quiet"]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, args)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["direction"], r["sweep_span"]) for r in rows} == {
        (k, s) for k in ("random", "hessian") for s in ("0.5", "2.0", "")}  # fmt: skip
    assert all(r["hessian_bottom_eigenvalue"] != "" for r in rows)
    for bad, word in (("0.1,-1", "span"), ("wide", "span")):
        result = CliRunner().invoke(app, [*args[:-3], "--span", bad, "--quiet"])
        assert result.exit_code == 2 and word in result.output
    result = CliRunner().invoke(app, [*args[:-2], "bottom", "--quiet"])
    assert result.exit_code == 2


def test_a_sweep_resumes_to_the_same_rows_and_the_hessian_policy_takes_top_bottom(tmp_path):
    config = ridge_config(span="auto", dtype="float32", resolution=5)
    first = analyze(Ridge(torch.float32), ridge_loss, DATA, config, given=axes(torch.float32),
                    progress=False, run_dir=tmp_path / "a")  # fmt: skip
    again = analyze(Ridge(torch.float32), ridge_loss, DATA, config, given=axes(torch.float32),
                    progress=False, run_dir=tmp_path / "a")  # fmt: skip
    assert json.dumps(again.rows(), default=str) == json.dumps(first.rows(), default=str)
    # The hessian policy of a dynamics run, with the top/bottom plane.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    _two_checkpoints(tmp_path / "ckpts")
    cfg = AnalysisConfig(resolution=5, representations=["grid-full"], hessian=False,
                         noise_points=0, loops=False, hessian_which="top_bottom")  # fmt: skip
    rows = analyze_checkpoints(_net, tmp_path / "ckpts", _net_mse, (x, torch.sin(x[:, :1])), cfg,
                               tmp_path / "out", policy="hessian", progress=False,
                               layout="long")  # fmt: skip
    assert {r["direction"] for r in rows} == {"hessian"} and len(rows) == 2
    info = json.loads((tmp_path / "out" / "ckpt-5" / "2d" / "landscape-hessian" /
                       "landscape.json").read_text())["info"]  # fmt: skip
    assert info["directions"]["which"] == "top_bottom"
    low, high = info["directions"]["eigenvalues"][1], info["directions"]["eigenvalues"][0]
    assert low <= high
