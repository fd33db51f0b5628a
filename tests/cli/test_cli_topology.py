"""End-to-end tests of `saddles topology` and `saddles demo`, as a new user would run them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from saddles.analytic import himmelblau
from saddles.cli import app

runner = CliRunner()


def himmelblau_file(tmp_path):
    g = np.linspace(-5, 5, 101)
    x, y = np.meshgrid(g, g)
    path = tmp_path / "himmelblau.npy"
    np.save(path, himmelblau(x, y))
    return path


def test_json_output_has_the_documented_keys(tmp_path):
    result = runner.invoke(app, ["topology", str(himmelblau_file(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.output)
    for key in ("n_minima", "n_saddles", "n_merge_events", "average_persistence",
                "total_persistence", "max_persistence", "average_finite_persistence"):  # fmt: skip
        assert key in m
    assert (m["n_minima"], m["n_saddles"]) == (4, 3)


def test_table_threshold_and_plots(tmp_path):
    field = np.random.default_rng(0).random((30, 40, 5))
    path = tmp_path / "noise.npy"
    np.save(path, field)
    out = tmp_path / "figs"
    result = runner.invoke(
        app,
        ["topology", str(path), "--connectivity", "faces", "--threshold", "0.5", "--relative",
         "--plot", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "n_minima_simplified" in result.output
    assert (out / "noise-persistence.png").stat().st_size > 1000
    assert (out / "noise-merge-tree.png").stat().st_size > 1000


def test_2d_plot_includes_the_field(tmp_path):
    out = tmp_path / "figs"
    result = runner.invoke(app, ["topology", str(himmelblau_file(tmp_path)), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "himmelblau-field.png").exists()


def test_npz_with_loss_key_and_high_dimensional_field(tmp_path):
    path = tmp_path / "landscape.npz"
    np.savez(path, loss=np.random.default_rng(1).random((3,) * 6), coords=np.zeros(3))
    result = runner.invoke(app, ["topology", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["shape"] == [3] * 6


def test_bad_inputs_give_clear_messages(tmp_path):
    result = runner.invoke(app, ["topology", str(tmp_path / "missing.npy")])
    assert result.exit_code != 0 and "no such file" in result.output
    bad = tmp_path / "nan.npy"
    np.save(bad, np.array([[0.0, np.nan], [1.0, 2.0]]))
    result = runner.invoke(app, ["topology", str(bad)])
    assert result.exit_code != 0 and "NaN" in result.output
    result = runner.invoke(app, ["topology", str(bad), "--nan-policy", "max", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["n_nonfinite"] == 1
    text = tmp_path / "notes.npy"
    text.write_text("not an array")
    result = runner.invoke(app, ["topology", str(text)])
    assert result.exit_code != 0 and "not a .npy/.npz" in result.output


def test_every_command_has_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert "topology" in commands
    for name in commands:
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output, name


def test_topology_command_does_not_import_torch(tmp_path):
    path = himmelblau_file(tmp_path)
    code = (
        "import sys\n"
        "from saddles.cli import app\n"
        "try:\n"
        f"    app(['topology', {str(path)!r}, '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"n_minima": 4' in proc.stdout


def test_package_exports_load_lazily():
    code = (
        "import sys, saddles\n"
        "assert 'torch' not in sys.modules\n"
        "saddles.merge_tree_grid\n"
        "assert 'torch' not in sys.modules\n"
        "for name in saddles.__all__:\n"
        "    getattr(saddles, name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_scattered_landscape_uses_a_knn_graph(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-5, 5, size=(3000, 2))
    path = tmp_path / "scattered.npz"
    np.savez(path, loss=himmelblau(pts[:, 0], pts[:, 1]), coords=pts)
    result = runner.invoke(app, ["topology", str(path), "--json", "--threshold", "0.01",
                                 "--relative"])  # fmt: skip
    assert result.exit_code == 0, result.output
    m = json.loads(result.output)
    assert m["connectivity"].startswith("knn")
    # The deepest barrier matches the grid's (104.0 on a 401^2 grid); a k=8 graph on random
    # points also keeps a few shallow spurious basins, so only a lower bound on the count.
    assert m["max_finite_persistence"] == pytest.approx(104.0, rel=0.05)
    assert m["n_minima_simplified"] >= 4


def test_negative_threshold_is_named(tmp_path):
    result = runner.invoke(app, ["topology", str(himmelblau_file(tmp_path)), "--threshold", "-1"])
    assert result.exit_code != 0 and "--threshold" in result.output
