"""The convection PINN (Krishnapriyan et al. 2021): data, loss (autograd and vmap), training,
errors, figure and checkpoints, at sizes that run in seconds."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from saddles.experiments.pinn import (
    convection_data,
    convection_loss,
    convection_loss_terms,
    load_checkpoint,
    make_pinn,
    pinn_errors,
    save_checkpoint,
    solution_figure,
    train_pinn,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


class Travelling(nn.Module):
    """``u(x, t) = sin(x - speed t)``: the exact solution when ``speed == beta``."""

    def __init__(self, speed: float):
        super().__init__()
        self.speed = speed

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        return torch.sin(xt[:, 0:1] - self.speed * xt[:, 1:2])


class Zero(nn.Module):
    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(xt[:, :1])


def small_data(dtype=torch.float64):
    return convection_data(n_x=32, n_t=16, n_f=40, dtype=dtype)


def test_make_pinn_is_the_reference_net_with_default_init():
    model = make_pinn(seed=0)
    assert sum(p.numel() for p in model.parameters()) == 7851
    torch.manual_seed(0)  # the reference: default init right after seeding
    ref = nn.Sequential(
        nn.Linear(2, 50), nn.Tanh(), nn.Linear(50, 50), nn.Tanh(), nn.Linear(50, 50), nn.Tanh(),
        nn.Linear(50, 50), nn.Tanh(), nn.Linear(50, 1),
    )  # fmt: skip
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(make_pinn(seed=1)[0].weight, model[0].weight)
    assert model(torch.zeros(5, 2)).shape == (5, 1)


def test_convection_data_follows_the_reference_layout_and_sampling():
    xt_f, xt_0, u_0, xt_lb, xt_ub = convection_data()
    assert xt_f.dtype == torch.float32
    assert [tuple(t.shape) for t in (xt_f, xt_0, u_0, xt_lb, xt_ub)] == [
        (100, 2), (256, 2), (256, 1), (100, 2), (100, 2)
    ]  # fmt: skip
    # The reference code, verbatim in spirit: global numpy seed 0, then np.random.choice.
    x = np.linspace(0, 2 * np.pi, 256, endpoint=False).reshape(-1, 1)
    t = np.linspace(0, 1, 100).reshape(-1, 1)
    X, T = np.meshgrid(x[1:], t[1:])
    interior = np.hstack((X.flatten()[:, None], T.flatten()[:, None]))
    state = np.random.get_state()
    try:
        np.random.seed(0)
        expected = interior[np.random.choice(interior.shape[0], 100, replace=False)]
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(xt_f.numpy(), expected.astype(np.float32))
    assert len({tuple(r) for r in xt_f.tolist()}) == 100
    assert (xt_f[:, 0] > 0).all() and (xt_f[:, 1] > 0).all() and (xt_f[:, 0] < 2 * np.pi).all()
    np.testing.assert_array_equal(xt_0[:, 0].numpy(), x[:, 0].astype(np.float32))
    assert (xt_0[:, 1] == 0).all()
    np.testing.assert_allclose(u_0[:, 0].numpy(), np.sin(x[:, 0]), atol=1e-7)
    assert (xt_lb[:, 0] == 0).all() and torch.allclose(xt_ub[:, 0], torch.tensor(2 * math.pi))
    np.testing.assert_array_equal(xt_lb[:, 1].numpy(), t[:, 0].astype(np.float32))
    assert torch.equal(xt_lb[:, 1], xt_ub[:, 1])
    assert convection_data(dtype=torch.float64)[0].dtype == torch.float64
    assert not torch.equal(convection_data(seed=1)[0], xt_f)


def test_exact_solution_has_zero_loss_and_a_wrong_speed_does_not():
    beta = 3.0
    batch = convection_data(dtype=torch.float64)
    loss = convection_loss(beta)
    assert float(loss(Travelling(beta), batch)) < 1e-10
    # sin(x - c t) meets the initial and periodic conditions for any c; its residual is
    # (beta - c) cos(x - c t), so the residual MSE is known in closed form.
    c = 2.0
    ic, bc, res = (float(v) for v in convection_loss_terms(Travelling(c), batch, beta))
    x, t = batch[0][:, 0].numpy(), batch[0][:, 1].numpy()
    assert ic < 1e-20 and bc < 1e-20
    assert res == pytest.approx(np.mean(((beta - c) * np.cos(x - c * t)) ** 2), rel=1e-10)
    assert float(loss(Travelling(c), batch)) > 0.1
    assert float(loss(Zero(), batch)) == pytest.approx(np.mean(np.sin(batch[1][:, 0].numpy()) ** 2))


def test_residual_equals_the_autograd_input_derivatives():
    torch.manual_seed(0)
    model = make_pinn(seed=2).double()
    batch = small_data()
    beta = 5.0
    xt = batch[0].clone().requires_grad_(True)
    u = model(xt)
    (du,) = torch.autograd.grad(u.sum(), xt)
    expected = torch.mean((du[:, 1] + beta * du[:, 0]) ** 2)
    _, _, res = convection_loss_terms(model, batch, beta)
    assert float(res.detach()) == pytest.approx(float(expected), rel=1e-12)


class LossModule(nn.Module):
    """Wraps ``model`` so that ``functional_call`` swaps its parameters for the whole loss, as
    the landscape sampler's batched engine does."""

    def __init__(self, model: nn.Module, loss):
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch):
        return self.loss(self.model, batch)


def test_loss_under_vmap_and_functional_call_matches_a_loop():
    model = make_pinn(seed=0)
    batch = convection_data()
    loss = convection_loss(4.0)
    wrapper = LossModule(model, loss)
    gen = torch.Generator().manual_seed(0)
    sets = [
        {n: p.detach() + 0.05 * k * torch.randn(p.shape, generator=gen)
         for n, p in model.named_parameters()}
        for k in range(3)
    ]  # fmt: skip
    stacked = {f"model.{n}": torch.stack([s[n] for s in sets]) for n in sets[0]}

    def one_point(params, b):
        return torch.func.functional_call(wrapper, params, (b,))

    batched = torch.vmap(one_point, in_dims=(0, None))(stacked, batch)
    looped = []
    for s in sets:
        m = copy.deepcopy(model)
        m.load_state_dict(s)
        looped.append(float(loss(m, batch).detach()))
    assert batched.shape == (3,)
    np.testing.assert_allclose(batched.detach().numpy(), looped, rtol=1e-5)
    assert len(set(looped)) == 3  # the perturbations did change the loss


def test_loss_is_twice_differentiable_for_hessian_vector_products():
    model = make_pinn(seed=0).double()
    batch = small_data()
    loss = convection_loss(2.0)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]

    grads = torch.autograd.grad(loss(model, batch), params, create_graph=True)
    dot = sum((g * w).sum() for g, w in zip(grads, v, strict=True))
    hvp = torch.cat([h.reshape(-1) for h in torch.autograd.grad(dot, params)])

    # Oracle: central difference of first-order gradients along v.
    def gradient_at(step: float) -> torch.Tensor:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for p, w in zip(m.parameters(), v, strict=True):
                p.add_(step * w)
        g = torch.autograd.grad(loss(m, batch), list(m.parameters()))
        return torch.cat([x.reshape(-1) for x in g])

    eps = 1e-5
    fd = (gradient_at(eps) - gradient_at(-eps)) / (2 * eps)
    assert hvp.norm() > 1e-3
    torch.testing.assert_close(hvp, fd, rtol=1e-5, atol=1e-7 * float(fd.abs().max()))

    # Forward-over-reverse (torch.func.jvp of torch.func.grad) through the same loss agrees.
    wrapper = LossModule(model, loss)
    theta = {f"model.{n}": p.detach() for n, p in model.named_parameters()}
    tangent = {f"model.{n}": w for (n, _), w in zip(model.named_parameters(), v, strict=True)}
    grad_fn = torch.func.grad(lambda th: torch.func.functional_call(wrapper, th, (batch,)))
    _, hvp_fwd = torch.func.jvp(grad_fn, (theta,), (tangent,))
    flat = torch.cat([hvp_fwd[k].reshape(-1) for k in theta])
    torch.testing.assert_close(flat, hvp, rtol=1e-10, atol=1e-12)


def test_train_pinn_lowers_the_loss_deterministically():
    beta = 1.0
    batch = convection_data()
    start = float(convection_loss(beta)(make_pinn(seed=0), batch).detach())
    seen = []
    model, info = train_pinn(beta, max_iter=25, callback=lambda i, v: seen.append(v))
    assert info["loss"] < 0.5 * start
    final = float(convection_loss(beta)(model, batch).detach())
    assert info["loss"] == pytest.approx(final, rel=1e-5)
    assert info["loss"] == pytest.approx(info["loss_ic"] + info["loss_bc"] + info["loss_res"])
    assert 1 <= info["iterations"] <= 25 and info["function_evals"] == len(seen)
    assert seen[0] == pytest.approx(start, rel=1e-6)
    assert info["seconds"] > 0 and info["beta"] == beta and info["n_f"] == 100
    again, info2 = train_pinn(beta, max_iter=25)
    assert info2["loss"] == info["loss"]
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_pinn_errors_against_known_fields():
    beta = 4.0
    exact = pinn_errors(Travelling(beta), beta)
    assert exact["rel_l2"] < 1e-12 and exact["mae"] < 1e-12 and exact["max_abs"] < 1e-12
    zero = pinn_errors(Zero(), beta)
    assert zero["rel_l2"] == pytest.approx(1.0)
    # Each row of the grid is a full period of |sin| sampled uniformly: mean 2/pi.
    assert zero["mae"] == pytest.approx(2 / np.pi, rel=1e-4)
    assert zero["max_abs"] == pytest.approx(1.0, abs=1e-3)
    # A wrong speed c: the error field is sin(x - c t) - sin(x - beta t), computed here directly.
    c = 3.0
    x = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    t = np.linspace(0, 1, 20)
    xx, tt = np.meshgrid(x, t)
    err = np.sin(xx - c * tt) - np.sin(xx - beta * tt)
    got = pinn_errors(Travelling(c), beta, n_x=64, n_t=20)
    assert got["rel_l2"] == pytest.approx(
        np.linalg.norm(err) / np.linalg.norm(np.sin(xx - beta * tt))
    )
    assert got["mae"] == pytest.approx(np.mean(np.abs(err)))


def test_solution_figure_has_three_panels_and_saves(tmp_path):
    fig = solution_figure(make_pinn(seed=0), 3.0, n_x=32, n_t=16)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert images[0].images[0].get_array().shape == (16, 32)
    fig.savefig(tmp_path / "solution.png")
    assert (tmp_path / "solution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_round_trip_is_safetensors(tmp_path):
    model = make_pinn(seed=0)
    path = save_checkpoint(model, tmp_path / "pinn.safetensors", {"beta": "3"})
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
        assert f.metadata() == {"beta": "3"}
    other = make_pinn(seed=5)
    load_checkpoint(other, path)
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="missing"):
        load_checkpoint(make_pinn(seed=0, depth=5), path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(model, tmp_path / "absent.safetensors")


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="beta must be a finite"):
        convection_loss(float("nan"))
    with pytest.raises(ValueError, match="n_f must be between 1 and"):
        convection_data(n_x=4, n_t=3, n_f=7)
    loss = convection_loss(1.0)
    batch = small_data()
    with pytest.raises(ValueError, match="5 tensors"):
        loss(make_pinn(), batch[:2])
    with pytest.raises(ValueError, match="xt_0 must have shape"):
        loss(make_pinn().double(), (batch[0], batch[1][:, :1], *batch[2:]))
