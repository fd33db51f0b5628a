"""The batch noise floor: the diagram's dependence on which evaluation data is used.

Oracle: two landscape runs on the two halves of the data, made by hand, and
``gudhi.bottleneck_distance`` between their merge trees' minimum-saddle pairs, each half's
values less its loss at the centre.
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
from saddles.topology.persistence import ttk_diagram
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
    diagrams = [h.topology("full")[0].diagram() - h.loss[len(h.loss) // 2] for h in halves]
    expected = gudhi.bottleneck_distance(*diagrams)
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


def test_batch_floor_ignores_the_loss_level_and_the_essential_class():
    """Two parts whose landscapes differ by a constant have the same features: floor 0 (the
    diagrams with their essential classes were half the range apart); a feature present in
    one part only costs half its persistence, the oracle's matching to the diagonal."""
    from saddles.landscape.noise import batch_floor

    x = np.linspace(-2, 2, 41)
    base = (x**2 - 1) ** 2  # two minima at +-1, a saddle of height 1 at 0 (persistence 1)
    a, b = _tree(base), _tree(base + 5.0)
    assert batch_floor([a, b], [1.0, 6.0]) == 0.0
    essential = gudhi.bottleneck_distance(ttk_diagram(a), ttk_diagram(b))
    assert essential == pytest.approx((base.max() - base.min()) / 2)  # what the old floor saw
    bowl = _tree(x**2 + 2.0)  # one basin: the saddle of ``base`` is missing
    assert batch_floor([a, bowl], [1.0, 2.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 trees but 1 centre"):
        batch_floor([a, bowl], [1.0])
