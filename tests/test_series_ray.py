"""Whole checkpoints on a loopback Ray cluster of 2 workers (``analyze_checkpoints(...,
executor="ray")`` and ``saddles dynamics --executor ray``): the rows of one process bit for
bit (but ``seconds``), for every direction policy; a rerun analyzes only new checkpoints; an
interrupted checkpoint resumes from what it saved.

One cluster serves the module (the ``cluster`` fixture in conftest.py). The model factory,
losses and data are module functions here, so that the workers import them from this file
(the cluster's workers get this folder on their ``PYTHONPATH``). The process-side runs use one
torch thread (``one_thread``), as each Ray worker does.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import os
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from saddles.executors import UnitError
from saddles.experiments import save_checkpoint
from saddles.runs.analyze import AnalysisConfig
from saddles.runs.series import analyze_checkpoints

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")


# --- the run (imported by the workers) -------------------------------------------------------


def make_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))


def mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()


#: Landscape calls of the loss made so far by this process, per log folder.
_LANDSCAPE_CALLS: dict[str, int] = {}


def logged_mse(model, batch, log_dir: str):
    """``mse``; each call leaves one byte in ``log_dir``, in ``hessian-<pid>`` (a call that
    autograd differentiates) or ``landscape-<pid>`` (a plain evaluation). While
    ``log_dir/armed`` holds a number k, a process's k-th landscape call raises: an
    interruption in the middle of a checkpoint's landscape, after its Hessian was saved."""
    value = mse(model, batch)
    kind = "hessian" if value.requires_grad else "landscape"
    with open(Path(log_dir, f"{kind}-{os.getpid()}"), "ab") as f:
        f.write(b".")
    if kind == "landscape":
        calls = _LANDSCAPE_CALLS[log_dir] = _LANDSCAPE_CALLS.get(log_dir, 0) + 1
        armed = Path(log_dir, "armed")
        if armed.is_file() and calls >= int(armed.read_text()):
            raise RuntimeError("interrupted")
    return value


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, generator=g)
    return x, torch.sin(x[:, :1])


def write_run(directory: Path, steps: list[int]) -> Path:
    """A tiny SGD run saving its weights at ``steps`` (the same bytes on every call)."""
    directory.mkdir(exist_ok=True)
    torch.manual_seed(0)
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = data()
    for step in range(max(steps) + 1):
        if step in steps:
            save_checkpoint(net, directory / f"ckpt-{step}.safetensors")
        opt.zero_grad()
        mse(net, (x, y)).backward()
        opt.step()
    return directory


def small(**kw) -> AnalysisConfig:
    base = dict(resolution=7, representations=["grid-full", "knn"], hessian_top_k=2,
                trace_matvecs=9, density_lanczos=8, noise_points=4, chunk_size=8)  # fmt: skip
    return AnalysisConfig(**{**base, **kw})


def calls(log_dir: Path, kind: str) -> int:
    """How often the loss ran, in every process, for ``kind`` (hessian or landscape)."""
    return sum(p.stat().st_size for p in log_dir.glob(f"{kind}-*"))


def timeless(rows: list[dict]) -> str:
    """Rows without ``seconds`` (the one column that depends on the machine's load), as JSON:
    floats written exactly (shortest round-trip form), and NaN equal to NaN."""
    return json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in rows])


# --- tests -----------------------------------------------------------------------------------


def test_two_workers_equal_one_process_rerun_new_and_resume(tmp_path, cluster, one_thread):
    ckdir = write_run(tmp_path / "ckpts", [0, 5, 9])
    logs = {name: tmp_path / f"log-{name}" for name in ("local", "ray")}
    for folder in logs.values():
        folder.mkdir()
    configs = {"2d": small(),
               "3d": small(sampling="sobol", n_points=48, n_directions=3,
                           representations=["knn"], hessian=False)}  # fmt: skip

    def dynamics(name: str, **kw):
        loss = functools.partial(logged_mse, log_dir=str(logs[name]))
        return analyze_checkpoints(make_net, ckdir, loss, data(), configs, tmp_path / name,
                                   layout="long", progress=False, **kw)  # fmt: skip

    local = dynamics("local")
    spread = dynamics("ray", executor="ray", workers=2)
    assert len(spread) == 3 * (2 + 1) and timeless(spread) == timeless(local)
    assert timeless(dynamics("ray", executor="ray", workers=2)) == timeless(spread)  # all done
    tables = [_columns_without_seconds(tmp_path / name / "dynamics.csv") for name in logs]
    assert len(tables[0]) == 9 and tables[0] == tables[1]
    record = json.loads((tmp_path / "ray" / "ckpt-5" / "row.json").read_text())
    assert record["execution"] == {"executor": "ray", "torch_threads": 1}

    # A new checkpoint, in one process: what a whole checkpoint costs.
    write_run(ckdir, [0, 5, 9, 20])
    before = calls(logs["local"], "landscape")
    local = dynamics("local")
    whole = calls(logs["local"], "landscape") - before
    # On the workers, interrupted in its landscape (after its Hessian was saved) ...
    old = {n: (tmp_path / "ray" / n / "row.json").read_bytes() for n in ("ckpt-0", "ckpt-5")}
    (logs["ray"] / "armed").write_text("5")
    with pytest.raises(UnitError, match=r"checkpoint ckpt-20 \(step 20\) failed.*interrupted"):
        dynamics("ray", executor="ray", workers=2)
    interrupted = tmp_path / "ray" / "ckpt-20"
    assert (interrupted / "started.json").is_file() and (interrupted / "hessian.json").is_file()
    assert not (interrupted / "row.json").exists()
    # ... then resumed: only it is analyzed, its Hessian and finished chunks are reused, and
    # the rows are those of one process.
    (logs["ray"] / "armed").unlink()
    hessian, landscape = calls(logs["ray"], "hessian"), calls(logs["ray"], "landscape")
    resumed = dynamics("ray", executor="ray", workers=2)
    assert calls(logs["ray"], "hessian") == hessian
    assert 0 < calls(logs["ray"], "landscape") - landscape < whole
    assert timeless(resumed) == timeless(local)
    assert {n: (tmp_path / "ray" / n / "row.json").read_bytes() for n in old} == old


@pytest.mark.parametrize("policy", ["hessian", "pca"])
def test_every_policy_gives_the_same_rows_on_workers(tmp_path, cluster, one_thread, policy):
    ckdir = write_run(tmp_path / "ckpts", [0, 3, 9])
    cfg = small(representations=["grid-full"], noise_points=0)
    kw = dict(policy=policy, progress=False)
    local = analyze_checkpoints(make_net, ckdir, mse, data(), cfg, tmp_path / "local", **kw)
    spread = analyze_checkpoints(make_net, ckdir, mse, data(), cfg, tmp_path / "ray",
                                 executor="ray", workers=2, **kw)  # fmt: skip
    assert [r["step"] for r in spread] == [0, 3, 9]
    assert timeless(spread) == timeless(local) and spread[-1]["top_eigenvalue"] > 0


def test_bad_execution_settings_are_refused_before_anything_runs(tmp_path):
    ckdir = write_run(tmp_path / "ckpts", [0, 3])
    for kw, words in [
        (dict(executor="ray", workers=0), "workers must be a positive integer"),
        (dict(workers=2), "need executor='ray'"),
        (dict(executor="ray", configs=small(executor="ray")), "leave it local"),
    ]:
        cfg = kw.pop("configs", small())
        with pytest.raises(ValueError, match=words):
            analyze_checkpoints(make_net, ckdir, mse, data(), cfg, tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


class LockedFactory:
    """A model factory that holds a lock: it cannot travel to a worker."""

    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self):
        return make_net()


def test_a_factory_that_does_not_pickle_is_refused_in_one_line(tmp_path, cluster):
    ckdir = write_run(tmp_path / "ckpts", [0, 3])
    with pytest.raises(ValueError, match="travel to the workers, and they do not pickle") as info:
        analyze_checkpoints(LockedFactory(), ckdir, mse, data(), small(), tmp_path / "out",
                            executor="ray", workers=2, progress=False)  # fmt: skip
    assert "\n" not in str(info.value)


NET_MODULE = """
import torch


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(),
                                        torch.nn.Linear(6, 1))

    def forward(self, x):
        return self.body(x)


def make_net():
    return TinyNet()


def mse(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()
"""


def test_saddles_dynamics_on_ray_workers(tmp_path, cluster, one_thread, monkeypatch):
    """A model class and a loss from a module of the working directory (importable on the
    driver, where the cluster's workers did not start) travel to the workers."""
    from saddles.cli import app
    from saddles.experiments import save_checkpoint

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dynamics_ray_net.py").write_text(NET_MODULE)
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    for step in (0, 3, 9):
        torch.manual_seed(step)
        net = torch.nn.Module()
        net.body = make_net()
        save_checkpoint(net, ckdir / f"step{step}.safetensors")
    torch.save(data(), tmp_path / "batch.pt")
    (tmp_path / "dyn.yaml").write_text(textwrap.dedent("""
        model: dynamics_ray_net:make_net
        loss: dynamics_ray_net:mse
        checkpoints: ckpts
        data: batch.pt
        analysis: {resolution: 7, representations: [grid-full], hessian_top_k: 2,
                   trace_matvecs: 9, density_lanczos: 8, noise_points: 0}
    """))  # fmt: skip
    runner = CliRunner()
    tables = {}
    for name, options in (("local", []), ("ray", ["--executor", "ray", "--workers", "2"])):
        result = runner.invoke(app, ["dynamics", "dyn.yaml", "--out", name, *options])
        assert result.exit_code == 0, result.output
        assert "step 9 done" in result.output and "step 0 done" in result.output
        tables[name] = _columns_without_seconds(tmp_path / name / "dynamics.csv")
    assert tables["ray"] == tables["local"] and len(tables["ray"]) == 3
    assert "3 checkpoint(s) on 2 ray worker(s), [1] torch thread(s) each" in result.output


def _columns_without_seconds(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
