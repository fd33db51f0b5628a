"""Tests of the lean landscape: evaluation without autograd where the loss needs none (found on
the centre, values unchanged), and the memory a problem holds beyond the model.

The oracle for values is a plain loop written here: a fresh copy of the model, each point's
weights written as ``theta_0 + c @ basis`` with one ``torch.addmm`` per parameter (the same
arithmetic as the sequential engine, so the same bits), the loss called with autograd
enabled, as every pass ran before the gradient mode existed.
"""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models_for_tests import (
    convection_data,
    convection_pinn,
    next_token_loss,
    pinn_loss_autograd,
    pinn_loss_jacrev,
    pinn_loss_jvp,
    tiny_mlp,
    tiny_transformer,
)

from saddles import directions as D
from saddles import sampling as S
from saddles.io.data import as_batches
from saddles.landscape import evaluate
from saddles.landscape.engines import run_batched, run_sequential
from saddles.landscape.memory import PeakMemory
from saddles.landscape.problem import setup

evaluate_module = importlib.import_module("saddles.landscape.evaluate")
torch.set_num_threads(1)


def ce_loss(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1])


def addmm_loop(model, loss_fn, data, directions, points, train=False):
    """The oracle: per point, ``w0 + c @ basis`` per parameter into a copy, loss with autograd."""
    m = copy.deepcopy(model).train(train)
    params = list(m.parameters())
    w0 = [p.detach().reshape(-1).clone() for p in params]
    basis = [torch.stack([d[j].reshape(-1) for d in directions.tensors]) for j in range(len(w0))]
    batches = as_batches(data)
    sizes = np.array([b[0].shape[0] for b in batches], dtype=float)
    out = []
    with torch.enable_grad():
        for c in np.asarray(points):
            row = torch.as_tensor(c[None], dtype=torch.float64).to(w0[0].dtype)
            with torch.no_grad():
                for p, w, b in zip(params, w0, basis, strict=True):
                    p.copy_(torch.addmm(w[None], row, b).reshape(p.shape))
            vals = [float(loss_fn(m, b).detach()) for b in batches]
            out.append(vals[0] if len(vals) == 1 else float(np.dot(sizes / sizes.sum(), vals)))
    return np.array(out)


WORKLOADS = {
    "mlp": lambda: (*tiny_mlp(), ce_loss),
    "transformer": lambda: (*tiny_transformer(), next_token_loss),
    "pinn_jvp": lambda: (convection_pinn(), convection_data(), pinn_loss_jvp),
    "pinn_jacrev": lambda: (convection_pinn(), convection_data(), pinn_loss_jacrev),
    "pinn_autograd": lambda: (convection_pinn(), convection_data(), pinn_loss_autograd),
}
#: The mode the centre pass should find: only a loss calling torch.autograd.grad needs autograd
#: (torch.func transforms differentiate without the outer autograd state).
NEEDS_GRAD = {"pinn_autograd"}


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_grad_mode_is_detected_and_values_are_the_plain_loops_bits(workload):
    model, data, loss = WORKLOADS[workload]()
    dirs = D.random_directions(model, 2, seed=3)
    coords = S.grid(4, (-1, 1))
    land = evaluate(model, loss, data, dirs, coords, engine="sequential", progress=False)
    expected = "enable_grad" if workload in NEEDS_GRAD else "no_grad"
    assert land.info["grad_mode"] == expected
    np.testing.assert_array_equal(land.loss, addmm_loop(model, loss, data, dirs, coords.points))


def test_train_mode_keeps_autograd():
    model, data = tiny_mlp()
    dirs = D.random_directions(model, 2, seed=0)
    land = evaluate(model, ce_loss, data, dirs, S.grid(3), engine="sequential", train_mode=True,
                    progress=False)  # fmt: skip
    assert land.info["grad_mode"] == "enable_grad"


@pytest.mark.parametrize("engine", [run_sequential, run_batched])
@pytest.mark.parametrize("workload", ["mlp", "pinn_jvp"])
def test_engines_give_the_same_bits_in_either_mode(workload, engine):
    model, data, loss = WORKLOADS[workload]()
    model.eval()
    dirs = D.random_directions(model, 2, seed=1)
    coords = S.grid(3, (-1, 1))
    problem = setup(model, loss, None, None, data, dirs, coords, None, None)
    c = torch.as_tensor(coords.points, dtype=torch.float64)
    problem.grad_mode = "enable_grad"
    with_grad = engine(problem, c.clone())
    problem.grad_mode = "no_grad"
    without = engine(problem, c.clone())
    np.testing.assert_array_equal(with_grad, without)


def test_a_failed_attempt_without_autograd_leaves_the_random_state_alone():
    """A loss that draws random numbers before it needs autograd: the attempt without autograd
    fails after drawing, and the values are those of a run that never tried it."""
    model, data = convection_pinn(), convection_data()

    def noisy(m, batch):
        jitter = 1e-3 * torch.randn(())
        return pinn_loss_autograd(m, batch) + jitter

    dirs = D.random_directions(model, 2, seed=0)
    torch.manual_seed(7)
    land = evaluate(model, noisy, data, dirs, S.grid(3), engine="sequential", progress=False)
    assert land.info["grad_mode"] == "enable_grad"
    # The engine draws for the centre first (the centre pass), then for the other points in
    # grid order; the loop draws from the same seed in that order.
    order = [4, 0, 1, 2, 3, 5, 6, 7, 8]
    torch.manual_seed(7)
    expected = addmm_loop(model, noisy, data, dirs, S.grid(3).points[order])
    np.testing.assert_array_equal(land.loss[order], expected)


# --- the memory a landscape holds beyond the model ---------------------------------------------


def wide_mlp(seed: int = 0):
    """``(model, data)``: parameters (about 75k floats) dwarf the activations of 8 samples."""
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(64, 128), torch.nn.Tanh()]
    for _ in range(4):
        layers += [torch.nn.Linear(128, 128), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(128, 10)).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    return model, (torch.randn(8, 64, generator=gen), torch.randint(0, 10, (8,), generator=gen))


def storages(obj, seen: set[int] | None = None) -> dict[int, int]:
    """``{data_ptr: nbytes}`` of every tensor storage reachable through dataclass fields,
    lists, tuples and dicts (not through modules: the model is counted apart)."""
    seen = set() if seen is None else seen
    out: dict[int, int] = {}
    if id(obj) in seen or isinstance(obj, torch.nn.Module):
        return out
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        s = obj.untyped_storage()
        return {s.data_ptr(): s.nbytes()}
    if hasattr(obj, "__dataclass_fields__"):
        items = [getattr(obj, f) for f in obj.__dataclass_fields__]
    elif isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        items = list(obj)
    else:
        return out
    for item in items:
        out.update(storages(item, seen))
    return out


def test_a_problem_holds_one_copy_of_the_parameters_beyond_the_model():
    """Beyond the model's tensors, the given directions and the data, a problem holds the
    centre and nothing else: a stacked basis or a second centre would add bytes here."""
    model, data = wide_mlp()
    dirs = D.random_directions(model, 2, seed=0)
    problem = setup(model, ce_loss, None, None, data, dirs, S.grid(3), None, None)
    theirs = storages([list(model.parameters()), list(model.buffers()), dirs.tensors, data])
    held = {k: n for k, n in storages(problem).items() if k not in theirs}
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert sum(held.values()) == param_bytes  # the centre, exactly once


def test_parameters_no_direction_moves_keep_no_direction_entries():
    model, data = wide_mlp()
    dirs = D.random_directions(model, 2, seed=0, params={"include": ["0.*"]})
    problem = setup(model, ce_loss, None, None, data, dirs, S.grid(3), None, None)
    names = [n for n, _ in model.named_parameters()]
    assert [names[j] for j in problem.moving] == ["0.weight"]  # 1-D biases: ignore_1d
    assert [n for n, r in zip(names, problem.rows, strict=True) if r is not None] == ["0.weight"]


def landscape_peak(model, data, dirs, capture=None) -> int:
    existing = [list(model.parameters()), list(model.buffers()), dirs.tensors, data]
    with PeakMemory(storages(existing)) as meter:
        evaluate(model, ce_loss, data, dirs, S.grid(5), engine="sequential", progress=False)
    return meter.peak


def test_the_sequential_engine_holds_the_centre_and_one_basis_buffer(monkeypatch):
    """The peak tensor memory allocated inside ``evaluate`` is the centre, one buffer of k
    times the largest moving parameter and a forward's own memory, within a quarter of a
    parameter copy; a regression that keeps one more copy of the parameters fails here (the
    test checks that it does, with the restore copy ``evaluate`` kept before)."""
    model, data = wide_mlp()
    dirs = D.random_directions(model, 2, seed=0)
    sizes = [p.numel() * p.element_size() for p in model.parameters()]
    with PeakMemory(storages([list(model.parameters()), data])) as forward, torch.no_grad():
        ce_loss(model, data)
    bound = sum(sizes) + 2 * max(sizes) + forward.peak + sum(sizes) // 4  # k = 2 rows
    assert landscape_peak(model, data, dirs) <= bound

    def capture_with_a_copy(m, center):  # what evaluate did before: a clone of every tensor
        state = original(m, center)
        state.params = [p.detach().clone() for p in m.parameters()]
        return state

    original = evaluate_module.ModelState.capture
    monkeypatch.setattr(evaluate_module.ModelState, "capture", capture_with_a_copy)
    assert landscape_peak(model, data, dirs) > bound


def test_directions_stored_in_bfloat16_are_widened_per_parameter_and_not_copied():
    """Opt-in bfloat16 directions: the draws rounded once to bfloat16, recorded; a landscape
    keeps them as they are (half the bytes) and gives the plain loop's bits for the directions
    widened to float32; the default's directions and record are unchanged."""
    model, data = wide_mlp()
    dirs = D.random_directions(model, 2, seed=0, dtype="bfloat16")
    wide64 = D.random_directions(copy.deepcopy(model).double(), 2, seed=0)  # the float64 draws
    assert dirs.info["dtype"] == "bfloat16" and "dtype" not in wide64.info
    for mine, exact in zip(dirs.tensors, wide64.tensors, strict=True):
        assert all(torch.equal(a, b.bfloat16()) for a, b in zip(mine, exact, strict=True))

    problem = setup(model, ce_loss, None, None, data, dirs, S.grid(3), None, None)
    theirs = storages([list(model.parameters()), list(model.buffers()), dirs.tensors, data])
    held = {k: n for k, n in storages(problem).items() if k not in theirs}
    assert sum(held.values()) == sum(p.numel() * 4 for p in model.parameters())  # the centre

    widened = D.from_tensors(model, [[t.float() for t in d] for d in dirs.tensors])
    coords = S.grid(4, (-1, 1))
    land = evaluate(model, ce_loss, data, dirs, coords, engine="sequential", progress=False)
    np.testing.assert_array_equal(
        land.loss, addmm_loop(model, ce_loss, data, widened, coords.points)
    )
    batched = evaluate(model, ce_loss, data, dirs, coords, engine="batched", progress=False)
    same = evaluate(model, ce_loss, data, widened, coords, engine="batched", progress=False)
    np.testing.assert_array_equal(batched.loss, same.loss)


def test_a_bad_storage_dtype_is_refused():
    model, _ = wide_mlp()
    with pytest.raises(ValueError, match="floating-point dtype"):
        D.random_directions(model, 2, dtype="int8")


def test_parameters_larger_than_a_write_block_get_the_whole_tensor_addmm_bits(monkeypatch):
    """A parameter of more than WRITE_BLOCK entries is written block by block through a buffer
    of k rows of a block: the values are the bits of one addmm over the whole tensor (the
    oracle loop), and the buffer is the block's size, not the parameter's."""
    from saddles.landscape import engines

    monkeypatch.setattr(engines, "WRITE_BLOCK", 1000)  # blocks of 1000 of the 8192-entry weight
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(),
                                torch.nn.Linear(128, 10)).eval()  # fmt: skip
    gen = torch.Generator().manual_seed(4)
    data = (torch.randn(16, 64, generator=gen), torch.randint(0, 10, (16,), generator=gen))
    dirs = D.random_directions(model, 2, seed=1)
    coords = S.grid(5, (-1.5, 1.5))
    land = evaluate(model, ce_loss, data, dirs, coords, engine="sequential", progress=False)
    np.testing.assert_array_equal(land.loss, addmm_loop(model, ce_loss, data, dirs, coords.points))
    problem = setup(model, ce_loss, None, None, data, dirs, coords, None, None)
    assert sum(b.numel() for b in engines.basis_buffers(problem).values()) == 2 * 1000
