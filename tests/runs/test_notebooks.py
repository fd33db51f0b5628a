"""Notebook use: short reprs, Analysis._repr_html_, pairs files, and rerunning a finished run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saddles import directions as D
from saddles import sampling as S
from saddles.landscape import evaluate
from saddles.runs.analyze import AnalysisConfig, analyze


def tiny():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=g)
    return model, (x, torch.sin(x.sum(dim=1, keepdim=True)))


def mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def test_analysis_repr_html_and_pairs_files(tmp_path):
    import matplotlib.pyplot as plt

    model, data = tiny()
    cfg = AnalysisConfig(directions=["random"], hessian=False, resolution=7, loops=False,
                         representations=["grid-full", "knn"], threshold=0.05)  # fmt: skip
    result = analyze(model, mse, data, cfg, name="tiny", run_dir=tmp_path, progress=False)
    text = repr(result)
    assert text.startswith("Analysis('tiny'") and "array" not in text and len(text) < 200
    tree = result.trees["random"]["grid-full"]
    assert "MergeTree(49 vertices" in repr(tree)
    figures_before = plt.get_fignums()
    html = result._repr_html_()
    assert "<table>" in html and "data:image/png;base64," in html and "n_minima" in html
    assert plt.get_fignums() == figures_before  # no pyplot figure left behind
    for rep in ("grid-full", "knn"):
        with np.load(tmp_path / f"pairs-random-{rep}.npz") as z:
            tree = result.trees["random"][rep]
            assert len(z["birth"]) == len(tree.pairs) + tree.n_components
            coords = result.landscapes["random"].coords
            np.testing.assert_array_equal(z["birth_coords"], coords[z["birth_vertex"]])
            np.testing.assert_allclose(z["death"] - z["birth"], z["persistence"])
    row = result.rows()[0]
    assert {"smad", "smad_normalized", "largest_basin_share", "basin_sizes"} <= set(row)


def test_rerunning_a_finished_run_returns_it(tmp_path):
    model, data = tiny()
    dirs = D.random_directions(model, 2, seed=0)
    first = evaluate(model, mse, data, dirs, S.grid(5), run_dir=tmp_path / "r", progress=False)
    again = evaluate(model, mse, data, dirs, S.grid(5), run_dir=tmp_path / "r", progress=False)
    np.testing.assert_array_equal(again.loss, first.loss)
    # a different configuration in a finished run directory is still refused
    with pytest.raises(FileExistsError, match="resume=True"):
        evaluate(model, mse, data, dirs, S.grid(7), run_dir=tmp_path / "r", progress=False)
