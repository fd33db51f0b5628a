"""Small models, data and losses shared by the landscape tests.

Each builder is seeded and small enough that a test evaluating a few dozen landscape points
runs in well under a second on one CPU core:

- :func:`tiny_mlp`: a 2-layer tanh classifier with cross-entropy (and an accuracy metric).
- :func:`small_cnn`: two convolutions with BatchNorm (running statistics made non-trivial, so
  eval mode differs from train mode) and a linear head.
- the convection PINN (Krishnapriyan et al. 2021): ``u_t + beta u_x = 0`` on
  ``[0, 2 pi) x [0, 1]``, ``u(x, 0) = sin x``, periodic in x. Its loss is written twice: with
  ``torch.autograd.grad`` on inputs (the usual PINN code, which ``torch.vmap`` cannot run), and
  with ``torch.func.jvp`` or ``torch.func.jacrev`` (which it can); all give the same value.
- :func:`tiny_transformer`: a 2-layer causal character transformer with next-token loss.
- :class:`Quadratic`: one parameter vector with loss ``0.5 (w - w*)^T A (w - w*)``, for an
  analytic check.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


def tiny_mlp(seed: int = 0, dtype: torch.dtype = torch.float32):
    """``(model, data)``: a 4-8-3 tanh MLP and 64 labelled points (one batch)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(64, 4, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (64,), generator=gen)
    return model, (x, y)


def accuracy(model: nn.Module, batch) -> torch.Tensor:
    """Fraction of correctly classified samples of a batch ``(inputs, labels)``."""
    x, y = batch
    return (model(x).argmax(dim=-1) == y).to(torch.float32).mean()


def small_cnn(seed: int = 0):
    """``(model, data)``: conv-BN-ReLU x2 + linear on 8x8 RGB images, 3 batches of 16."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 5),
    )
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [
        (torch.randn(16, 3, 8, 8, generator=gen), torch.randint(0, 5, (16,), generator=gen))
        for _ in range(3)
    ]
    model.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for x, _ in batches:
            model(x * 2 + 0.5)
    model.eval()
    return model, batches


# --- the convection PINN -----------------------------------------------------------------------


def convection_pinn(seed: int = 0, width: int = 16, depth: int = 2) -> nn.Module:
    """An MLP ``(x, t) -> u`` with tanh activations (the reference net is 2-50x4-1)."""
    torch.manual_seed(seed)
    layers, d_in = [], 2
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.Tanh()]
        d_in = width
    layers.append(nn.Linear(d_in, 1))
    return nn.Sequential(*layers)


def convection_data(n_f: int = 32, n_x: int = 32, n_t: int = 16, seed: int = 0):
    """One batch ``(x_f, t_f, x_0, u_0, t_b)``: collocation points, initial condition, boundary.

    Collocation points are drawn without replacement from the interior of the x-t grid
    (x = 0 and t = 0 excluded), as in the reference code.
    """
    x = torch.arange(n_x, dtype=torch.float32) * (2 * math.pi / n_x)
    t = torch.linspace(0, 1, n_t)
    xx, tt = torch.meshgrid(x[1:], t[1:], indexing="ij")
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(xx.numel(), generator=gen)[:n_f]
    x_f, t_f = xx.reshape(-1)[pick, None], tt.reshape(-1)[pick, None]
    return (x_f, t_f, x[:, None], torch.sin(x)[:, None], t[:, None])


def _ic_and_boundary(model: nn.Module, batch) -> torch.Tensor:
    _, _, x0, u0, tb = batch
    ic = model(torch.cat([x0, torch.zeros_like(x0)], dim=1))
    left = model(torch.cat([torch.zeros_like(tb), tb], dim=1))
    right = model(torch.cat([torch.full_like(tb, 2 * math.pi), tb], dim=1))
    return ((ic - u0) ** 2).mean() + ((left - right) ** 2).mean()


def pinn_loss_autograd(model: nn.Module, batch, beta: float = 3.0) -> torch.Tensor:
    """Convection PINN loss with u_t, u_x from ``torch.autograd.grad`` (not vmappable)."""
    x_f, t_f = batch[0].clone().requires_grad_(True), batch[1].clone().requires_grad_(True)
    u = model(torch.cat([x_f, t_f], dim=1))
    u_x, u_t = torch.autograd.grad(u.sum(), (x_f, t_f), create_graph=True)
    return ((u_t + beta * u_x) ** 2).mean() + _ic_and_boundary(model, batch)


def pinn_loss_jvp(model: nn.Module, batch, beta: float = 3.0) -> torch.Tensor:
    """The same loss with ``torch.func.jvp``: one forward-mode pass gives ``u_t + beta u_x``
    (the derivative of u along (beta, 1) in (x, t)), and it composes with ``torch.vmap``."""
    x_f, t_f = batch[0], batch[1]
    xt = torch.cat([x_f, t_f], dim=1)
    tangent = torch.cat([torch.full_like(x_f, beta), torch.ones_like(t_f)], dim=1)
    _, residual = torch.func.jvp(model, (xt,), (tangent,))
    return (residual**2).mean() + _ic_and_boundary(model, batch)


def pinn_loss_jacrev(model: nn.Module, batch, beta: float = 3.0) -> torch.Tensor:
    """The same loss with per-point Jacobians ``vmap(jacrev(u))``: the general recipe (also for
    second derivatives, with ``jacfwd(jacrev(u))``), which nests inside the engine's vmap."""
    xt = torch.cat([batch[0], batch[1]], dim=1)
    grads = torch.func.vmap(torch.func.jacrev(lambda p: model(p[None])[0, 0]))(xt)  # (u_x, u_t)
    return ((grads[:, 1] + beta * grads[:, 0]) ** 2).mean() + _ic_and_boundary(model, batch)


# --- a tiny transformer ------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """A GPT-style causal character model: token + position embeddings, blocks, linear head."""

    def __init__(self, vocab: int = 11, d: int = 16, layers: int = 2, heads: int = 2, T: int = 8):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(T, d)
        self.blocks = nn.Sequential(*[_Block(d, heads) for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.head(self.ln(self.blocks(self.tok(idx) + self.pos(pos))))


def next_token_loss(model: nn.Module, batch) -> torch.Tensor:
    """Cross-entropy of predicting token i+1 from tokens up to i; batch = (tokens,)."""
    tokens = batch[0]
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def tiny_transformer(seed: int = 0):
    """``(model, data)``: a 2-layer d=16 character transformer and 4 sequences of 9 tokens."""
    torch.manual_seed(seed)
    model = CharTransformer().eval()
    gen = torch.Generator().manual_seed(seed + 1)
    return model, torch.randint(0, 11, (4, 9), generator=gen)


# --- an analytic landscape ---------------------------------------------------------------------


class Quadratic(nn.Module):
    """``loss = 0.5 (w - w*)^T A (w - w*)`` with ``A`` symmetric positive definite."""

    def __init__(self, n: int = 6, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        m = torch.randn(n, n, generator=gen, dtype=torch.float64)
        self.register_buffer("A", m @ m.T + n * torch.eye(n, dtype=torch.float64))
        self.register_buffer("w_star", torch.randn(n, generator=gen, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(n, generator=gen, dtype=torch.float64))

    def forward(self, _: torch.Tensor) -> torch.Tensor:
        r = self.w - self.w_star
        return 0.5 * r @ self.A @ r


def quadratic_loss(model: Quadratic, batch) -> torch.Tensor:
    return model(batch[0])


@contextlib.contextmanager
def busy_cpu() -> Iterator[None]:
    """A CPU-bound process (``while True: pass``) running beside the block, ended after it by
    its pid: results must not depend on the load."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        busy.kill()
        busy.wait()
