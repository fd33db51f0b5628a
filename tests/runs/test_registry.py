"""saddles.runs.registry: every metric a stage computes is declared, and every declared metric
that a view shows is computed by some stage."""

from __future__ import annotations

import json

import pytest
import torch

from saddles.experiments import save_checkpoint
from saddles.runs import registry
from saddles.runs.analyze import AnalysisConfig
from saddles.runs.series import analyze_checkpoints

#: Columns that say which number a row holds (and bookkeeping), not metrics.
NOT_METRICS = {"run", "checkpoint", "step", "policy", "subspace", "model", "direction",
               "representation", "direction_seed", "sweep_span", "seconds", "n_params", "tokens",
               "tokens_seen", "duplicate_of"}  # fmt: skip


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))


def _mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


@pytest.fixture(scope="module")
def long_rows(tmp_path_factory):
    """The long rows of a two-checkpoint run with every stage on: noise, loops, the Hessian
    (its top/bottom plane), a span sweep and its scale summaries, the diagram distances and a
    sidecar's losses."""
    root = tmp_path_factory.mktemp("registry")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    data = (x, torch.sin(x[:, :1]))
    net = _net()
    for step in (0, 5):
        with torch.no_grad():
            net[0].weight.mul_(1.1)
        save_checkpoint(net, root / "ckpts" / f"ckpt-{step}.safetensors")
        (root / "ckpts" / f"ckpt-{step}.json").write_text(
            json.dumps({"step": step, "train_loss": 1.0 / (step + 1), "val_loss": 0.5})
        )
    cfg = AnalysisConfig(resolution=5, representations=["grid-full", "knn"], hessian_top_k=2,
                         trace_matvecs=6, density_lanczos=6, noise_points=3, loops=True,
                         direction_seeds=2, threshold=0.05, span=[0.5, 1.0],
                         hessian_which="top_bottom")  # fmt: skip
    return analyze_checkpoints(_net, root / "ckpts", _mse, data, cfg, root / "out",
                               progress=False, layout="long")  # fmt: skip


def test_every_computed_metric_is_declared(long_rows):
    columns = {k for r in long_rows for k in r} - NOT_METRICS
    undeclared = sorted(c for c in columns if not registry.is_declared(c))
    assert not undeclared, f"declare these in saddles.runs.registry: {undeclared}"


def test_every_shown_metric_is_computed(long_rows):
    columns = {k for r in long_rows for k in r}
    shown = {name for view in registry.VIEWS for name in registry.metrics_for(view)}
    assert shown, "no view shows any metric"
    assert sorted(shown - columns) == []


def test_lookup_resolves_variants_and_refuses_the_rest():
    m = registry.lookup("average_finite_persistence_simplified_relative")
    assert m.kind == "relative" and m.stage == "simplified" and not m.shown_in
    assert registry.lookup("n_saddles_simplified").shown_in  # declared itself: its own entry
    assert not registry.is_declared("n_saddles_relative")  # a count has no relative variant
    with pytest.raises(KeyError, match="not declared"):
        registry.lookup("n_saddle")
    with pytest.raises(ValueError, match="unknown view"):
        registry.metrics_for("tabel")


def test_views_follow_the_declaration_order():
    order = [m.name for m in registry.METRICS]
    for view in registry.VIEWS:
        names = registry.metrics_for(view)
        if view not in registry.BY_STAGE:
            assert names == sorted(names, key=order.index)
    table = registry.metrics_for("table")
    stages = [registry.lookup(n).stage for n in table]
    assert stages == sorted(stages, key=registry.STAGES.index)


def test_a_bad_declaration_is_refused():
    with pytest.raises(ValueError, match="unknown view"):
        registry.Metric("x", "an x", "count", "count", "topology", frozenset({"tabel"}))
    with pytest.raises(ValueError, match="kind must be"):
        registry.Metric("x", "an x", "count", "counts", "topology")
