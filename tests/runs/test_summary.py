"""Honest numbers: direction-seed ensembles, scale-free metrics, the noise floor, adjusted
relations, and analyses that do not depend on the machine's load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_for_tests import busy_cpu

from saddles import directions as D
from saddles import sampling as S
from saddles.landscape import evaluate
from saddles.landscape.noise import noise_floor, sample_points
from saddles.runs.analyze import AnalysisConfig, analyze
from saddles.runs.summary import relations, seed_summary
from saddles.topology import compute_metrics, merge_tree, merge_tree_grid, noise_metrics

torch.set_num_threads(1)


def tiny_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def batches(n=3, size=16):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x = torch.randn(size, 3, generator=g)
        out.append((x, torch.sin(x.sum(dim=1, keepdim=True))))
    return out


def config(**kw):
    base = dict(resolution=9, hessian=False, directions=["random"], direction_seeds=3,
                representations=["grid-full", "knn"], threshold=0.05, noise_points=8)  # fmt: skip
    return AnalysisConfig(**{**base, **kw})


def test_every_seed_is_a_row_and_the_summary_covers_the_seeds():
    analysis = analyze(tiny_mlp(), mse, batches(), config(), name="m", progress=False)
    rows = analysis.rows()
    assert len(rows) == 3 * 2  # seeds x representations
    assert sorted({r["direction_seed"] for r in rows}) == [0, 1, 2]
    # each seed is its own plane: the counts are those of that seed's random directions
    for seed in (1, 2):
        d = D.random_directions(tiny_mlp(), 2, seed=seed)
        land = evaluate(tiny_mlp(), mse, batches(), d, S.grid(9, (-1, 1)), progress=False)
        row = next(
            r for r in rows if r["direction_seed"] == seed and r["representation"] == "grid-full"
        )
        assert (
            row["n_saddles"] == compute_metrics(merge_tree_grid(land.grid(), "full"))["n_saddles"]
        )
    summary = seed_summary(rows)
    assert len(summary) == 2 and all(s["n_seeds"] == 3 for s in summary)
    full = next(s for s in summary if s["representation"] == "grid-full")
    values = [r["n_saddles"] for r in rows if r["representation"] == "grid-full"]
    assert full["n_saddles_mean"] == pytest.approx(np.mean(values))
    assert full["n_saddles_median"] == pytest.approx(np.median(values))
    lo, hi = full["average_persistence_ci_low"], full["average_persistence_ci_high"]
    assert lo <= full["average_persistence_mean"] <= hi


def test_relative_persistence_is_divided_by_the_value_range():
    rng = np.random.default_rng(0)
    field = rng.normal(size=(15, 15))
    m = compute_metrics(merge_tree_grid(field, "full"), threshold=0.1, relative=True)
    span = field.max() - field.min()
    for key in ("average_persistence", "max_finite_persistence", "total_persistence_simplified"):
        assert m[f"{key}_relative"] == pytest.approx(m[key] / span)
    scaled = compute_metrics(
        merge_tree_grid(1000 * field + 5, "full"), threshold=0.1, relative=True
    )
    assert scaled["average_persistence_relative"] == pytest.approx(
        m["average_persistence_relative"]
    )
    assert np.isnan(
        compute_metrics(merge_tree_grid(np.ones((3, 3)), "full"))["max_persistence_relative"]
    )


def test_features_below_twice_the_floor_are_not_counted():
    # a 1-D path: minima at 0 (value 0), 2 (value 0.5), 4 (value 0.001 above 1); saddles between
    values = np.array([0.0, 2.0, 0.5, 1.003, 1.0, 3.0])
    edges = np.array([[i, i + 1] for i in range(5)])
    tree = merge_tree(values, edges)
    assert len(tree.minima) == 3
    # pairs: (1.0 dies at 1.003: persistence 0.003), (0.5 dies at 2.0: 1.5)
    m = noise_metrics(tree, 0.001)  # threshold 0.002 keeps the 0.003 pair
    assert (m["n_minima_above_noise"], m["n_saddles_above_noise"]) == (3, 2)
    m = noise_metrics(tree, 0.002)  # threshold 0.004 removes it
    assert (m["n_minima_above_noise"], m["n_saddles_above_noise"]) == (2, 1)
    assert np.isnan(noise_metrics(tree, float("nan"))["n_minima_above_noise"])


def test_noise_floor_against_a_float64_loop_and_batch_errors_by_hand():
    model, data = tiny_mlp(), batches()
    d = D.random_directions(model, 2, seed=0)
    land = evaluate(model, mse, data, d, S.grid(7, (-1, 1)), progress=False)
    out = noise_floor(model, mse, data, d, land, n_points=10, seed=3)
    pick = sample_points(land.n_points, 10, seed=3)
    assert pick[0] == 0 and len(pick) == 10
    # the oracle: a plain float64 loop over the same points
    m64 = tiny_mlp().double()
    theta0 = torch.nn.utils.parameters_to_vector(m64.parameters()).detach().clone()
    basis = torch.stack([D.flatten(t).double() for t in d.tensors])
    per_point, per_batch = [], []
    for c in land.coords[pick]:
        torch.nn.utils.vector_to_parameters(theta0 + torch.as_tensor(c) @ basis, m64.parameters())
        with torch.no_grad():
            vals = [float(mse(m64, (x.double(), y.double()))) for x, y in data]
        per_point.append(np.mean(vals))
    assert out["noise_floor"] == pytest.approx(
        np.max(np.abs(land.loss[pick] - np.array(per_point))), rel=1e-6, abs=1e-12
    )
    assert 0 < out["noise_floor"] < 1e-5
    # batch standard error at each point, by hand, from per-batch float32 landscapes
    for b in data:
        one = evaluate(model, mse, [b], d, land.coords[pick], engine="sequential", progress=False)
        per_batch.append(one.loss)
    per_batch = np.array(per_batch)
    se = np.std(per_batch, axis=0, ddof=1) / np.sqrt(len(data))  # equal batch sizes
    assert out["batch_stderr"] == pytest.approx(np.median(se), rel=1e-9)
    one = noise_floor(model, mse, data[0], d, land, n_points=4)
    assert np.isnan(one["batch_stderr"])


def test_relations_are_holm_adjusted_and_flag_only_what_survives():
    rng = np.random.default_rng(0)
    rows = []
    for i, x in enumerate(np.linspace(1, 10, 8)):
        for seed in range(3):
            rows.append({"model": f"m{i}", "direction": "random", "representation": "grid",
                         "x": x, "strong": 3 * x + rng.normal(scale=0.1),
                         "noise": rng.normal(), "direction_seed": seed})  # fmt: skip
    rels = relations(rows, ["strong", "noise"], ["x"], n_boot=500, n_perm=2000)
    by = {r["x"]: r for r in rels}
    assert by["strong"]["significant"] and not by["noise"]["significant"]
    assert by["strong"]["n"] == 8 and by["strong"]["n_seeds"] == 3
    assert by["strong"]["interval"] == "models, widened by seeds"
    p = sorted(r["spearman_p"] for r in rels)
    holm = sorted(r["spearman_p_holm"] for r in rels)
    assert holm[0] == pytest.approx(min(1, 2 * p[0]))


def test_the_same_analysis_beside_a_busy_process_gives_the_same_numbers():
    cfg = config(hessian=True, directions=["random", "hessian"], hessian_top_k=2,
                 trace_matvecs=9, density_lanczos=8)  # fmt: skip
    quiet = analyze(tiny_mlp(), mse, batches(), cfg, name="m", progress=False).rows()
    with busy_cpu():
        loaded = analyze(tiny_mlp(), mse, batches(), cfg, name="m", progress=False).rows()
    assert repr(loaded) == repr(quiet)  # repr: NaN == NaN, every digit compared
