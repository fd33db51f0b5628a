"""saddles.runs.series: checkpoint discovery and incremental analysis."""

from __future__ import annotations

import json

import pytest
import torch

import saddles.runs.series as dyn
from saddles.experiments import save_checkpoint
from saddles.runs.analyze import AnalysisConfig
from saddles.runs.series import analyze_checkpoints, discover_checkpoints


def make_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))


def mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, generator=g)
    return x, torch.sin(x[:, :1])


def write_run(directory, steps):
    """A tiny SGD run, saving the weights at ``steps`` with sidecars."""
    torch.manual_seed(0)
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = data()
    for step in range(max(steps) + 1):
        if step in steps:
            save_checkpoint(net, directory / f"ckpt-{step}.safetensors")
            with torch.no_grad():
                val = float(mse(net, (x, y)))
            (directory / f"ckpt-{step}.json").write_text(
                json.dumps({"step": step, "val_loss": val})
            )
        opt.zero_grad()
        mse(net, (x, y)).backward()
        opt.step()


def count_calls(monkeypatch, module, name, record=lambda kwargs: 1) -> list:
    """Wrap ``module.name`` so each call appends ``record(kwargs)`` to the returned list."""
    calls = []
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(record(kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def small(**kw):
    base = dict(
        resolution=7,
        representations=["grid-full", "knn"],
        hessian_top_k=2,
        trace_matvecs=9,
        density_lanczos=8,
    )
    return AnalysisConfig(**{**base, **kw})


def test_discovery_orders_by_step(tmp_path):
    for name in ("s10.pt", "s2.pt", "s100.pt"):
        torch.save(make_net().state_dict(), tmp_path / name)
    assert [c.step for c in discover_checkpoints(tmp_path)] == [2, 10, 100]
    (tmp_path / "s100.json").write_text(json.dumps({"step": 1, "tokens": 64}))
    ckpts = discover_checkpoints(tmp_path)
    assert [c.name for c in ckpts] == ["s100", "s2", "s10"] and ckpts[0].info["tokens"] == 64
    (tmp_path / "s2.json").write_text(json.dumps({"step": 1}))
    with pytest.raises(ValueError, match="step"):
        discover_checkpoints(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    torch.save(make_net().state_dict(), other / "final.pt")
    with pytest.raises(ValueError, match="training step of final.pt"):
        discover_checkpoints(other)
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        discover_checkpoints(_empty(tmp_path))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_incremental_analysis_only_does_new_checkpoints(tmp_path, monkeypatch):
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 5, 20])
    calls = count_calls(monkeypatch, dyn, "analyze", lambda kwargs: kwargs["name"])
    out = tmp_path / "out"
    rows = analyze_checkpoints(make_net, ckdir, mse, data(), small(), out, progress=False)
    assert [r["step"] for r in rows] == [0, 5, 20] and len(calls) == 3
    assert rows[0]["val_loss"] > rows[-1]["val_loss"]
    assert "2d.grid-full.n_saddles" in rows[0] and "top_eigenvalue" in rows[0]
    # New checkpoints appear: only they are analyzed; the old rows come back unchanged.
    write_run(ckdir, [0, 5, 20, 40])
    again = analyze_checkpoints(make_net, ckdir, mse, data(), small(), out, progress=False)
    assert len(calls) == 4 and calls[-1].endswith("@40")
    assert again[:3] == rows
    assert (out / "dynamics.csv").read_text().count("\n") == 5
    with pytest.raises(ValueError, match="another configuration"):
        analyze_checkpoints(make_net, ckdir, mse, data(), small(resolution=9), out, progress=False)


def test_policies_and_several_subspaces(tmp_path):
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 3, 9, 30, 60])
    configs = {
        "2d": small(),
        "4d": small(
            sampling="sobol", n_points=256, n_directions=4, representations=["knn"], hessian=False
        ),
    }
    rows = analyze_checkpoints(
        make_net, ckdir, mse, data(), configs, tmp_path / "pca", policy="pca", progress=False
    )
    assert all(r["policy"] == "pca" for r in rows)
    assert "4d.knn.n_minima" in rows[-1] and "2d.knn.n_minima" in rows[-1]
    rows = analyze_checkpoints(
        make_net, ckdir, mse, data(), small(), tmp_path / "hess", policy="hessian", progress=False
    )
    assert rows[-1]["top_eigenvalue"] > 0
    with pytest.raises(ValueError, match="policy"):
        analyze_checkpoints(make_net, ckdir, mse, data(), small(), tmp_path, policy="pcb")


def test_pca_rows_are_recomputed_when_the_trajectory_grows(tmp_path):
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 3, 9, 30])
    cfg = small(hessian=False, representations=["grid-full"])
    out = tmp_path / "out"
    first = analyze_checkpoints(
        make_net, ckdir, mse, data(), cfg, out, policy="pca", progress=False
    )
    write_run(ckdir, [0, 3, 9, 30, 60])
    grown = analyze_checkpoints(
        make_net, ckdir, mse, data(), cfg, out, policy="pca", progress=False
    )
    fresh = analyze_checkpoints(
        make_net, ckdir, mse, data(), cfg, tmp_path / "fresh", policy="pca", progress=False
    )
    key = "2d.grid-full.average_persistence"
    assert [r[key] for r in grown] == [r[key] for r in fresh]
    assert [r[key] for r in first] != [r[key] for r in grown[:4]]


def test_hessian_is_solved_once_per_checkpoint(tmp_path, monkeypatch):
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 10])
    import saddles.runs.analyze as pipe

    calls = count_calls(monkeypatch, pipe, "hessian_record")  # what a checkpoint solves
    configs = {
        "2d": small(),
        "3d": small(
            sampling="sobol", n_points=128, n_directions=3, representations=["knn"], hessian=False
        ),
    }
    rows = analyze_checkpoints(
        make_net, ckdir, mse, data(), configs, tmp_path / "h", policy="hessian", progress=False
    )
    assert len(calls) == 2 and "3d.knn.n_minima" in rows[0]


def test_checkpoint_hashes_are_cached_until_a_file_changes(tmp_path, monkeypatch):
    import saddles.io.suite as suite

    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 5])
    reads = count_calls(monkeypatch, suite, "read_state", lambda kwargs: None)
    out = tmp_path / "out"
    cfg = small(hessian=False, noise_points=0, representations=["grid-full"])
    analyze_checkpoints(make_net, ckdir, mse, data(), cfg, out, progress=False)
    assert len(reads) == 2
    analyze_checkpoints(make_net, ckdir, mse, data(), cfg, out, progress=False)
    assert len(reads) == 2  # nothing changed: the hashes come from checkpoints.csv
    before = (out / "ckpt-5" / "row.json").read_text()
    torch.manual_seed(11)
    save_checkpoint(make_net(), ckdir / "ckpt-5.safetensors")  # other weights, the same name
    calls = count_calls(monkeypatch, dyn, "analyze", lambda kwargs: kwargs["name"])
    analyze_checkpoints(make_net, ckdir, mse, data(), cfg, out, progress=False)
    assert len(reads) == 3 and calls == ["run@5"]  # re-hashed, and its row recomputed
    assert (out / "ckpt-5" / "row.json").read_text() != before
