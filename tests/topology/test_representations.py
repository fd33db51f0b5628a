"""saddles.topology.representations: one name -> graph -> merge tree for every path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import qmc
from typer.testing import CliRunner

from saddles.cli import app
from saddles.cli.topology import Representation
from saddles.landscape import Landscape
from saddles.runs.analyze import AnalysisConfig, landscape_topology
from saddles.runs.config import REPRESENTATIONS as PIPELINE_REPRESENTATIONS
from saddles.topology import (
    REPRESENTATIONS,
    compute_metrics,
    default_k,
    delaunay_edges,
    gabriel_edges,
    grid_edges,
    knn_edges,
    merge_tree,
    representation_edges,
    representation_name,
    representation_tree,
)
from saddles.topology import representations as reps

runner = CliRunner()


def rugged_4d(n: int = 1024, seed: int = 0) -> Landscape:
    """A rugged 4-D landscape at Sobol points: cosines plus Gaussian wells, many basins."""
    pts = 2 * qmc.Sobol(4, seed=seed).random(n) - 1
    rng = np.random.default_rng(seed)
    w, phase = rng.normal(scale=2.5, size=(30, 4)), rng.uniform(0, 2 * np.pi, 30)
    centres, depth = rng.uniform(-1, 1, size=(20, 4)), rng.uniform(0.5, 1.5, 20)
    wells = depth * np.exp(-((pts[:, None] - centres) ** 2).sum(-1) / 0.1)
    loss = 0.3 * np.cos(pts @ w.T + phase).sum(axis=1) - wells.sum(axis=1)
    return Landscape(pts, loss)


def counts(metrics) -> tuple[int, int]:
    return metrics["n_minima"], metrics["n_saddles"]


@pytest.fixture(scope="module")
def rugged():
    land = rugged_4d()
    direct = counts(compute_metrics(representation_tree("knn", land.loss, coords=land.coords)))
    return land, direct


def test_the_default_k_is_four_times_the_dimension(rugged):
    land, direct = rugged
    assert default_k(2) == 8 and default_k(4) == 16
    assert reps.representation_k("knn", 4) == 16 and reps.representation_k("knn", 4, 5) == 5
    assert reps.representation_k("gabriel", 4) is None
    edges = representation_edges("knn", coords=land.coords)
    np.testing.assert_array_equal(edges, knn_edges(land.coords, k=16, method="exact"))
    k16 = compute_metrics(merge_tree(land.loss, edges))
    assert counts(k16) == direct
    # the landscape is rugged enough that the old fixed k = 8 counts differently
    k8 = representation_tree("knn", land.loss, coords=land.coords, k=8)
    assert counts(compute_metrics(k8)) != direct


def test_pipeline_and_cli_agree_with_the_representation(rugged, tmp_path):
    land, direct = rugged
    config = AnalysisConfig()
    assert config.knn_k is None
    _, metrics = landscape_topology(land, "knn", config)
    assert counts(metrics) == direct
    path = land.save(tmp_path / "rugged")
    result = runner.invoke(app, ["topology", str(path), "--json"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.output)
    assert counts(m) == direct
    assert m["representation"] == "knn" and "k = 16" in m["connectivity"]
    # an explicit k is still honoured, by both
    _, k8 = landscape_topology(land, "knn", AnalysisConfig(knn_k=8))
    result = runner.invoke(app, ["topology", str(path), "--json", "--k", "8"])
    assert counts(json.loads(result.output)) == counts(k8) != direct


def test_landscape_topology_agrees_with_the_representation(rugged):
    land, direct = rugged
    assert counts(land.topology()[1]) == direct


def test_landscape_topology_goes_through_the_representation(rugged, monkeypatch):
    land, direct = rugged
    calls, real = [], reps.representation_tree

    def spy(name, values, **options):
        calls.append(name)
        return real(name, values, **options)

    monkeypatch.setattr("saddles.topology.representation_tree", spy)
    monkeypatch.setattr("saddles.topology.representations.representation_tree", spy)
    assert counts(land.topology()[1]) == direct
    assert calls == ["knn"]


def test_every_name_builds_its_graph(monkeypatch):
    rng = np.random.default_rng(0)
    pts = rng.random((200, 2))
    values = np.sin(5 * pts[:, 0]) + np.cos(4 * pts[:, 1])
    expected = {
        "delaunay": delaunay_edges(pts),
        "gabriel": gabriel_edges(pts),
        "knn": knn_edges(pts, k=8, method="exact"),
    }
    for name, edges in expected.items():
        np.testing.assert_array_equal(representation_edges(name, coords=pts), edges)
        tree = representation_tree(name, values, coords=pts)
        assert compute_metrics(tree) == compute_metrics(merge_tree(values, edges)), name
    # knn-approx is NN-Descent (its recall is tested with the builders; its JIT is slow)
    seen = []
    monkeypatch.setattr(reps, "knn_edges", lambda p, **kw: seen.append(kw) or knn_edges(p, k=3))
    representation_tree("knn-approx", values, coords=pts, mode="mutual")
    assert seen == [{"k": 8, "method": "approximate", "mode": "mutual"}]
    field = rng.random((9, 11))
    for name, conn in reps.GRID_REPRESENTATIONS.items():
        edges = representation_edges(name, shape=field.shape)
        np.testing.assert_array_equal(edges, grid_edges(field.shape, conn))
        for values_in in (field, field.ravel()):  # grid-shaped or flat, as a Landscape holds it
            tree = representation_tree(name, values_in, shape=field.shape)
            assert compute_metrics(tree) == compute_metrics(merge_tree(field.ravel(), edges))


def test_one_table_of_names():
    assert PIPELINE_REPRESENTATIONS is REPRESENTATIONS
    assert {r.value for r in Representation} == set(REPRESENTATIONS)
    assert set(reps.GRID_REPRESENTATIONS) <= set(REPRESENTATIONS)


def test_old_connectivity_names_map_to_representations():
    assert representation_name("full", grid=True) == "grid-full"
    assert representation_name("faces", grid=True) == "grid-faces"
    assert representation_name("freudenthal", grid=True) == "grid-ttk"
    assert representation_name(grid=False) == "knn"
    assert representation_name(grid=False, method="approximate") == "knn-approx"
    assert representation_name(grid=False, method="auto", dims=4) == "knn"
    assert representation_name(grid=False, method="auto", dims=8) == "knn-approx"
    with pytest.raises(ValueError, match="connectivity"):
        representation_name("diagonal", grid=True)


def test_mistakes_are_named():
    pts = np.random.default_rng(0).random((20, 2))
    with pytest.raises(ValueError, match="unknown representation 'knn8'"):
        representation_tree("knn8", np.zeros(20), coords=pts)
    with pytest.raises(ValueError, match="needs a grid"):
        representation_tree("grid-full", np.zeros(20), coords=pts)
    with pytest.raises(ValueError, match="coordinates"):
        representation_tree("knn", np.zeros((4, 5)), shape=(4, 5))
    with pytest.raises(ValueError, match="20 values"):
        representation_tree("grid-full", np.zeros(20), shape=(4, 4))
    with pytest.raises(ValueError, match="positive integer"):
        default_k(0)
    with pytest.raises(ValueError, match="knn_k"):
        AnalysisConfig(knn_k=0)
    result = runner.invoke(app, ["topology", "--help"])
    assert "--representation" in result.output and "--k" in result.output
