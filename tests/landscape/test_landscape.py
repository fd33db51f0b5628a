"""Tests of saddles.landscape against a plain loop written here, analytic landscapes and the
real topology core."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models_for_tests import (
    Quadratic,
    accuracy,
    busy_cpu,
    convection_data,
    convection_pinn,
    next_token_loss,
    pinn_loss_autograd,
    pinn_loss_jacrev,
    pinn_loss_jvp,
    quadratic_loss,
    small_cnn,
    tiny_mlp,
    tiny_transformer,
)
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from saddles import directions as D
from saddles import sampling as S
from saddles.io.data import as_batches
from saddles.landscape import EngineFallbackWarning, Landscape, evaluate, parse_bytes
from saddles.landscape.engines import run_sequential
from saddles.landscape.problem import center_pass, setup

torch.set_num_threads(1)


def ce_loss(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1])


def plain_loop(model, loss_fn, data, directions, points, train=False):
    """The oracle: a fresh copy of the model, weights set by vector_to_parameters, per point."""
    m = copy.deepcopy(model).train(train)
    theta0 = parameters_to_vector(m.parameters()).detach().clone()
    basis = torch.stack([D.flatten(d) for d in directions.tensors]).to(theta0.dtype)
    batches = as_batches(data)
    sizes = np.array([b[0].shape[0] for b in batches], dtype=float)
    out = []
    for c in np.asarray(points):
        theta = theta0 + torch.as_tensor(c, dtype=theta0.dtype) @ basis
        vector_to_parameters(theta, m.parameters())
        vals = [float(loss_fn(m, b).detach()) for b in batches]
        out.append(float(np.dot(sizes / sizes.sum(), vals)))
    return np.array(out)


WORKLOADS = {
    "mlp": lambda: (*tiny_mlp(), ce_loss),
    "cnn_batchnorm": lambda: (*small_cnn(), ce_loss),
    "pinn_jvp": lambda: (convection_pinn(), convection_data(), pinn_loss_jvp),
    "pinn_jacrev": lambda: (convection_pinn(), convection_data(), pinn_loss_jacrev),
    "pinn_autograd": lambda: (convection_pinn(), convection_data(), pinn_loss_autograd),
    "transformer": lambda: (*tiny_transformer(), next_token_loss),
}


@pytest.mark.parametrize("engine", ["sequential", "batched"])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_engines_match_a_plain_loop(workload, engine):
    model, data, loss = WORKLOADS[workload]()
    dirs = D.random_directions(model, 2, seed=1)
    coords = S.grid(5, (-1, 1))
    before = [p.detach().clone() for p in model.parameters()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        land = evaluate(
            model, loss, data, dirs, coords, engine=engine, chunk_size=8, progress=False
        )
    expected = plain_loop(model, loss, data, dirs, coords.points)
    np.testing.assert_allclose(land.loss, expected, rtol=1e-5, atol=1e-7)
    # the centre (row 12 of the 5x5 grid) is the unperturbed model
    direct = np.dot(
        [b[0].shape[0] for b in as_batches(data)],
        [float(loss(model.eval(), b).detach()) for b in as_batches(data)],
    ) / sum(b[0].shape[0] for b in as_batches(data))
    np.testing.assert_allclose(land.loss[12], direct, rtol=1e-6)
    np.testing.assert_allclose(land.info["center_loss"], direct, rtol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    fell_back = [w for w in caught if issubclass(w.category, EngineFallbackWarning)]
    if engine == "batched" and workload == "pinn_autograd":
        # autograd.grad on inputs cannot run under vmap: announced, recorded, still correct
        assert fell_back and "requires_grad_" in str(fell_back[0].message)
        assert land.info["engine"] == "sequential" and land.info["fallback"]
    else:
        assert not fell_back
        assert land.info["engine"] == engine and land.info["fallback"] is None


def test_sequential_centre_is_bit_exact_and_metrics_match():
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=0)
    land = evaluate(
        model, ce_loss, data, dirs, S.grid(3), metrics={"accuracy": accuracy},
        engine="sequential", progress=False,
    )  # fmt: skip
    assert land.loss[4] == float(ce_loss(model, data).detach())
    np.testing.assert_allclose(
        land.metrics["accuracy"], plain_loop(model, accuracy, data, dirs, S.grid(3).points)
    )
    batched = evaluate(
        model, ce_loss, data, dirs, S.grid(3), metrics={"accuracy": accuracy},
        engine="batched", progress=False,
    )  # fmt: skip
    np.testing.assert_array_equal(batched.metrics["accuracy"], land.metrics["accuracy"])


@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_line_into_a_quadratic_minimum_is_the_analytic_parabola(engine):
    model = Quadratic()
    w0, w_star, a_mat = model.w.detach().clone(), model.w_star, model.A
    d = w_star - w0  # coordinate 1 is the minimum
    coords = S.grid(41, (-1.0, 2.0), dims=1)
    land = evaluate(
        model, quadratic_loss, torch.zeros(1, 1, dtype=torch.float64), [[d]], coords,
        engine=engine, progress=False,
    )  # fmt: skip
    alpha = coords.points[:, 0]
    curvature = float(d @ a_mat @ d)
    np.testing.assert_allclose(
        land.loss, 0.5 * (alpha - 1) ** 2 * curvature, rtol=1e-12, atol=1e-12
    )
    assert np.argmin(land.loss) == np.argmin(np.abs(alpha - 1))


def test_weights_buffers_modes_and_flags_are_restored_even_after_a_failure():
    model, data = small_cnn()
    model.train()
    model[0].weight.requires_grad_(False)
    state = copy.deepcopy(model.state_dict())
    flags = [p.requires_grad for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    dirs = D.random_directions(model, 2, seed=0)
    calls = {"n": 0}

    def failing(m, batch):  # 3 batches: crashes on the 4th point, or in the 3rd chunk of 4
        calls["n"] += 1
        if calls["n"] > 10:
            raise RuntimeError("simulated crash")
        return ce_loss(m, batch)

    for engine in ("sequential", "batched"):
        kw = {"engine": engine, "chunk_size": 4, "progress": False}
        evaluate(model, ce_loss, data, dirs, S.grid(4), **kw)
        calls["n"] = 0
        with pytest.raises(RuntimeError, match="simulated crash"):
            evaluate(model, failing, data, dirs, S.grid(4), **kw)
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k
        assert [p.requires_grad for p in model.parameters()] == flags
        assert [m.training for m in model.modules()] == modes


def test_eval_mode_by_default_and_train_mode_on_request():
    model, data = small_cnn()
    dirs = D.random_directions(model, 2, seed=5)
    coords = S.grid(3)
    eval_land = evaluate(model, ce_loss, data, dirs, coords, engine="sequential", progress=False)
    np.testing.assert_allclose(
        eval_land.loss, plain_loop(model, ce_loss, data, dirs, coords.points), rtol=1e-5
    )
    with pytest.warns(EngineFallbackWarning):  # BatchNorm updates its statistics in train mode
        train_land = evaluate(
            model, ce_loss, data, dirs, coords, engine="batched", train_mode=True, progress=False
        )
    np.testing.assert_allclose(
        train_land.loss,
        plain_loop(model, ce_loss, data, dirs, coords.points, train=True),
        rtol=1e-5,
    )
    assert np.abs(train_land.loss - eval_land.loss).max() > 1e-3
    assert train_land.info["train_mode"] is True


def test_dtype_option_evaluates_a_float64_copy_and_leaves_the_model_alone():
    model, (x, y) = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=2)
    coords = S.grid(5)
    land = evaluate(model, ce_loss, (x, y), dirs, coords, dtype="float64", progress=False)
    assert next(model.parameters()).dtype == torch.float32
    model64 = copy.deepcopy(model).double()
    dirs64 = D.from_tensors(model64, dirs)
    expected = plain_loop(model64, ce_loss, (x.double(), y), dirs64, coords.points)
    np.testing.assert_allclose(land.loss, expected, rtol=1e-12)
    assert land.info["dtype"] == "float64" and land.info["device"] == "cpu"


def test_iterable_of_batches_is_averaged_by_batch_size():
    model, (x, y) = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=0)
    batches = [(x[:10], y[:10]), (x[10:40], y[10:40]), (x[40:], y[40:])]
    coords = S.grid(3)
    whole = evaluate(model, torch.nn.CrossEntropyLoss(), (x, y), dirs, coords, progress=False)
    split = evaluate(
        model, torch.nn.CrossEntropyLoss(), iter(batches), dirs, coords, progress=False
    )
    np.testing.assert_allclose(split.loss, whole.loss, rtol=1e-6)
    assert split.info["data"] == {"n_batches": 3, "n_samples": 64}


def test_auto_decides_by_counting_and_reports_its_choice(capsys):
    net, data = convection_pinn(), convection_data()
    dirs = D.random_directions(net, 2, seed=0)
    coords = S.grid(31)
    land = evaluate(net, pinn_loss_jvp, data, dirs, coords, engine="auto", progress=True)
    err = capsys.readouterr().err
    assert "engine 'auto' chose" in err and "pts/s" in err
    # this PINN is tiny and overhead-bound: few FLOPs per operator, so batching pays
    assert land.info["engine"] == "batched", land.info["decision"]
    assert "overhead-bound" in land.info["decision"]
    assert land.info["operators_per_point"] > 0 and land.info["flops_per_point"] > 0
    assert {e for _, _, e in land.info["chunk_engines"]} == {"batched"}
    np.testing.assert_allclose(
        land.loss, plain_loop(net, pinn_loss_jvp, data, dirs, coords.points), rtol=1e-5
    )
    # a CNN's convolutions are compute-bound on a CPU: auto keeps the sequential engine
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(32 * 16 * 16, 10),
    )  # fmt: skip
    cnn_data = (torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,)))
    conv = evaluate(cnn, ce_loss, cnn_data, D.random_directions(cnn, 2), S.grid(3),
                    progress=False)  # fmt: skip
    assert conv.info["engine"] == "sequential" and "compute-bound" in conv.info["decision"]
    # the autograd form falls back, announced, and auto keeps the sequential engine
    with pytest.warns(EngineFallbackWarning):
        fallback = evaluate(net, pinn_loss_autograd, data, dirs, S.grid(5), progress=False)
    assert fallback.info["engine"] == "sequential" and "vmap" not in fallback.info["engine"]
    assert fallback.info["fallback"].startswith("RuntimeError")


def test_auto_gives_identical_values_beside_a_busy_process():
    """The plan never depends on timing: two auto runs, one with a CPU-bound process
    competing for the cores, give bit-identical values and the same plan."""

    net, data = convection_pinn(), convection_data()
    dirs = D.random_directions(net, 2, seed=0)
    coords = S.grid(21)
    quiet = evaluate(net, pinn_loss_jvp, data, dirs, coords, progress=False)
    with busy_cpu():
        loaded = evaluate(net, pinn_loss_jvp, data, dirs, coords, progress=False)
    assert loaded.info["chunk_engines"] == quiet.info["chunk_engines"]
    assert np.array_equal(loaded.loss, quiet.loss)


def test_quiet_mode_prints_nothing(capsys):
    model, data = tiny_mlp()
    evaluate(model, ce_loss, data, D.random_directions(model, 2), S.grid(5), progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_max_memory_bounds_the_chunk():
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2)
    big = evaluate(model, ce_loss, data, dirs, S.grid(9), engine="batched", progress=False)
    per_point = big.info["memory_per_point_bytes"]
    assert per_point > sum(p.numel() * 4 for p in model.parameters())  # params + activations
    small = evaluate(
        model, ce_loss, data, dirs, S.grid(9), engine="batched", max_memory=10 * per_point,
        progress=False,
    )  # fmt: skip
    assert small.info["chunk_size"] == 10
    np.testing.assert_allclose(small.loss, big.loss, rtol=1e-6)
    assert parse_bytes("2GB") == 2 * 10**9 and parse_bytes("512 MiB") == 512 * 2**20
    with pytest.raises(ValueError, match="memory size"):
        parse_bytes("lots")


def test_nonfinite_losses_are_recorded_and_counted():
    model = Quadratic()
    d = model.w_star - model.w.detach()
    threshold = float(model.w.detach()[0] + 0.55 * d[0])

    def diverging(m, batch):  # inf beyond alpha = 0.55 along d
        blowup = torch.where((m.w[0] - threshold) * torch.sign(d[0]) > 0, torch.inf, 0.0)
        return quadratic_loss(m, batch) + blowup

    coords = S.grid(21, (-1.0, 2.0), dims=1)
    for engine in ("sequential", "batched"):
        land = evaluate(
            model, diverging, torch.zeros(1, 1), [[d]], coords, engine=engine, progress=False
        )
        expected = int((coords.points[:, 0] > 0.55).sum())
        assert land.n_nonfinite == land.info["n_nonfinite"] == expected > 0
        assert np.isinf(land.loss[coords.points[:, 0] > 0.6]).all()
        _, metrics = land.topology()  # diverged points are swept last, not a crash
        assert metrics["n_nonfinite"] == expected


def test_resume_after_an_interruption_is_bit_identical(tmp_path):
    model, data = small_cnn()
    dirs = D.random_directions(model, 2, seed=3)
    coords = S.grid(7)
    state = {"calls": 0, "fail_after": None}

    def loss(m, batch):  # one function object: the same configuration in every run
        state["calls"] += 1
        if state["fail_after"] is not None and state["calls"] > state["fail_after"]:
            raise RuntimeError("simulated interruption")
        return ce_loss(m, batch)

    for engine in ("sequential", "batched"):
        kw = {"engine": engine, "chunk_size": 5, "progress": False}
        state.update(calls=0, fail_after=None)
        reference = evaluate(
            model, loss, data, dirs, coords, run_dir=tmp_path / f"ref{engine}", **kw
        )
        full_calls = state["calls"]
        run = tmp_path / f"run{engine}"
        state.update(calls=0, fail_after=3 * 3 + 3 * 5 * 3 if engine == "sequential" else 3 + 9)
        with pytest.raises(RuntimeError, match="simulated interruption"):
            evaluate(model, loss, data, dirs, coords, run_dir=run, **kw)
        written = sorted(p.name for p in (run / "chunks").iterdir())
        assert 0 < len(written) < len(range(0, 49, 5)) and not any(".tmp" in w for w in written)
        with pytest.raises(FileExistsError, match="resume=True"):
            evaluate(model, loss, data, dirs, coords, run_dir=run, **kw)
        state.update(calls=0, fail_after=None)
        resumed = evaluate(model, loss, data, dirs, coords, run_dir=run, resume=True, **kw)
        np.testing.assert_array_equal(resumed.loss, reference.loss)  # bit-identical
        # only the missing chunks were computed: fewer loss calls than a full run
        assert state["calls"] < full_calls - 3
        # a finished run loads after one unperturbed pass over the data (the centre check)
        state.update(calls=0)
        again = evaluate(model, loss, data, dirs, coords, run_dir=run, resume=True, **kw)
        assert state["calls"] == len(data)
        np.testing.assert_array_equal(again.loss, reference.loss)


def test_resume_with_another_configuration_is_refused(tmp_path):
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=0)
    evaluate(model, ce_loss, data, dirs, S.grid(5), run_dir=tmp_path / "r", progress=False)
    other_dirs = D.random_directions(model, 2, seed=1)
    with pytest.raises(ValueError, match="differs in directions"):
        evaluate(
            model, ce_loss, data, other_dirs, S.grid(5), run_dir=tmp_path / "r", resume=True,
            progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="differs in coordinates"):
        evaluate(
            model, ce_loss, data, dirs, S.grid(7), run_dir=tmp_path / "r", resume=True,
            progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="data"):
        evaluate(
            model, ce_loss, (data[0] + 1, data[1]), dirs, S.grid(5), run_dir=tmp_path / "r",
            resume=True, progress=False,
        )  # fmt: skip
    # A loss whose parameter hides in a partial: the hash cannot see it, the centre value can.
    import functools

    def scaled(model, batch, w):
        return w * ce_loss(model, batch)

    evaluate(model, functools.partial(scaled, w=1.0), data, dirs, S.grid(3),
             run_dir=tmp_path / "p", progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="unperturbed loss"):
        evaluate(model, functools.partial(scaled, w=100.0), data, dirs, S.grid(3),
                 run_dir=tmp_path / "p", resume=True, progress=False)  # fmt: skip
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        evaluate(model, ce_loss, data, dirs, S.grid(5), run_dir=tmp_path / "junk", progress=False)


def test_bad_inputs_give_clear_errors():
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2)
    wrong = [list(d) for d in dirs.tensors]
    wrong[0][0] = torch.zeros(8, 5)
    with pytest.raises(ValueError, match=r"parameter '0.weight': shape \(8, 5\)"):
        evaluate(model, ce_loss, data, wrong, S.grid(3), progress=False)
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, ce_loss, [], dirs, S.grid(3), progress=False)
    with pytest.raises(ValueError, match="3 column"):
        evaluate(model, ce_loss, data, dirs, S.grid(3, dims=3), progress=False)
    with pytest.raises(ValueError, match="NaN"):
        evaluate(model, ce_loss, data, dirs, np.array([[0.0, np.nan]]), progress=False)
    with pytest.raises(ValueError, match="must return a scalar"):
        evaluate(model, lambda m, b: m(b[0]), data, dirs, S.grid(3), progress=False)
    with pytest.raises(RuntimeError, match="failed on the unperturbed model"):
        evaluate(model, lambda m, b: m(b[1]), data, dirs, S.grid(3), progress=False)
    with pytest.raises(ValueError, match="engine must be one of"):
        evaluate(model, ce_loss, data, dirs, S.grid(3), engine="fast", progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(model, None, data, dirs, S.grid(3), progress=False)


def test_save_and_load_round_trip(tmp_path):
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=4)
    land = evaluate(
        model, ce_loss, data, dirs, S.grid((3, 4)), metrics={"accuracy": accuracy},
        progress=False,
    )  # fmt: skip
    path = land.save(tmp_path / "land")
    assert path.name == "land.npz" and (tmp_path / "land.json").exists()
    back = Landscape.load(tmp_path / "land.npz")
    np.testing.assert_array_equal(back.loss, land.loss)
    np.testing.assert_array_equal(back.coords, land.coords)
    np.testing.assert_array_equal(back.metrics["accuracy"], land.metrics["accuracy"])
    assert back.shape == (3, 4) and back.grid().shape == (3, 4)
    meta = json.loads((tmp_path / "land.json").read_text())
    assert meta["info"]["directions"]["seed"] == 4
    assert meta["info"]["model"]["n_params"] == 67
    assert meta["info"]["coordinates"]["kind"] == "grid"
    with pytest.raises(FileNotFoundError):
        Landscape.load(tmp_path / "missing")


def test_topology_hand_off_uses_the_real_core():
    from saddles.topology import compute_metrics, grid_edges, knn_edges, merge_tree

    coords = S.grid(101, (-2, 2))
    x, y = coords.points[:, 0], coords.points[:, 1]
    field = np.cos(3 * x) + np.cos(3 * y)  # 4 basins on [-2, 2]^2
    land = Landscape(coords.points, field, shape=coords.shape)
    values, edges = land.to_graph("full")
    np.testing.assert_array_equal(edges, grid_edges((101, 101), "full"))
    tree, metrics = land.topology("full")
    assert metrics["n_minima"] == 4
    assert metrics == compute_metrics(merge_tree(values, edges))
    pts = S.scattered(300, 3, seed=0)
    scattered = Landscape(pts.points, (pts.points**2).sum(axis=1))
    _, knn = scattered.to_graph()
    np.testing.assert_array_equal(knn, knn_edges(pts.points, k=12))  # k = 4 x dimension
    assert scattered.topology()[1]["n_minima"] >= 1


def test_a_real_landscape_goes_through_topology():
    model, data = tiny_mlp()
    land = evaluate(model, ce_loss, data, D.random_directions(model, 2), S.grid(9), progress=False)
    tree, metrics = land.topology("faces")
    assert metrics["n_vertices"] == 81 and metrics["n_minima"] >= 1
    assert metrics["value_min"] == pytest.approx(land.loss.min())


def test_import_and_load_leave_torch_out(tmp_path):
    """Reading a landscape (``saddles export``, reports) never imports torch."""
    import subprocess
    import sys

    points = np.stack(np.meshgrid(np.linspace(-1, 1, 3), np.linspace(-1, 1, 4)), -1)
    land = Landscape(points.reshape(-1, 2), np.arange(12.0), {}, (4, 3), {"seed": 1})
    land.save(tmp_path / "l")
    code = (
        "import sys\n"
        "import saddles.landscape\n"
        "from saddles.landscape import Landscape\n"
        f"land = Landscape.load({str(tmp_path / 'l')!r})\n"
        "assert land.shape == (4, 3) and land.info == {'seed': 1}, land\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "from saddles.landscape import evaluate\n"
        "assert callable(evaluate) and 'torch' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_evaluate_submodule_does_not_hide_the_function():
    import importlib

    importlib.import_module("saddles.landscape.evaluate")
    importlib.import_module("saddles.landscape.noise")
    from saddles.landscape import evaluate as function

    assert callable(function) and function.__module__ == "saddles.landscape.evaluate"


@pytest.mark.parametrize("engine", ["sequential", "auto"])
def test_the_centre_is_evaluated_once(engine):
    """The centre pass gives the values of a grid point at the origin: the loss runs once per
    batch there, and the values are those a second evaluation would give, bit for bit."""
    model, (x, y) = tiny_mlp()
    data = [(x[:40], y[:40]), (x[40:], y[40:])]
    dirs = D.random_directions(model, 2, seed=0)
    calls = {"n": 0}

    def counting(m, batch):
        calls["n"] += 1
        return ce_loss(m, batch)

    kw = {"engine": engine, "chunk_size": 4, "progress": False}
    land = evaluate(model, counting, data, dirs, S.grid(3), **kw)
    origin = 4  # of the 3x3 grid
    if land.info["engine"] == "sequential":
        assert calls["n"] == len(data) * 9  # the centre once, 8 other points
        assert land.loss[origin] == land.info["center_loss"]
    else:  # batched chunks: the centre pass, then one vmapped call per chunk and batch
        assert calls["n"] == len(data) * (1 + 3)
    # Evaluating the origin again would give the same bits as the centre pass.
    problem = setup(model, ce_loss, None, None, data, dirs, S.grid(3), None, None)
    again = run_sequential(problem, torch.zeros(1, 2, dtype=torch.float64))
    np.testing.assert_array_equal(again[0], center_pass(problem))
    sequential = evaluate(model, ce_loss, data, dirs, S.grid(3), engine="sequential",
                          progress=False)  # fmt: skip
    assert sequential.loss[origin] == again[0, 0]
