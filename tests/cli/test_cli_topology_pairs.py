"""`saddles topology --pairs`, `--vs` and `--plot` over stored coordinates."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from saddles.cli import app
from saddles.topology import diagram_distances, merge_tree_grid

runner = CliRunner()


def landscape_npz(path, scale=1.0):
    """A grid landscape as `saddles landscape` stores it: loss in the grid's shape, coords."""
    axis0, axis1 = np.linspace(-2, 2, 9), np.linspace(1000, 5000, 11)
    a0, a1 = np.meshgrid(axis0, axis1, indexing="ij")
    loss = scale * (np.cos(2 * a0) + ((a1 - 3000) / 1000) ** 2)
    np.savez(path, loss=loss, coords=np.stack([a0.ravel(), a1.ravel()], axis=1))
    return path, loss, axis0, axis1


def test_pairs_carry_values_vertices_and_stored_coordinates(tmp_path):
    path, loss, axis0, axis1 = landscape_npz(tmp_path / "a.npz")
    result = runner.invoke(app, ["topology", str(path), "--json", "--pairs"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    pairs = out["pairs"]
    tree = merge_tree_grid(loss, "full")
    assert len(pairs) == len(tree.pairs) + 1 and pairs[-1]["essential"]
    for p in pairs:
        i, j = np.unravel_index(p["birth_vertex"], loss.shape)
        assert p["birth"] == loss[i, j] and p["birth_coords"] == [axis0[i], axis1[j]]
        assert p["persistence"] == pytest.approx(p["death"] - p["birth"])
    # without stored coordinates: grid indices
    np.save(tmp_path / "b.npy", loss)
    result = runner.invoke(app, ["topology", str(tmp_path / "b.npy"), "--json", "--pairs"])
    first = json.loads(result.output)["pairs"][0]
    assert first["birth_coords"] == list(np.unravel_index(first["birth_vertex"], loss.shape))
    table = runner.invoke(app, ["topology", str(path), "--pairs"])
    assert table.exit_code == 0 and "persistence pairs" in table.output


def test_vs_prints_distances_raw_and_normalized(tmp_path):
    a, loss_a, _, _ = landscape_npz(tmp_path / "a.npz")
    b, loss_b, _, _ = landscape_npz(tmp_path / "b.npz", scale=3.0)
    result = runner.invoke(app, ["topology", str(a), "--vs", str(b), "--json"])
    assert result.exit_code == 0, result.output
    vs = json.loads(result.output)["vs"]
    expect = diagram_distances(merge_tree_grid(loss_a), merge_tree_grid(loss_b))
    for key, value in expect.items():
        assert vs[key] == pytest.approx(value)
    assert vs["bottleneck"] > 0 and vs["bottleneck_normalized"] == pytest.approx(0, abs=1e-12)
    table = runner.invoke(app, ["topology", str(a), "--vs", str(b)])
    assert table.exit_code == 0 and "wasserstein_2_normalized" in table.output


def test_plots_are_named_after_the_input_and_use_stored_coordinates(tmp_path):
    a, *_ = landscape_npz(tmp_path / "a.npz")
    b, *_ = landscape_npz(tmp_path / "b.npz", scale=2.0)
    out = tmp_path / "figs"
    for path in (a, b):
        result = runner.invoke(app, ["topology", str(path), "--plot", str(out), "--json"])
        assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}-{f}.png" for s in "ab"
                           for f in ("persistence", "merge-tree", "field"))  # fmt: skip


def test_field_figure_axes_are_the_coordinates(tmp_path, monkeypatch):
    from saddles.report import plots

    path, *_ = landscape_npz(tmp_path / "a.npz")
    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, p, **kw: drawn.append((fig, p)) or p)
    result = runner.invoke(app, ["topology", str(path), "--plot", str(tmp_path)])
    assert result.exit_code == 0, result.output
    field_fig = next(fig for fig, p in drawn if p.name == "a-field.png")
    ax = field_fig.axes[0]
    assert ax.get_xlim() == pytest.approx((-2, 2)) and ax.get_ylim() == pytest.approx((1000, 5000))
    label = ax.yaxis.get_major_formatter()(4000.0, 0)
    assert label == "4000"
