"""The Hessian tests' models and their exact Hessians (imported by the modules in this folder).

The oracles are independent of the code under test: each model's loss is rewritten by hand as a
plain function of one flat parameter vector (no modules, no functional_call) and differentiated
twice by ``torch.func.hessian`` (or ``torch.autograd.functional.hessian`` for the PINN, whose loss
differentiates with respect to its inputs and so cannot go through torch.func), in float64;
spectra come from ``numpy.linalg.eigh``. The ``case`` fixture over :data:`MODELS` is in this
folder's conftest.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from saddles.io.data import make_loss

torch.set_num_threads(1)
F64 = torch.float64


def flat_params(model):
    return torch.cat([p.detach().to(F64).reshape(-1) for p in model.parameters()])


def unflat(model, theta):
    """Views of a flat vector shaped like the model's parameters, by name."""
    out, i = {}, 0
    for n, p in model.named_parameters():
        out[n] = theta[i : i + p.numel()].view(p.shape)
        i += p.numel()
    return out


def make_mlp(seed=0, n=48):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x, y = torch.randn(n, 4), torch.randint(0, 3, (n,))
    loss = make_loss(criterion=torch.nn.CrossEntropyLoss())

    def exact():
        theta = flat_params(model)

        def f(t):
            w0, b0, w2, b2 = unflat(model, t).values()
            out = torch.tanh(x.to(F64) @ w0.T + b0) @ w2.T + b2
            return torch.nn.functional.cross_entropy(out, y)

        return torch.func.hessian(f)(theta)

    return model, loss, (x, y), exact


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(3)
        self.fc = torch.nn.Linear(27, 4)

    def forward(self, x):
        h = torch.tanh(self.bn(self.conv(x)))
        return self.fc(torch.nn.functional.avg_pool2d(h, 2).flatten(1))


def make_cnn(seed=0):
    torch.manual_seed(seed)
    model = SmallCNN()
    with torch.no_grad():  # non-trivial running statistics, used in eval mode
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 1.5)
    x, y = torch.randn(32, 1, 6, 6), torch.randint(0, 4, (32,))
    loss = make_loss(criterion=torch.nn.CrossEntropyLoss())

    def exact():
        p = {n: t.detach().to(F64) for n, t in model.named_parameters()}
        rm, rv = model.bn.running_mean.to(F64), model.bn.running_var.to(F64)
        theta = flat_params(model)

        def f(t):
            q = dict(p)
            q.update(unflat(model, t))
            h = torch.nn.functional.conv2d(x.to(F64), q["conv.weight"], q["conv.bias"], padding=1)
            h = (h - rm[None, :, None, None]) / torch.sqrt(rv[None, :, None, None] + 1e-5)
            h = torch.tanh(
                h * q["bn.weight"][None, :, None, None] + q["bn.bias"][None, :, None, None]
            )
            h = torch.nn.functional.avg_pool2d(h, 2).flatten(1)
            out = h @ q["fc.weight"].T + q["fc.bias"]
            return torch.nn.functional.cross_entropy(out, y)

        return torch.func.hessian(f)(theta)

    return model, loss, (x, y), exact


def make_pinn(seed=0, beta=3.0, n_f=40):
    """Convection PINN: residual u_t + beta u_x at collocation points, plus u(x, 0) = sin x."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 10),
        torch.nn.Tanh(),
        torch.nn.Linear(10, 10),
        torch.nn.Tanh(),
        torch.nn.Linear(10, 1),
    )
    xt = torch.rand(n_f, 2) * torch.tensor([2 * math.pi, 1.0])
    x0 = torch.linspace(0, 2 * math.pi, 16)[:, None]
    ic = torch.cat([x0, torch.zeros_like(x0)], dim=1)
    u0 = torch.sin(x0)

    def loss(model, batch):
        xt, ic, u0 = batch
        xt = xt.clone().requires_grad_(True)
        u = model(xt)
        (du,) = torch.autograd.grad(u.sum(), xt, create_graph=True)
        residual = du[:, 1] + beta * du[:, 0]
        return residual.pow(2).mean() + (model(ic) - u0).pow(2).mean()

    # Collocation and initial-condition sets have different sizes: one "batch" holding both,
    # replicated along a dummy first axis, keeps the protocol's batch-size weighting out of it.
    data = (xt[None], ic[None], u0[None])

    def batch_loss(model, batch):
        return loss(model, tuple(t[0] for t in batch))

    def exact():
        shapes = [p.shape for p in model.parameters()]
        theta = flat_params(model)

        def net(t, z):
            i, ws = 0, []
            for s in shapes:
                k = int(np.prod(s))
                ws.append(t[i : i + k].view(s))
                i += k
            h = torch.tanh(z @ ws[0].T + ws[1])
            h = torch.tanh(h @ ws[2].T + ws[3])
            return h @ ws[4].T + ws[5]

        def f(t):
            z = xt.to(F64).clone().requires_grad_(True)
            u = net(t, z)
            (du,) = torch.autograd.grad(u.sum(), z, create_graph=True)
            r = du[:, 1] + beta * du[:, 0]
            return r.pow(2).mean() + (net(t, ic.to(F64)) - u0.to(F64)).pow(2).mean()

        return torch.autograd.functional.hessian(f, theta)

    return model, batch_loss, data, exact


class Quadratic(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1, 1, n))


def quadratic_loss(d, c):
    def loss(model, batch):
        return 0.5 * (d * (model.w - c) ** 2).sum() + 0.0 * batch[0].sum()

    return loss


MODELS = {"mlp": make_mlp, "cnn": make_cnn, "pinn": make_pinn}
