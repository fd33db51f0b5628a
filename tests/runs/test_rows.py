"""saddles.runs.rows: number rows, and the plane and checkpoint tables derived from them."""

from __future__ import annotations

import json

import pytest
import torch

from saddles.experiments import save_checkpoint
from saddles.runs.analyze import AnalysisConfig, analyze
from saddles.runs.rows import (
    NUMBER_COLUMNS,
    checkpoint_columns,
    planes_from_checkpoints,
    to_numbers,
    to_planes,
)
from saddles.runs.series import ROW_METRICS, analyze_checkpoints


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))


def _mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def _data():
    x = torch.randn(24, 2, generator=torch.Generator().manual_seed(0))
    return x, torch.sin(x[:, :1])


def _config(**kw):
    base = dict(resolution=5, representations=["grid-full", "knn"], hessian_top_k=2,
                trace_matvecs=6, density_lanczos=6, direction_seeds=2, threshold=0.05)  # fmt: skip
    return AnalysisConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def analysis():
    """Two direction kinds, two random seeds, two representations, quality numbers."""
    return analyze(_net(), _mse, _data(), _config(seed=3), name="net",
                   quality={"loss": 0.25, "arch": "mlp"}, progress=False)  # fmt: skip


def _rows_as_before(a):
    """Analysis.rows as it was built before the number rows (the reference)."""
    scalars = {f"hessian_{k}": v for k, v in a.hessian.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}  # fmt: skip
    out = []
    for kind, entries in a.ensembles.items():
        for entry in entries:
            seed = entry["direction_seed"]
            for rep, metrics in entry["topology"].items():
                out.append({"model": a.name, "direction": kind, "representation": rep,
                            "direction_seed": "" if seed is None else seed,
                            **a.quality, **metrics, **scalars})  # fmt: skip
    return out


def _wide_as_before(a, label):
    """The wide row's columns as analyze_checkpoints built them before (the reference)."""
    row = {}
    for kind, reps in a.topology.items():
        for rep, metrics in reps.items():
            prefix = f"{label}.{rep}" if len(a.config.directions) == 1 else f"{label}.{kind}.{rep}"
            for m in ROW_METRICS:
                if m in metrics:
                    row[f"{prefix}.{m}"] = metrics[m]
    return row


def test_plane_rows_are_the_view_they_were(analysis):
    rows = analysis.rows()
    before = _rows_as_before(analysis)
    assert len(rows) == 2 * 2 + 2  # random: 2 seeds x 2 representations; hessian: 2
    assert rows == before
    assert [list(r) for r in rows] == [list(r) for r in before]  # the CSV's column order


def test_long_to_wide_to_long_round_trip(analysis):
    numbers = analysis.numbers()
    assert set(numbers[0]) <= set(NUMBER_COLUMNS) and {"metric", "value"} <= set(numbers[0])
    planes = to_planes(numbers)
    assert to_numbers(planes) == numbers
    assert to_planes(to_numbers(planes)) == planes
    assert sum(len(p) - 4 for p in planes) == len(numbers)  # one number row per value
    # Every key column of the layout is kept, whichever apply.
    tagged = [{"run": "r", "step": 7, "subspace": "2d", **p} for p in planes]
    assert to_planes(to_numbers(tagged)) == tagged
    assert {n["step"] for n in to_numbers(tagged)} == {7}


def test_checkpoint_columns_are_the_view_they_were(analysis):
    got = checkpoint_columns(analysis.rows(), "2d", list(ROW_METRICS), analysis.config.seed)
    assert got == _wide_as_before(analysis, "2d") and list(got) == list(
        _wide_as_before(analysis, "2d"))  # fmt: skip
    assert "2d.random.knn.n_saddles" in got  # two kinds: the kind is named
    one = analyze(_net(), _mse, _data(), _config(directions=["hessian"]), name="h",
                  progress=False)  # fmt: skip
    got = checkpoint_columns(one.rows(), "2d", list(ROW_METRICS), one.config.seed)
    assert got == _wide_as_before(one, "2d") and "2d.knn.n_saddles" in got


def _same(a, b) -> bool:
    """Equal, or both NaN (a floor not measured, e.g. ``batch_floor`` without parts)."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def test_wide_and_long_dynamics_tables_agree(tmp_path):
    net = _net()
    for step in (0, 3):
        with torch.no_grad():
            net[0].bias.add_(0.2)
        save_checkpoint(net, tmp_path / "ckpts" / f"ckpt-{step}.safetensors")
        (tmp_path / "ckpts" / f"ckpt-{step}.json").write_text(json.dumps({"step": step}))
    cfg = _config(direction_seeds=1, representations=["grid-full"])
    wide = analyze_checkpoints(_net, tmp_path / "ckpts", _mse, _data(), cfg, tmp_path / "out",
                               progress=False, layout="wide")  # fmt: skip
    long = analyze_checkpoints(_net, tmp_path / "ckpts", _mse, _data(), cfg, tmp_path / "out",
                               progress=False, layout="long")  # fmt: skip
    planes = planes_from_checkpoints(wide)
    assert len(planes) == len(long) == 2  # the "fixed" policy: one random plane per checkpoint
    for p in planes:
        twin = next(r for r in long if r["step"] == p["step"])
        assert "direction" not in p  # one kind: its columns do not name it
        assert p["representation"] == twin["representation"] and p["subspace"] == "2d"
        assert p["hessian_top_eigenvalue"] == twin["hessian_top_eigenvalue"]
        shared = [m for m in ROW_METRICS if m in p]
        assert shared and all(_same(p[m], twin[m]) for m in shared), shared
    for w in wide:  # and back: the checkpoint columns again
        own = [p for p in planes if p["step"] == w["step"]]
        again = checkpoint_columns(own, "2d", list(ROW_METRICS), cfg.seed)
        assert again == {k: v for k, v in w.items() if "." in k}
