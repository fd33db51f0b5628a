"""The batch noise floor: the diagram's dependence on which evaluation data is used.

Oracle: two landscape runs on the two halves of the data, made by hand, and the spread of
their difference in plain numpy; the counterexample that retired the bottleneck distance
between the halves' diagrams (gudhi) as a floor.
"""

from __future__ import annotations

import gudhi
import numpy as np
import pytest
import torch

from saddles.directions import random_directions
from saddles.io.data import make_loss, split_parts
from saddles.landscape import evaluate
from saddles.runs.analyze import AnalysisConfig, analyze, landscape_dir, make_coordinates
from saddles.topology import simplify
from tests.models_for_tests import tiny_mlp


def test_batch_floor_is_the_bottleneck_distance_between_two_halves(tmp_path):
    model, (x, y) = tiny_mlp(seed=4)
    loss = make_loss(criterion="cross_entropy")
    config = AnalysisConfig(directions=["random"], resolution=9, span=2.0, hessian=False,
                            representations=["grid-full"], loops=False, noise_points=4,
                            batch_floor=2, engine="sequential")  # fmt: skip
    analysis = analyze(model, loss, (x, y), config, run_dir=tmp_path, progress=False)
    metrics = analysis.topology["random"]["grid-full"]
    # by hand: the same directions and points, one landscape on each half of the data
    d = random_directions(model, 2, seed=config.seed, norm=config.norm)
    coords = make_coordinates(config)
    halves = [evaluate(model, loss, (x[a:b], y[a:b]), d, coords, engine="sequential",
                       progress=False) for a, b in ((0, 32), (32, 64))]  # fmt: skip
    difference = halves[0].loss - halves[1].loss
    expected = (difference.max() - difference.min()) / 2 / 2  # ptp / 2, over sqrt(2 x 2)
    assert expected > 0
    assert metrics["batch_floor"] == pytest.approx(expected, rel=1e-12)
    # the floor used is the larger one, and the counts are those above twice it
    floor = max(metrics["arithmetic_floor"], metrics["batch_floor"])
    assert metrics["noise_floor"] == floor
    assert metrics["noise_floor_source"] == "batch"  # float32 rounding is far below
    tree = analysis.trees["random"]["grid-full"]
    assert metrics["n_saddles_above_noise"] == len(simplify(tree, 2 * floor).saddles)
    # the parts' landscapes are kept (resumable) beside the full one
    part = tmp_path / f"{landscape_dir('random', config.seed, config)}-part1"
    assert (part / "landscape.npz").exists()
    row = analysis.rows()[0]
    assert row["batch_floor"] == metrics["batch_floor"]


def test_split_parts_is_in_order_disjoint_and_refuses_point_sets():
    x = torch.arange(10).reshape(5, 2)
    parts = split_parts([(x[:2],), (x[2:],)], 2)
    rows = [torch.cat([b[0] for b in part]) for part in parts]
    assert [r.shape[0] for r in rows] == [3, 2]
    assert torch.equal(torch.cat(rows), x)
    with pytest.raises(ValueError, match="cannot be cut"):
        split_parts([(torch.zeros(4, 2), torch.zeros(3, 1))], 2)
    with pytest.raises(ValueError, match="give 2 to 5"):
        split_parts([(x,)], 6)


def test_noise_metrics_say_which_floor_they_use():
    from saddles.topology import merge_tree_grid, noise_metrics

    field = np.array([[3.0, 1.0, 3.0, 1.2, 3.0]])
    tree = merge_tree_grid(field)
    arithmetic = noise_metrics(tree, 0.01)
    assert arithmetic["noise_floor_source"] == "arithmetic" and np.isnan(arithmetic["batch_floor"])
    batch = noise_metrics(tree, 0.01, batch_floor=1.0)  # 2 x 1.0 > the pair of 1.2 (1.8)
    assert batch["noise_floor_source"] == "batch" and batch["noise_floor"] == 1.0
    assert batch["n_minima_above_noise"] < arithmetic["n_minima_above_noise"]
    neither = noise_metrics(tree, float("nan"))
    assert neither["noise_floor_source"] == "none" and np.isnan(neither["n_saddles_above_noise"])


def test_an_auto_landscape_in_an_analysis_has_an_arithmetic_floor_on_its_own_tokens(tmp_path):
    # the float64 reference of each noise point is evaluated on the tokens that point used:
    # on all the data instead, the floor would be the data's noise (about the standard error)
    model, _ = tiny_mlp(seed=5)
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randn(2048, 4, generator=gen), torch.randint(0, 3, (2048,), generator=gen)
    config = AnalysisConfig(directions=["random"], resolution=7, span=2.0, hessian=False,
                            representations=["grid-full"], loops=False, noise_points=8,
                            eval_tokens="auto", stderr_target=0.05)  # fmt: skip
    analysis = analyze(model, make_loss(criterion="cross_entropy"), (x, y), config,
                       run_dir=tmp_path, progress=False)  # fmt: skip
    land = analysis.landscapes["random"]
    assert land.tokens is not None and land.tokens.min() < land.tokens.max()
    metrics = analysis.topology["random"]["grid-full"]
    assert metrics["arithmetic_floor"] < 1e-5 < metrics["loss_stderr_median"]
    assert metrics["noise_floor_source"] == "arithmetic"
    assert metrics["tokens_per_point"] == pytest.approx(land.tokens.mean())
    from saddles.report.figures import write_figures

    figures = write_figures(analysis, tmp_path / "figures")
    assert (tmp_path / "figures" / "random-tokens.png").exists()
    assert any("tokens per point" in label for label in figures)


def _tree(values: np.ndarray):
    from saddles.topology import merge_tree_grid

    return merge_tree_grid(values)


def _parts(*fields):
    from saddles.landscape.result import Landscape

    return [Landscape(coords=np.zeros((len(f), 1)), loss=np.asarray(f, float)) for f in fields]


def test_batch_floor_bounds_the_values_where_the_diagrams_distance_does_not():
    """Two halves with one basin each whose mean has a saddle of persistence 1: their
    diagrams' bottleneck distance (gudhi) is 0, so it cannot be a floor; the spread of their
    difference is 8, and the floor (4) keeps the saddle below the noise. A constant between
    the halves moves nothing."""
    from saddles.landscape.noise import batch_floor
    from saddles.topology import noise_metrics

    x = np.linspace(-2, 2, 41)
    f1, f2 = x**4 - 2 * x**2 + 2 * x, x**4 - 2 * x**2 - 2 * x
    t1, t2, mean = _tree(f1), _tree(f2), _tree((f1 + f2) / 2)
    assert len(t1.saddles) == len(t2.saddles) == 0 and len(mean.saddles) == 1
    assert gudhi.bottleneck_distance(t1.diagram(), t2.diagram()) == pytest.approx(0, abs=1e-300)
    floor = batch_floor(_parts(f1, f2))
    assert floor == pytest.approx(np.ptp(f1 - f2) / 2 / 2) and floor == pytest.approx(4.0)
    assert noise_metrics(mean, 0.0, batch_floor=floor)["n_saddles_above_noise"] == 0
    assert batch_floor(_parts(f1, f1 + 5.0)) == pytest.approx(0, abs=1e-14)  # rounding of +5
    three = batch_floor(_parts(f1, f2, f1 + 0.1 * x))  # the worst pair, over sqrt(2 x 3)
    assert three == pytest.approx(np.ptp(f2 - (f1 + 0.1 * x)) / 2 / np.sqrt(6))  # 4.1 x
    assert np.isnan(batch_floor(_parts(f1)))
