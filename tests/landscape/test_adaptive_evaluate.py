"""Adaptive grids through evaluate: values equal a dense run's at the evaluated points, stored
like a dense grid with missing points marked, resumed bit for bit (after an exception and
after SIGKILL), through the pipeline (AnalysisConfig sampling: adaptive) and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models_for_tests import busy_cpu, small_cnn, tiny_mlp

from saddles import directions as D
from saddles import sampling as S
from saddles.landscape import Landscape, evaluate
from saddles.landscape.adaptive import Refiner, noise_target
from saddles.runs.config import AnalysisConfig
from saddles.topology import compute_metrics, merge_tree_grid

torch.set_num_threads(1)
TESTS = Path(__file__).resolve().parents[1]


def ce_loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


def test_values_match_a_dense_run_and_the_file_keeps_the_refinement(tmp_path):
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=1)
    coords = S.adaptive_grid(33, (-1.0, 1.0), dims=2, rel_target=0.02)
    land = evaluate(model, ce_loss, data, dirs, coords, engine="sequential", progress=False,
                    run_dir=tmp_path / "run")  # fmt: skip
    dense = evaluate(model, ce_loss, data, dirs, S.grid(33), engine="sequential", progress=False)
    m = land.measured
    assert land.is_adaptive and 81 <= m.sum() < m.size
    assert land.info["adaptive"]["n_evaluations"] == m.sum()
    np.testing.assert_array_equal(land.loss[m], dense.loss[m])  # the same points, same bits
    assert np.isnan(land.loss[~m]).all() and land.n_nonfinite == land.info["n_nonfinite"] == 0
    # the filled field is within the stated bound of the dense one, and so is its diagram
    bound = land.info["adaptive"]["bottleneck_bound"]
    assert np.abs(land.filled() - dense.loss).max() <= bound
    # the file holds the refinement: loading gives the same filled field and metrics
    loaded = Landscape.load(tmp_path / "run")
    np.testing.assert_array_equal(loaded.measured, m)
    np.testing.assert_array_equal(loaded.filled(), land.filled())
    _, metrics = loaded.topology("freudenthal")
    expected = compute_metrics(merge_tree_grid(land.filled().reshape(33, 33), "freudenthal"))
    assert metrics == expected
    # the rounds replayed from the stored values propose exactly the evaluated points
    refiner = Refiner.from_coordinates(coords)
    while (idx := refiner.propose()).size:
        assert m[idx].all()
        refiner.record(idx, land.loss[idx])
    np.testing.assert_array_equal(refiner.result().measured, m)


@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_resume_after_an_interruption_is_bit_identical(tmp_path, engine):
    model, data = small_cnn()
    dirs = D.random_directions(model, 2, seed=3)
    coords = S.adaptive_grid(17, (-1.0, 1.0), dims=2, coarse=5)
    state = {"calls": 0, "fail_after": None}

    def loss(m, batch):
        state["calls"] += 1
        if state["fail_after"] is not None and state["calls"] > state["fail_after"]:
            raise RuntimeError("simulated interruption")
        return ce_loss(m, batch)

    kw = {"engine": engine, "chunk_size": 4, "progress": False}
    reference = evaluate(model, loss, data, dirs, coords, run_dir=tmp_path / "ref", **kw)
    full = state["calls"]
    assert reference.info["adaptive"]["n_rounds"] >= 3
    run = tmp_path / "run"
    state.update(calls=0, fail_after=full // 2)  # in a later round than the first
    with pytest.raises(RuntimeError, match="simulated interruption"):
        evaluate(model, loss, data, dirs, coords, run_dir=run, **kw)
    state.update(calls=0, fail_after=None)
    resumed = evaluate(model, loss, data, dirs, coords, run_dir=run, resume=True, **kw)
    assert state["calls"] < full - 3  # the stored chunks were not recomputed
    np.testing.assert_array_equal(resumed.measured, reference.measured)
    np.testing.assert_array_equal(resumed.loss, reference.loss)
    assert resumed.info["adaptive"]["rounds"] == reference.info["adaptive"]["rounds"]


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from models_for_tests import small_cnn
    from saddles import directions as D, sampling as S
    from saddles.landscape import evaluate
    import torch.nn.functional as F

    KILL_AFTER = int(sys.argv[2])
    calls = [0]

    def loss(m, batch):
        calls[0] += 1
        if KILL_AFTER and calls[0] > KILL_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)
        x, y = batch
        return F.cross_entropy(m(x), y)

    model, data = small_cnn()
    dirs = D.random_directions(model, 2, seed=3)
    coords = S.adaptive_grid(17, (-1.0, 1.0), dims=2, coarse=5)
    land = evaluate(model, loss, data, dirs, coords, engine="sequential", chunk_size=4,
                    progress=False, run_dir=sys.argv[1], resume=True)
    np.save(sys.argv[1] + ".npy", land.loss)
    print(calls[0])
    """
)


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def run(where: Path, kill_after: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), str(where), str(kill_after)],
                              capture_output=True, text=True, env=env, timeout=300)  # fmt: skip

    ref = run(tmp_path / "ref", 0)
    assert ref.returncode == 0, ref.stderr
    full = int(ref.stdout.split()[-1])
    killed = run(tmp_path / "run", full // 2)
    assert killed.returncode == -9  # SIGKILL, mid-run
    assert not (tmp_path / "run" / "landscape.npz").exists()
    assert any((tmp_path / "run" / "chunks").iterdir())
    resumed = run(tmp_path / "run", 0)
    assert resumed.returncode == 0, resumed.stderr
    assert int(resumed.stdout.split()[-1]) < full  # stored chunks were kept
    a, b = np.load(tmp_path / "ref.npy"), np.load(tmp_path / "run.npy")
    assert np.array_equal(a, b, equal_nan=True)


def test_a_changed_adaptive_option_is_a_different_run(tmp_path):
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=1)
    evaluate(model, ce_loss, data, dirs, S.adaptive_grid(17, coarse=5), run_dir=tmp_path / "r",
             progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="adaptive"):
        evaluate(model, ce_loss, data, dirs, S.adaptive_grid(17, coarse=9),
                 run_dir=tmp_path / "r", resume=True, progress=False)  # fmt: skip


def test_analysis_config_adaptive():
    default = AnalysisConfig()
    assert not any(k.startswith("adaptive_") for k in default.identity())
    cfg = AnalysisConfig(sampling="adaptive", adaptive_target=0.05)
    assert cfg.identity()["adaptive_target"] == 0.05 and cfg.short_id() != default.short_id()
    assert "grid-ttk" in cfg.representations  # grid representations take adaptive sampling
    with pytest.raises(ValueError, match="adaptive_target must be a number in"):
        AnalysisConfig(sampling="adaptive", adaptive_target=0)
    with pytest.raises(ValueError, match="a grid takes 1 to 3 directions"):
        AnalysisConfig(sampling="adaptive", n_directions=4)
    with pytest.raises(ValueError, match="adaptive_coarse must be at least 2"):
        AnalysisConfig(adaptive_coarse=1)


def test_pipeline_with_adaptive_sampling():
    from saddles.runs.analyze import analyze

    model, data = tiny_mlp()
    cfg = AnalysisConfig(directions=["random"], sampling="adaptive", resolution=33,
                         hessian=False, noise_points=4, representations=["grid-ttk"])  # fmt: skip
    result = analyze(model, ce_loss, data, cfg, progress=False)
    land = result.landscapes["random"]
    assert land.is_adaptive and land.measured.sum() < land.measured.size
    noise = land.info["noise"]
    assert noise["noise_points"] == 4 and "coarse points" in noise["noise_note"]
    # the target is the larger of 1% of the range and what the estimate certifies over noise
    target = land.info["adaptive"]["target"]
    floor = noise_target(noise["noise_floor"], 2)
    assert target == max(0.01 * land.info["adaptive"]["value_range"], floor)
    assert land.info["coordinates"]["adaptive"]["noise"] == noise["noise_floor"]
    expected = merge_tree_grid(land.filled().reshape(33, 33), "freudenthal")
    metrics = result.topology["random"]["grid-ttk"]
    assert metrics["n_minima"] == len(expected.minima)
    assert metrics["adaptive_evaluations"] == land.measured.sum()
    assert metrics["adaptive_bound"] == land.info["adaptive"]["bottleneck_bound"] > 0


def test_cli_sampling_adaptive(tmp_path):
    from typer.testing import CliRunner

    from saddles.cli import app

    model, data = tiny_mlp()
    (tmp_path / "factory.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nfrom models_for_tests import tiny_mlp\n"
        "def make():\n    return tiny_mlp()[0]\n"
    )
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    torch.save(data, tmp_path / "data.pt")
    common = ["landscape", "--model", f"{tmp_path / 'factory.py'}:make", "--checkpoint",
              str(tmp_path / "ckpt.pt"), "--data", str(tmp_path / "data.pt"), "--criterion",
              "cross_entropy", "--grid", "17", "--sampling", "adaptive", "--quiet"]  # fmt: skip
    runner = CliRunner()
    ok = runner.invoke(app, [*common, "--adaptive-budget", "150", "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert "adaptive:" in ok.output and "of 289 points evaluated" in ok.output
    land = Landscape.load(tmp_path / "o")
    assert land.is_adaptive and land.measured.sum() <= 150
    bad = runner.invoke(app, [*common, "--adaptive-coarse", "1", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--adaptive-coarse" in bad.output


def test_figures_and_export_use_the_filled_field(tmp_path):
    from saddles.report.export import export_landscape
    from saddles.report.figures import landscape_figures

    model, data = tiny_mlp()
    land = evaluate(model, ce_loss, data, D.random_directions(model, 2, seed=1),
                    S.adaptive_grid(17, coarse=5), progress=False)  # fmt: skip
    assert landscape_figures(land, tmp_path / "fig")
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    paths = export_landscape(land, tmp_path / "export")
    reader = vtkXMLImageDataReader()  # the image read back: the filled field, marked
    reader.SetFileName(str(next(p for p in paths if p.suffix == ".vti")))
    reader.Update()
    point_data = reader.GetOutput().GetPointData()
    np.testing.assert_allclose(vtk_to_numpy(point_data.GetArray("loss")), land.filled())
    assert np.array_equal(vtk_to_numpy(point_data.GetArray("measured")), land.measured)


def test_identical_beside_a_busy_process():
    """The rounds never depend on timing: an auto-engine adaptive run with a CPU-bound
    process competing gives the same points and bits as a quiet one."""
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=1)
    coords = S.adaptive_grid(33, coarse=5)
    quiet = evaluate(model, ce_loss, data, dirs, coords, progress=False)
    with busy_cpu():
        loaded = evaluate(model, ce_loss, data, dirs, coords, progress=False)
    assert loaded.info["chunk_engines"] == quiet.info["chunk_engines"]
    np.testing.assert_array_equal(loaded.measured, quiet.measured)
    np.testing.assert_array_equal(loaded.loss, quiet.loss)


def test_a_noise_floor_above_the_target_spares_evaluations():
    """A float32 loss of 1000 + a small varying part: rounding noise is a large share of the
    range, so the noise-tied target stops the refinement earlier than 1% of the range."""
    from saddles.runs.analyze import analyze

    model, data = tiny_mlp()

    def offset_loss(m, batch):
        return 1000.0 + 1e-2 * ce_loss(m, batch)  # a float32 step is 1.5% of the range

    def run(noise_points: int) -> Landscape:
        cfg = AnalysisConfig(directions=["random"], sampling="adaptive", resolution=65,
                             hessian=False, noise_points=noise_points,
                             representations=["grid-ttk"])  # fmt: skip
        return analyze(model, offset_loss, data, cfg, progress=False).landscapes["random"]

    plain, tied = run(0), run(8)
    floor = tied.info["noise"]["noise_floor"]
    assert noise_target(floor, 2) > 0.01 * tied.info["adaptive"]["value_range"]  # the premise
    assert tied.info["adaptive"]["target"] == noise_target(floor, 2)
    assert tied.info["adaptive"]["target_source"] == "noise floor"
    assert tied.measured.sum() < plain.measured.sum()


def test_adaptive_with_eval_tokens_auto_matches_a_dense_auto_run_at_its_points():
    """eval_tokens='auto' on an adaptive grid (a bowl whose per-example noise is known, so
    points need different prefixes): the pilot (the centre and pilot rows of the finest grid)
    and so the standard-error target are the dense auto run's, and each point's prefix depends
    on its own values only, so every measured point has the dense run's loss, standard error
    and tokens, bit for bit; the unmeasured points have none."""
    from tests.landscape.test_noise_data import NOISE, UNIT, NoisyBowl, bowl_loss

    batches = [(t,) for t in NOISE.split(256)]
    dirs = [UNIT[:1].reshape(2), UNIT[1:].reshape(2)]
    kw = dict(engine="sequential", progress=False, eval_tokens="auto", stderr_target=0.01)
    coords = S.adaptive_grid(33, (-1.0, 1.0), rel_target=0.02)
    land = evaluate(NoisyBowl(), bowl_loss, batches, dirs, coords, **kw)
    dense = evaluate(NoisyBowl(), bowl_loss, batches, dirs, S.grid(33, (-1.0, 1.0)), **kw)
    m = land.measured
    assert land.is_adaptive and m.sum() < m.size
    assert land.info["data"]["stderr_target"] == dense.info["data"]["stderr_target"]
    assert len(np.unique(dense.tokens[m])) > 1  # the budgets differ between points
    for name in ("loss", "loss_stderr", "tokens"):
        np.testing.assert_array_equal(getattr(land, name)[m], getattr(dense, name)[m])
        assert np.isnan(getattr(land, name)[~m]).all()


def test_adaptive_with_a_batch_floor_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="batch_floor needs grid or scattered sampling") as e:
        AnalysisConfig(sampling="adaptive", batch_floor=2)
    assert "\n" not in str(e.value)
    path = tmp_path / "study.yaml"
    path.write_text("analysis:\n  sampling: adaptive\n  batch_floor: 2\n")
    with pytest.raises(ValueError, match="study.yaml: analysis: batch_floor needs") as e:
        AnalysisConfig.from_yaml(path)
    assert "\n" not in str(e.value)
    AnalysisConfig(sampling="grid", batch_floor=2)  # accepted
    AnalysisConfig(sampling="adaptive", eval_tokens="auto", noise_points=4)  # accepted


def test_a_run_of_another_error_estimate_is_not_resumed(tmp_path, monkeypatch):
    """The rounds follow from the error estimate, so its version is in the run's hash: a run
    directory made with another estimate is refused by name, not replayed onto wrong points."""
    from saddles.landscape import adaptive

    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=1)
    coords = S.adaptive_grid(17, (-1.0, 1.0), rel_target=0.05)
    kw = dict(engine="sequential", progress=False, run_dir=tmp_path / "run")
    evaluate(model, ce_loss, data, dirs, coords, **kw)
    evaluate(model, ce_loss, data, dirs, coords, resume=True, **kw)  # the same estimate
    monkeypatch.setattr(adaptive, "ESTIMATE", adaptive.ESTIMATE + 1)
    with pytest.raises(ValueError, match="differs in adaptive"):
        evaluate(model, ce_loss, data, dirs, coords, resume=True, **kw)
