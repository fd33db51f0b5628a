"""Tests of saddles.executors: landscape chunks on a loopback Ray cluster of 2 workers give the
local loop's values bit for bit, survive a killed worker and a killed driver, and fail clearly.

One cluster serves the whole module (starting one takes seconds; the ``cluster`` fixture is in
conftest.py). The losses below are module
functions so that Ray's workers import them from this file (the cluster's workers get this
folder on their ``PYTHONPATH``); the driver subprocess imports them the same way.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models_for_tests import accuracy, small_cnn, tiny_mlp

from saddles import directions as D
from saddles import sampling as S
from saddles.executors import UnitError, map_units
from saddles.io.data import make_loss
from saddles.landscape import evaluate

TESTS = Path(__file__).resolve().parent
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")


# --- losses and workloads (imported by the workers) ------------------------------------------


def ce_loss(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1])


def slow_ce_loss(model, batch):
    """The cross-entropy, 50 ms a call: slow enough to kill a driver mid-run."""
    time.sleep(0.05)
    return F.cross_entropy(model(batch[0]), batch[1])


def counted(count_file: str):
    """Append one byte to ``count_file`` (any process): how often the loss ran in all."""
    fd = os.open(count_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b".")
    os.close(fd)


def worker_killing_loss(model, batch, marker: str, driver: int, count_file: str, after: int):
    """The cross-entropy; the first worker to run it ``after`` times kills its own process,
    once (``marker`` says it happened)."""
    counted(count_file)
    calls = worker_killing_loss.calls = getattr(worker_killing_loss, "calls", 0) + 1
    if os.getpid() != driver and calls >= after:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return ce_loss(model, batch)


def pid_recording_loss(model, batch, pid_dir: str, driver: int):
    """The cross-entropy, 20 ms a call; each worker process leaves a file named by its pid."""
    if os.getpid() != driver:
        Path(pid_dir, str(os.getpid())).touch()
    time.sleep(0.02)
    return F.cross_entropy(model(batch[0]), batch[1])


def always_killing_loss(model, batch, driver: int):
    """Kills every worker that runs it (the driver's centre evaluation survives)."""
    if os.getpid() != driver:
        os.kill(os.getpid(), signal.SIGKILL)
    return ce_loss(model, batch)


def raising_loss(model, batch, driver: int):
    """Raises on a worker's third call."""
    calls = raising_loss.calls = getattr(raising_loss, "calls", 0) + 1
    if os.getpid() != driver and calls >= 3:
        raise ValueError("boom on purpose")
    return ce_loss(model, batch)


def square(x):
    if x == "bad":
        raise KeyError("not a number")
    return x * x


def mlp_problem():
    model, data = tiny_mlp()
    return model, data, D.random_directions(model, 2, seed=1), S.grid(7, (-1, 1))


def driver_run(run_dir: str) -> None:
    """What the driver subprocess runs: a Ray landscape into ``run_dir`` (joins RAY_ADDRESS)."""
    torch.set_num_threads(1)
    model, data, dirs, coords = mlp_problem()
    evaluate(
        model,
        slow_ce_loss,
        data,
        dirs,
        coords,
        engine="sequential",
        chunk_size=4,
        run_dir=run_dir,
        executor="ray",
        workers=2,
        progress=False,
    )


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The workers run one torch thread each; so does the local reference."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- tests -------------------------------------------------------------------------------------


@needs_ray
@pytest.mark.parametrize("engine", ["sequential", "batched", "auto"])
def test_ray_gives_the_local_loops_values_bit_for_bit(cluster, engine):
    model, data, dirs, coords = mlp_problem()
    kw = dict(engine=engine, chunk_size=6, metrics={"acc": accuracy}, progress=False)
    local = evaluate(model, ce_loss, data, dirs, coords, **kw)
    distributed = evaluate(model, ce_loss, data, dirs, coords, executor="ray", workers=2, **kw)
    np.testing.assert_array_equal(distributed.loss, local.loss)
    np.testing.assert_array_equal(distributed.metrics["acc"], local.metrics["acc"])
    assert distributed.info["engine"] == local.info["engine"]
    assert distributed.info["chunk_engines"] == local.info["chunk_engines"]
    ex = distributed.info["executor"]
    assert ex["name"] == "ray" and ex["workers"] == 2 and ex["threads_per_worker"] == [1]
    assert ex["cluster"] == "existing"  # the module's cluster is used and left running
    assert local.info["executor"] == {"name": "local", "workers": 1, "threads_per_worker": 1}


@needs_ray
@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_ray_keeps_the_standard_errors_and_eval_tokens_auto_bit_for_bit(cluster, engine):
    model, _ = tiny_mlp(seed=5)
    dirs, coords = D.random_directions(model, 2, seed=0), S.grid(7, (-2, 2))
    gen = torch.Generator().manual_seed(6)
    data = (torch.randn(512, 4, generator=gen), torch.randint(0, 3, (512,), generator=gen))
    kw = dict(engine=engine, chunk_size=6, eval_tokens="auto", stderr_target=0.05,
              progress=False)  # fmt: skip
    loss = make_loss(criterion="cross_entropy")  # its per-example variance travels with it
    local = evaluate(model, loss, data, dirs, coords, **kw)
    distributed = evaluate(model, loss, data, dirs, coords, executor="ray", workers=2, **kw)
    assert np.isfinite(local.loss_stderr).all() and len(np.unique(local.tokens)) > 1
    np.testing.assert_array_equal(distributed.loss, local.loss)
    np.testing.assert_array_equal(distributed.loss_stderr, local.loss_stderr)
    np.testing.assert_array_equal(distributed.tokens, local.tokens)


@needs_ray
@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_ray_runs_adaptive_rounds_bit_for_bit(cluster, engine):
    """An adaptive grid's rounds are batches of chunks on the pool: the same points and bits
    as the local loop."""
    model, data, dirs, _ = mlp_problem()
    coords = S.adaptive_grid(17, (-1, 1), dims=2, coarse=5)
    kw = dict(engine=engine, chunk_size=6, progress=False)
    local = evaluate(model, ce_loss, data, dirs, coords, **kw)
    distributed = evaluate(model, ce_loss, data, dirs, coords, executor="ray", workers=2, **kw)
    assert local.info["adaptive"]["n_rounds"] >= 3
    np.testing.assert_array_equal(distributed.measured, local.measured)
    np.testing.assert_array_equal(distributed.loss, local.loss)
    assert distributed.info["adaptive"]["rounds"] == local.info["adaptive"]["rounds"]


@needs_ray
def test_auto_on_a_model_it_runs_sequentially_also_matches(cluster):
    model, data = small_cnn()
    dirs = D.random_directions(model, 2, seed=2)
    kw = dict(engine="auto", chunk_size=4, progress=False)
    local = evaluate(model, ce_loss, data, dirs, S.grid(3), **kw)
    distributed = evaluate(model, ce_loss, data, dirs, S.grid(3), executor="ray", **kw)
    np.testing.assert_array_equal(distributed.loss, local.loss)
    assert distributed.info["executor"]["workers"] == 2  # default: every CPU of the cluster


@needs_ray
def test_a_killed_worker_is_replaced_and_nothing_is_lost(cluster, tmp_path):
    model, data, dirs, coords = mlp_problem()
    reference = evaluate(
        model, ce_loss, data, dirs, coords, engine="sequential", chunk_size=4, progress=False
    )
    count = tmp_path / "calls"
    loss = functools.partial(
        worker_killing_loss,
        marker=str(tmp_path / "killed"),
        driver=os.getpid(),
        count_file=str(count),
        after=10,
    )
    land = evaluate(
        model,
        loss,
        data,
        dirs,
        coords,
        engine="sequential",
        chunk_size=4,
        run_dir=tmp_path / "run",
        executor="ray",
        workers=2,
        progress=False,
    )
    assert (tmp_path / "killed").exists()
    assert land.info["executor"]["workers_replaced"] == 1
    np.testing.assert_array_equal(land.loss, reference.loss)
    n_chunks = -(-coords.n_points // 4)
    assert len(land.info["chunk_engines"]) == n_chunks  # every chunk recorded once
    # The centre once (the grid's origin takes its values), every other point once, and
    # recomputed at most: the chunks queued on the dead worker (2 of 4 points).
    calls = count.stat().st_size
    assert coords.n_points < calls <= coords.n_points + 2 * 4


@needs_ray
@pytest.mark.parametrize("engine", ["sequential", "auto"])
def test_a_worker_killed_from_outside_after_the_first_chunk_is_replaced(cluster, tmp_path, engine):
    """SIGKILL to a worker process (found by the pid its loss reports) as soon as the first chunk
    file is written: its queued chunks run again on a fresh worker, and the values are the
    uninterrupted run's, bit for bit."""
    model, data, dirs, coords = mlp_problem()
    kw = dict(engine=engine, chunk_size=4, progress=False)
    reference = evaluate(model, ce_loss, data, dirs, coords, **kw)
    pids, run = tmp_path / "pids", tmp_path / "run"
    pids.mkdir()
    loss = functools.partial(pid_recording_loss, pid_dir=str(pids), driver=os.getpid())
    killed: list[int] = []
    done = threading.Event()

    def kill_after_first_chunk():
        while not done.is_set():
            workers = sorted(int(p.name) for p in pids.iterdir())
            if workers and list(run.glob("chunks/*.npz")):
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
                return
            time.sleep(0.001)

    killer = threading.Thread(target=kill_after_first_chunk, daemon=True)
    killer.start()
    try:
        land = evaluate(model, loss, data, dirs, coords, run_dir=run, executor="ray", workers=2,
                        **kw)  # fmt: skip
    finally:
        done.set()
        killer.join()
    assert len(killed) == 1
    np.testing.assert_array_equal(land.loss, reference.loss)
    assert land.info["executor"]["workers_replaced"] == 1
    n_chunks = -(-coords.n_points // 4)
    assert len(land.info["chunk_engines"]) == n_chunks == len(list(run.glob("chunks/*.npz")))


def scaled(state, unit):
    return state * unit


def hold(payload):
    return payload


@needs_ray
def test_a_lost_result_runs_again_and_other_ray_failures_are_one_line(cluster, monkeypatch):
    """A result Ray reports lost (ObjectLostError) is a lost worker: the unit runs again on a
    fresh one. Any other Ray failure ends the run with one line naming the unit."""
    import ray

    from saddles.executors.ray_pool import RayExecutor

    real_get, calls = ray.get, {"n": 0}

    def losing_get(ref, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second result fetched
            raise ray.exceptions.ObjectLostError("ab" * 20, b"", "test")
        return real_get(ref, *args, **kwargs)

    ex = RayExecutor(2)
    seen = []
    with ex.open(hold, 3, scaled) as pool:
        monkeypatch.setattr(ray, "get", losing_get)
        pool.run(range(6), lambda unit, result: seen.append((unit, result)))
        assert sorted(seen) == [(u, 3 * u) for u in range(6)]
        assert pool.info["workers_replaced"] == 1

        def failing_get(ref, *args, **kwargs):
            raise ray.exceptions.RaySystemError("the cluster went away")

        monkeypatch.setattr(ray, "get", failing_get)
        with pytest.raises(UnitError, match=r"^\d+: Ray failed while it ran: RaySystemError: Sys"):
            pool.run(range(3), lambda unit, result: None)
    ex.close()


@needs_ray
def test_a_chunk_that_keeps_killing_workers_fails_after_max_retries(cluster):
    model, data, dirs, coords = mlp_problem()
    loss = functools.partial(always_killing_loss, driver=os.getpid())
    with pytest.raises(UnitError, match=r"chunk \d+-\d+: its worker died 2 times \(max_retries=1"):
        evaluate(
            model,
            loss,
            data,
            dirs,
            coords,
            engine="sequential",
            chunk_size=25,
            executor="ray",
            workers=1,
            max_retries=1,
            progress=False,
        )


@needs_ray
def test_a_loss_that_raises_fails_the_run_with_one_line_naming_the_chunk(cluster, tmp_path):
    model, data, dirs, coords = mlp_problem()
    loss = functools.partial(raising_loss, driver=os.getpid())
    with pytest.raises(UnitError, match=r"^chunk \d+-\d+ failed: ValueError: boom on purpose$"):
        evaluate(
            model,
            loss,
            data,
            dirs,
            coords,
            engine="sequential",
            chunk_size=4,
            run_dir=tmp_path / "run",
            executor="ray",
            workers=2,
            progress=False,
        )


@needs_ray
def test_map_units_keeps_input_order_locally_and_on_ray(cluster):
    items = list(range(9))
    assert map_units(square, items) == [i * i for i in items]
    assert map_units(square, items, "ray", workers=2) == [i * i for i in items]
    with pytest.raises(UnitError, match=r"^unit 2 failed: KeyError"):
        map_units(square, [1, 2, "bad", 3], "ray", workers=2)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@needs_ray
def test_a_killed_ray_driver_resumes_without_ray_bit_for_bit(cluster, tmp_path):
    model, data, dirs, coords = mlp_problem()
    reference = evaluate(
        model, ce_loss, data, dirs, coords, engine="sequential", chunk_size=4, progress=False
    )
    run = tmp_path / "run"
    code = f"from test_executors import driver_run; driver_run({str(run)!r})"
    env = dict(os.environ, RAY_ADDRESS=cluster.address)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    driver = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        cwd=TESTS,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    chunks = run / "chunks"
    deadline = time.monotonic() + 90
    try:
        while len(list(chunks.glob("*.npz"))) < 3:
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the driver wrote no chunks in 90 s"
            time.sleep(0.02)
        below = descendants(driver.pid)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait()
    for pid in below:  # nothing the driver started outlives it
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    on_disk = len(list(chunks.glob("*.npz")))
    n_chunks = -(-coords.n_points // 4)
    assert 3 <= on_disk < n_chunks
    resumed = evaluate(
        model, slow_ce_loss, data, dirs, coords, run_dir=run, resume=True, progress=False
    )
    np.testing.assert_array_equal(resumed.loss, reference.loss)
    assert resumed.info["executor"]["name"] == "local"
    assert len(resumed.info["chunk_engines"]) == n_chunks - on_disk  # only what was missing


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    model, data, dirs, coords = mlp_problem()
    with pytest.raises(ImportError, match=r"needs Ray.*pip install 'saddles\[ray\]'"):
        evaluate(model, ce_loss, data, dirs, coords, executor="ray", progress=False)
    with pytest.raises(ImportError, match=r"saddles\[ray\]"):
        map_units(square, [1, 2], "ray")


def test_executor_arguments_are_checked():
    model, data, dirs, coords = mlp_problem()
    with pytest.raises(ValueError, match="executor must be one of"):
        evaluate(model, ce_loss, data, dirs, coords, executor="dask", progress=False)
    with pytest.raises(ValueError, match="need executor='ray'"):
        evaluate(model, ce_loss, data, dirs, coords, workers=4, progress=False)


@needs_ray
def test_the_cli_on_ray_gives_the_single_process_values(cluster, tmp_path):
    """`saddles landscape --executor ray --workers 2` == the same command in one process."""
    from typer.testing import CliRunner

    from saddles.cli import app
    from saddles.landscape import Landscape

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    (tmp_path / "factory.py").write_text(
        "import torch\n\ndef make():\n    torch.manual_seed(0)\n    return torch.nn.Sequential("
        "torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))\n"
    )
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    gen = torch.Generator().manual_seed(2)
    torch.save((torch.randn(40, 4, generator=gen), torch.randint(0, 3, (40,), generator=gen)),
               tmp_path / "data.pt")  # fmt: skip
    common = ["landscape", "--model", f"{tmp_path / 'factory.py'}:make", "--checkpoint",
              str(tmp_path / "ckpt.pt"), "--data", str(tmp_path / "data.pt"), "--criterion",
              "cross_entropy", "--grid", "9", "--quiet"]  # fmt: skip
    runner = CliRunner()
    one = runner.invoke(app, [*common, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    ray = runner.invoke(app, [*common, "--out", str(tmp_path / "ray"), "--executor", "ray",
                              "--workers", "2"])  # fmt: skip
    assert ray.exit_code == 0, ray.output
    a, b = Landscape.load(tmp_path / "one"), Landscape.load(tmp_path / "ray")
    np.testing.assert_array_equal(a.loss, b.loss)
    assert b.info["executor"]["name"] == "ray" and b.info["executor"]["workers"] == 2


@needs_ray
def test_ray_leaves_print_alone_so_numba_can_still_compile(cluster):
    """Ray's driver can replace builtins.print; numba (pynndescent) then fails to compile."""
    import builtins

    model, data, dirs, coords = mlp_problem()
    evaluate(model, ce_loss, data, dirs, coords, executor="ray", workers=2, progress=False)
    assert builtins.print.__module__ == "builtins"


def test_the_registry_knows_the_names_the_command_line_offers():
    """Every name in saddles.names.EXECUTORS is registered by its module, and nothing else is
    built in; base.py looks them up and never imports the implementations."""
    import ast

    from saddles.executors import base, registry
    from saddles.names import EXECUTORS

    assert tuple(registry.BUILTIN) == EXECUTORS
    assert registry.registered()[: len(EXECUTORS)] == EXECUTORS
    for name in EXECUTORS:
        assert registry.lookup(name) is not None, name
    tree = ast.parse(Path(base.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not any(m.split(".")[-1] in ("local", "ray_pool", "ray") for m in imported), imported


def test_a_registered_executor_is_found_by_name(monkeypatch):
    from saddles.executors import registry
    from saddles.executors.base import make_executor
    from saddles.executors.local import LocalExecutor

    class Mine(LocalExecutor):
        name = "mine"

    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    registry.register("mine")(lambda **kw: Mine())
    ex, owned = make_executor("mine")
    assert isinstance(ex, Mine) and owned
    assert "mine" in registry.registered()
    assert map_units(square, [1, 2, 3], "mine") == [1, 4, 9]

    def another(**kw):
        return LocalExecutor()

    with pytest.raises(ValueError, match=r"already registered"):
        registry.register("mine")(another)


def test_one_process_can_start_a_local_cluster_twice():
    """Two executor="ray" calls in one process each start and stop a loopback cluster; the
    second must not be refused for a stale authentication token."""
    code = (
        "from saddles.executors import map_units\n"
        "for _ in range(2):\n"
        "    assert map_units(abs, [-1, -2], 'ray', workers=1) == [1, 2]\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
