"""Tests for saddles.hessian against exact Hessians.

The oracles are independent of the code under test: each model's loss is rewritten by hand as a
plain function of one flat parameter vector (no modules, no functional_call) and differentiated
twice by ``torch.func.hessian`` (or ``torch.autograd.functional.hessian`` for the PINN, whose loss
differentiates with respect to its inputs and so cannot go through torch.func), in float64;
spectra come from ``numpy.linalg.eigh``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse.linalg
import torch

from saddles.data import make_loss
from saddles.hessian import (
    DenseOperator,
    HessianOperator,
    NondeterministicHessianError,
    lanczos,
    power_iteration,
    select_parameters,
    spectral_density,
    top_eigen,
    trace,
)

torch.set_num_threads(1)
F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# Tiny models and their exact Hessians
# ---------------------------------------------------------------------------------------------


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


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    model, loss, data, exact = MODELS[request.param]()
    H = exact().numpy()
    return request.param, model, loss, data, H


# ---------------------------------------------------------------------------------------------
# Products
# ---------------------------------------------------------------------------------------------


def test_matvec_and_matmat_equal_exact_hessian(case):
    name, model, loss, data, H = case
    methods = ["reverse"] if name == "pinn" else ["reverse", "forward"]
    gen = torch.Generator().manual_seed(1)
    V = torch.randn(H.shape[0], 5, generator=gen, dtype=F64)
    HV = H @ V.numpy()
    for method, cache, batched in itertools.product(methods, (True, False), (True, False, None)):
        op = HessianOperator(
            model, loss, data, dtype=F64, hvp=method, cache_graph=cache, batched=batched
        )
        assert op.dim == H.shape[0] and op.hvp_method == method
        atol = 1e-10 * np.abs(HV).max()
        np.testing.assert_allclose(op.matvec(V[:, 0]).numpy(), HV[:, 0], rtol=0, atol=atol)
        np.testing.assert_allclose(op.matmat(V).numpy(), HV, rtol=0, atol=atol)
        assert op.batched in ((True, False) if batched is None else (batched,))
        np.testing.assert_allclose(op.matmat(V).numpy(), HV, rtol=0, atol=atol)  # after choice
        lin = op.as_linear_operator()
        np.testing.assert_allclose(lin @ V.numpy(), HV, rtol=0, atol=atol)


def test_fastest_method_is_measured_and_falls_back_for_input_derivatives():
    model, loss, data, _ = make_mlp()
    op = HessianOperator(model, loss, data, dtype=F64, hvp="fastest")
    assert op.hvp_method in ("reverse", "forward")
    assert op.hvp_timings["reverse"] > 0 and op.hvp_timings["forward"] > 0
    model, loss, data, _ = make_pinn()
    op = HessianOperator(model, loss, data, dtype=F64, hvp="fastest")
    assert op.hvp_method == "reverse" and op.hvp_timings["forward"] is None
    assert "forward-over-reverse failed" in op.hvp_unavailable
    with pytest.raises(ValueError, match="hvp='reverse'"):
        HessianOperator(model, loss, data, dtype=F64, hvp="forward")


def test_fastest_times_the_first_block_without_an_extra_product():
    model, loss, data, exact = make_mlp()
    H = exact().numpy()
    V = torch.randn(H.shape[0], 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    op = HessianOperator(model, loss, data, dtype=F64, hvp="fastest")
    assert op.batched is None and op.n_hvps == 0 and op.n_setup_hvps >= 5
    np.testing.assert_allclose(op.matmat(V).numpy(), H @ V.numpy(), rtol=0, atol=1e-12)
    assert op.batched in (True, False) and op.hvp_timings["block_per_vector"] > 0
    assert op.n_hvps == 4


def test_auto_is_a_fixed_rule_and_results_are_functions_of_the_inputs():
    """hvp="auto" measures nothing: double backward, looped blocks on the CPU, no products at
    construction; two operators give bit-identical results, and a block equals its columns."""
    model, loss, data, _ = make_cnn()
    ops = [HessianOperator(model, loss, data) for _ in range(2)]
    for op in ops:
        assert op.hvp_method == "reverse" and op.batched is False
        assert op.n_hvps == op.n_setup_hvps == 0
        assert op.hvp_timings == {"reverse": None, "forward": None}
    a, b = (top_eigen(op, 2, seed=1) for op in ops)
    assert np.array_equal(a.eigenvalues, b.eigenvalues) and np.array_equal(a.vectors, b.vectors)
    V = torch.randn(ops[0].dim, 3, generator=torch.Generator().manual_seed(0))
    block = ops[0].matmat(V)
    assert all(torch.equal(block[:, j], ops[0].matvec(V[:, j])) for j in range(3))


def test_setup_costs_one_product_and_budgets_are_exact():
    """The default checks cost one HVP (the first product, recomputed), counted apart from the
    products the algorithms ask for, so each algorithm spends exactly its budget."""
    model, loss, data, _ = make_mlp()
    op = HessianOperator(model, loss, data)
    assert op.n_setup_hvps == 0 and op.determinism_gap is None and op.setup_seconds > 0
    tr = trace(op)  # the documented default budget: 99 products
    assert tr.n_matvecs == 99 and op.n_hvps == 99 and op.n_setup_hvps == 1
    assert op.determinism_gap == 0.0
    before = op.n_hvps
    hutch = trace(op, "hutchinson", 99, seed=1)
    assert hutch.n_matvecs == 99 and op.n_hvps - before == 99
    before = op.n_hvps
    eig = top_eigen(op, 1)
    assert eig.n_hvps == op.n_hvps - before and op.n_setup_hvps == 1  # checked once only
    H = op.to_dense().double()
    for kind in ("hutch++", "hutchinson"):  # the same budgets on an explicit matrix
        dense = DenseOperator((H + H.T) / 2)
        assert trace(dense, kind).n_matvecs == dense.n_hvps == 99
    unchecked = HessianOperator(model, loss, data, check_determinism=False)
    top_eigen(unchecked, 1)
    assert unchecked.n_setup_hvps == 0 and unchecked.determinism_gap is None
    eager = HessianOperator(model, loss, data)
    assert eager.check_determinism() == 0.0 and eager.n_setup_hvps == 2
    eager.matvec(torch.ones(eager.dim))
    assert eager.n_setup_hvps == 2  # checked already: the first product is not recomputed


def test_batches_are_weighted_by_size():
    model, loss, (x, y), exact = make_mlp()
    H = exact().numpy()
    batches = [(x[:5], y[:5]), (x[5:30], y[5:30]), (x[30:], y[30:])]
    for cache in (False, True):
        op = HessianOperator(model, loss, batches, dtype=F64, cache_graph=cache)
        np.testing.assert_allclose(op.to_dense().numpy(), H, rtol=0, atol=1e-12)


def test_loss_sees_operator_parameters_through_model_parameters():
    """A weight-decay term written with model.parameters() adds exactly 2 c I."""
    model, loss, data, _ = make_mlp()
    c = 0.3

    def decayed(m, batch):
        return loss(m, batch) + c * sum((p**2).sum() for p in m.parameters())

    plain = HessianOperator(model, loss, data, dtype=F64).to_dense()
    both = HessianOperator(model, decayed, data, dtype=F64).to_dense()
    np.testing.assert_allclose((both - plain).numpy(), 2 * c * np.eye(plain.shape[0]), atol=1e-12)


def test_float32_operator_is_close_to_float64():
    model, loss, data, exact = make_mlp()
    top = np.linalg.eigvalsh(exact().numpy())[-1]
    op = HessianOperator(model, loss, data)
    assert op.dtype == torch.float32
    r = top_eigen(op, 1)
    assert abs(r.eigenvalues[0] - top) <= 1e-5 * abs(top)


def test_model_is_left_untouched():
    model, loss, data, _ = make_cnn()
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    stats = model.bn.running_mean.clone()
    op = HessianOperator(model, loss, data, dtype=F64)
    top_eigen(op, 2)
    assert model.training and model.bn.training  # mode restored after every product
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert torch.equal(stats, model.bn.running_mean)
    assert next(model.parameters()).dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# Eigenpairs
# ---------------------------------------------------------------------------------------------


def test_top5_eigenpairs_match_exact_spectrum(case):
    name, model, loss, data, H = case
    evals, evecs = np.linalg.eigh(H)
    op = HessianOperator(model, loss, data, dtype=F64)
    r = top_eigen(op, 5, tol=1e-10, seed=3)
    ref = evals[::-1][:5]
    np.testing.assert_allclose(r.eigenvalues, ref, rtol=1e-6)
    assert r.converged.all() and r.n_hvps <= op.dim
    # Residuals as reported equal an independent computation with the exact matrix.
    true_res = np.linalg.norm(r.vectors @ H - r.eigenvalues[:, None] * r.vectors, axis=1)
    np.testing.assert_allclose(r.residual_norms, true_res, rtol=1e-3, atol=1e-13 * ref[0])
    # Eigenvectors, up to sign, where the eigengap is clear.
    ref_vecs = evecs[:, ::-1][:, :5].T
    desc = evals[::-1]
    gaps = np.minimum(desc[0:5] - desc[1:6], np.r_[np.inf, desc[0:4] - desc[1:5]])
    clear = gaps > 1e-3 * ref[0]
    assert clear.sum() >= 3, f"{name}: test case lacks clear eigengaps"
    for i in np.flatnonzero(clear):
        dot = np.dot(r.vectors[i], ref_vecs[i])
        np.testing.assert_allclose(np.sign(dot) * r.vectors[i], ref_vecs[i], atol=1e-5)


def test_smallest_algebraic_finds_negative_curvature(case):
    name, model, loss, data, H = case
    evals = np.linalg.eigvalsh(H)
    assert evals[0] < 0, f"{name}: test case must have negative curvature"
    op = HessianOperator(model, loss, data, dtype=F64)
    r = top_eigen(op, 3, which="SA", tol=1e-10)
    np.testing.assert_allclose(r.eigenvalues, evals[:3], rtol=1e-6, atol=1e-10 * evals[-1])
    lm = top_eigen(op, 3, which="LM", tol=1e-10)
    order = np.argsort(-np.abs(evals))[:3]
    np.testing.assert_allclose(lm.eigenvalues, evals[order], rtol=1e-6)


def test_quadratic_with_known_diagonal_hessian():
    d = torch.tensor([5.0, -3.0, 2.0, 0.5, -0.1, 1.5, 0.25], dtype=F64)
    model = Quadratic(len(d))
    loss = quadratic_loss(d, torch.linspace(0, 1, len(d), dtype=F64))
    op = HessianOperator(model, loss, torch.zeros(3, 1), dtype=F64)
    la = top_eigen(op, 3)
    np.testing.assert_allclose(la.eigenvalues, [5.0, 2.0, 1.5], rtol=1e-12)
    np.testing.assert_allclose(np.abs(la.vectors), np.eye(len(d))[[0, 2, 5]], atol=1e-10)
    assert np.all(la.vectors.max(axis=1) > 0)  # sign convention: largest entry positive
    np.testing.assert_allclose(top_eigen(op, 2, which="SA").eigenvalues, [-3.0, -0.1], rtol=1e-12)
    np.testing.assert_allclose(top_eigen(op, 3, which="LM").eigenvalues, [5, -3, 2], rtol=1e-12)
    assert la.eigenvectors[0][0].shape == model.w.shape
    t = trace(op, "hutchinson", 10)  # Rademacher z: z^T D z = tr(D) exactly
    assert t.value == pytest.approx(float(d.sum()), abs=1e-12) and t.stderr < 1e-12
    # The whole spectrum: Lanczos exhausts the space and is exact.
    full = top_eigen(op, len(d))
    np.testing.assert_allclose(full.eigenvalues, np.sort(d.numpy())[::-1], atol=1e-12)


def test_lanczos_basis_is_orthonormal_and_tridiagonalizes():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((60, 60))
    A = A + A.T
    op = DenseOperator(A)
    dec = lanczos(op, 40, seed=2, store_products=True)
    Q = dec.basis.numpy()
    np.testing.assert_allclose(Q @ Q.T, np.eye(40), atol=1e-12)
    T = np.diag(dec.alphas) + np.diag(dec.betas[:-1], 1) + np.diag(dec.betas[:-1], -1)
    np.testing.assert_allclose(Q @ A @ Q.T, T, atol=1e-11)
    np.testing.assert_allclose(dec.products.numpy(), Q @ A, atol=1e-12)
    assert op.n_hvps == 40


def test_top_eigen_warns_when_not_converged_and_flags_it():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((200, 200))
    op = DenseOperator(A + A.T)
    with pytest.warns(RuntimeWarning, match="did not reach"):
        r = top_eigen(op, 3, max_hvps=5)
    assert not r.converged.all() and r.n_hvps == 5


def test_eigsh_agrees_on_linear_operator():
    model, loss, data, exact = make_mlp()
    top = np.linalg.eigvalsh(exact().numpy())[-2:]
    op = HessianOperator(model, loss, data, dtype=F64)
    vals = scipy.sparse.linalg.eigsh(op.as_linear_operator(), k=2, which="LA", tol=1e-12)[0]
    np.testing.assert_allclose(np.sort(vals), top, rtol=1e-8)


def test_power_iteration_follows_pyhessian_rule():
    rng = np.random.default_rng(2)
    U, _ = np.linalg.qr(rng.standard_normal((50, 50)))
    evals = np.concatenate([[10.0, 9.0], np.linspace(-1, 5, 48)])
    op = DenseOperator(U @ np.diag(evals) @ U.T)
    r = power_iteration(op, seed=0)
    h = r.history[0]
    assert r.n_hvps == len(h) and len(h) <= 100
    rel = np.abs(np.diff(h)) / (np.abs(h[:-1]) + 1e-6)
    if len(h) < 100:  # stopped by the rule at the first small step, reporting the previous value
        assert rel[-1] < 1e-3 and np.all(rel[:-1] >= 1e-3)
        assert r.eigenvalues[0] == h[-2]
    capped = power_iteration(op, max_iter=7, tol=0.0)
    assert capped.n_hvps == 7 and capped.eigenvalues[0] == capped.history[0][-1]
    two = power_iteration(op, k=2, tol=1e-10, max_iter=2000)  # deflation, as PyHessian's top_n
    np.testing.assert_allclose(two.eigenvalues, [10.0, 9.0], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Parameter filters and parameter-shaped vectors
# ---------------------------------------------------------------------------------------------


def test_parameter_filters_select_what_they_say():
    model, loss, data, exact = make_mlp()
    names = [n for n, _ in model.named_parameters()]
    assert select_parameters(model, "all") == names
    assert select_parameters(model, "weights") == ["0.weight", "2.weight"]
    assert select_parameters(model, lambda n: n.startswith("2.")) == ["2.weight", "2.bias"]
    assert select_parameters(model, ["2.bias", "0.weight"]) == ["0.weight", "2.bias"]
    model[0].bias.requires_grad_(False)
    assert "0.bias" not in select_parameters(model, "all")
    model[0].bias.requires_grad_(True)

    full = exact().numpy()
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    starts = dict(zip(names, np.cumsum([0] + [sizes[n] for n in names])[:-1], strict=True))
    for spec in ("weights", ["2.bias", "0.weight"]):
        op = HessianOperator(model, loss, data, params=spec, dtype=F64)
        sel = select_parameters(model, spec)
        idx = np.concatenate([np.arange(starts[n], starts[n] + sizes[n]) for n in sel])
        assert op.dim == len(idx) and op.names == tuple(sel)
        np.testing.assert_allclose(op.to_dense().numpy(), full[np.ix_(idx, idx)], atol=1e-12)
        r = top_eigen(op, 2)
        for vec, (n, p) in zip(r.eigenvectors[0], model.named_parameters(), strict=True):
            assert vec.shape == p.shape and vec.dtype == p.dtype
            if n not in sel:
                assert torch.count_nonzero(vec) == 0
        flat = op.flatten(r.eigenvectors[0]).numpy()
        np.testing.assert_allclose(flat, r.vectors[0], atol=1e-7)  # float32 round trip


def test_bad_parameter_filters_are_rejected():
    model = make_mlp()[0]
    with pytest.raises(ValueError, match="unknown parameter name"):
        select_parameters(model, ["0.weight", "nope"])
    with pytest.raises(ValueError, match="selected no parameters"):
        select_parameters(model, lambda n: False)
    with pytest.raises(ValueError, match="unknown parameter filter"):
        select_parameters(model, "biases")
    with pytest.raises(TypeError, match="params must be"):
        select_parameters(model, 3)


# ---------------------------------------------------------------------------------------------
# Trace
# ---------------------------------------------------------------------------------------------


def test_trace_on_models_matches_exact_and_the_estimators(case):
    """Exact trace; and each estimator on the autograd operator equals, vector for vector, the
    same estimator on the exact matrix (the statistics are tested on the matrix below)."""
    name, model, loss, data, H = case
    exact_tr = np.trace(H)
    op = HessianOperator(model, loss, data, dtype=F64)
    t = trace(op, "exact")
    assert t.value == pytest.approx(exact_tr, rel=1e-10) and t.stderr == 0 and t.n_matvecs == op.dim
    for method in ("hutchinson", "hutch++"):
        est = trace(op, method, 60, seed=7)
        ref = trace(DenseOperator(H), method, 60, seed=7)
        assert est.n_matvecs == 60 and est.stderr > 0
        assert est.value == pytest.approx(ref.value, rel=1e-9, abs=1e-12 * abs(exact_tr))
        assert est.stderr == pytest.approx(ref.stderr, rel=1e-6)
    # Hutch++ is exact once the sketch spans the space.
    full = trace(op, "hutch++", 3 * op.dim)
    assert full.value == pytest.approx(exact_tr, rel=1e-10) and full.stderr == 0


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_within_three_standard_errors(method):
    """Over 300 seeds the estimate falls within 3 reported SEs of the exact trace about 99% of the
    time (t distribution, 20-60 samples), and the standardized errors have unit spread."""
    H = make_cnn()[3]().numpy()
    op = DenseOperator(H)
    z = []
    for seed in range(300):
        est = trace(op, method, 60, seed=seed)
        z.append((est.value - np.trace(H)) / est.stderr)
    z = np.abs(np.array(z))
    assert np.mean(z <= 3) >= 0.97
    assert 0.85 < np.sqrt(np.mean(z**2)) < 1.25


def test_hutchinson_standard_error_is_honest():
    """The reported SE matches the estimator's known variance 2 (||A||_F^2 - sum A_ii^2) / m."""
    model, loss, data, exact = make_mlp()
    A = exact().numpy()
    m = 400
    theory = math.sqrt(2 * ((A**2).sum() - (np.diag(A) ** 2).sum()) / m)
    est = trace(DenseOperator(A), "hutchinson", m, seed=5)
    assert 0.8 * theory < est.stderr < 1.2 * theory
    pp = trace(DenseOperator(A), "hutch++", m, seed=5)
    assert pp.stderr < est.stderr  # deflating the top of the spectrum reduces the variance


# ---------------------------------------------------------------------------------------------
# Spectral density
# ---------------------------------------------------------------------------------------------


def test_spectral_density_moments_match_exact_spectrum(case):
    name, model, loss, data, H = case
    evals = np.linalg.eigvalsh(H)
    op = HessianOperator(model, loss, data, dtype=F64)
    sd = spectral_density(op, n_lanczos=30, n_runs=12, seed=4)
    assert sd.nodes.shape == sd.weights.shape == (12, 30) and sd.n_hvps == 12 * 30
    np.testing.assert_allclose(sd.weights.sum(axis=1), 1.0, atol=1e-12)
    # Ritz values interlace: they lie inside the spectrum.
    assert sd.nodes.min() >= evals[0] - 1e-9 and sd.nodes.max() <= evals[-1] + 1e-9
    # Quadrature moments are Hutchinson estimates of tr(H^p)/dim: check within 4 SE.
    for p in (1, 2):
        per_run = sd.moments(p)
        se = per_run.std(ddof=1) / math.sqrt(len(per_run))
        assert abs(per_run.mean() - np.mean(evals**p)) <= 4 * se, (name, p)
    # The smoothed density integrates to one and keeps the moments (plus sigma^2 for p = 2).
    assert np.trapezoid(sd.density, sd.grid) == pytest.approx(1.0, abs=1e-12)
    m1 = np.trapezoid(sd.grid * sd.density, sd.grid)
    m2 = np.trapezoid(sd.grid**2 * sd.density, sd.grid)
    spread = evals[-1] - evals[0]
    assert m1 == pytest.approx(sd.moment(1), abs=1e-4 * spread)
    assert m2 == pytest.approx(sd.moment(2) + sd.sigma**2, abs=1e-4 * spread**2)


def test_spectral_density_is_exact_when_lanczos_spans_the_space():
    """With dim steps, each run's quadrature reproduces every moment v^T A^p v / ||v||^2."""
    rng = np.random.default_rng(3)
    evals = np.linspace(-2, 7, 25)
    U, _ = np.linalg.qr(rng.standard_normal((25, 25)))
    op = DenseOperator(U @ np.diag(evals) @ U.T)
    sd = spectral_density(op, n_lanczos=40, n_runs=2, seed=0)
    assert sd.nodes.shape == (2, 25)
    for run in range(2):
        keep = sd.weights[run] > 1e-12
        np.testing.assert_allclose(np.sort(sd.nodes[run][keep]), evals, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_dropout_in_train_mode_is_detected():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    )
    data = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    loss = make_loss(criterion=torch.nn.CrossEntropyLoss())
    # The check runs on the operator's first product (or at once, on request).
    with pytest.raises(NondeterministicHessianError, match="train mode and has Dropout"):
        top_eigen(HessianOperator(model, loss, data, train=True), 1)
    with pytest.raises(NondeterministicHessianError, match="train mode and has Dropout"):
        HessianOperator(model, loss, data, train=True).check_determinism()
    op = HessianOperator(model, loss, data)  # eval mode: dropout is off
    op.matvec(torch.ones(op.dim))
    assert op.determinism_gap == 0.0
    accepted = HessianOperator(model, loss, data, train=True, check_determinism=False)
    top_eigen(accepted, 1)  # accepted on request


def test_random_loss_and_changing_data_are_detected():
    model, loss, (x, y), _ = make_mlp()

    def noisy(m, batch):
        return loss(m, (batch[0] + 0.1 * torch.randn_like(batch[0]), batch[1]))

    v = torch.ones(67)
    with pytest.raises(NondeterministicHessianError, match="draws random numbers"):
        HessianOperator(model, noisy, (x, y)).matvec(v)
    dataset = torch.utils.data.TensorDataset(x, y)
    torch.manual_seed(0)
    dropping = torch.utils.data.DataLoader(dataset, batch_size=10, shuffle=True, drop_last=True)
    with pytest.raises(NondeterministicHessianError, match="different data on each pass"):
        HessianOperator(model, loss, dropping, dtype=F64).matmat(torch.ones(67, 3, dtype=F64))
    shuffled = torch.utils.data.DataLoader(dataset, batch_size=10, shuffle=True)
    op = HessianOperator(model, loss, shuffled, dtype=F64)  # same data, other order: fine
    op.matvec(v)
    assert op.determinism_gap < 1e-12
    # A failed check is not forgotten: every later product checks again.
    noisy_op = HessianOperator(model, noisy, (x, y))
    for _ in range(2):
        with pytest.raises(NondeterministicHessianError):
            noisy_op.matvec(v)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_inputs_get_clear_messages():
    model, loss, data, _ = make_mlp()
    with pytest.raises(TypeError, match="torch.nn.Module"):
        HessianOperator(lambda x: x, loss, data)
    with pytest.raises(TypeError, match="make_loss"):
        HessianOperator(model, torch.nn.CrossEntropyLoss(), data)
    with pytest.raises(ValueError, match="hvp must be one of"):
        HessianOperator(model, loss, data, hvp="finite-differences")
    with pytest.raises(ValueError, match="scalar"):
        HessianOperator(model, lambda m, b: m(b[0]), data)
    with pytest.raises(ValueError, match="does not depend on the selected parameters"):
        HessianOperator(model, lambda m, b: loss(m, b).detach(), data)
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, loss, [])
    op = HessianOperator(model, loss, data, dtype=F64)
    with pytest.raises(ValueError, match=r"shape \(67,\)"):
        op.matvec(torch.zeros(5))
    with pytest.raises(TypeError, match="torch tensor"):
        op.matvec(np.zeros(op.dim))
    with pytest.raises(ValueError, match="k must be"):
        top_eigen(op, 0)
    with pytest.raises(ValueError, match="k must be"):
        top_eigen(op, op.dim + 1)
    with pytest.raises(ValueError, match="which must be"):
        top_eigen(op, 1, which="BE")
    with pytest.raises(ValueError, match="method must be"):
        trace(op, "diagonal")
    with pytest.raises(ValueError, match="n_matvecs >= dim"):
        trace(op, "exact", 10)
    with pytest.raises(ValueError, match="n_matvecs >= 2"):
        trace(op, "hutchinson", 1)
    with pytest.raises(ValueError, match="n_lanczos"):
        spectral_density(op, n_lanczos=1)
    with pytest.raises(ValueError, match="sigma"):
        spectral_density(op, sigma=-1.0)
    with pytest.raises(TypeError, match="seed"):
        top_eigen(op, 1, seed=0.5)
    with pytest.raises(ValueError, match="not symmetric"):
        DenseOperator(np.arange(4.0).reshape(2, 2))


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def test_density_figures(tmp_path):
    from saddles.hessian_plots import plot_density, plot_density_histogram

    rng = np.random.default_rng(4)
    U, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    op = DenseOperator(U @ np.diag(np.r_[np.linspace(-0.1, 0.2, 37), 3.0, 5.0, 9.0]) @ U.T)
    sd = spectral_density(op, 40, 2, seed=1)
    fig = plot_density(sd, path=tmp_path / "d.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and (tmp_path / "d.png").stat().st_size > 5000
    np.testing.assert_allclose(ax.lines[0].get_ydata(), sd.density + 1e-7)
    fig = plot_density_histogram(sd, bins=30, log=False, path=tmp_path / "h.png")
    bars = fig.axes[0].patches
    mass = sum(b.get_height() * b.get_width() for b in bars)
    assert mass == pytest.approx(1.0, rel=1e-9) and (tmp_path / "h.png").exists()
    with pytest.raises(ValueError, match="bins"):
        plot_density_histogram(sd, bins=0)


# ---------------------------------------------------------------------------------------------
# The package's layout: each module's examples run, and no module imports what it must not
# ---------------------------------------------------------------------------------------------

HESSIAN_MODULES = ("operator", "random_vectors", "hvp", "krylov", "power", "hutchpp", "slq")


@pytest.mark.parametrize("name", [m for m in HESSIAN_MODULES if m not in ("random_vectors", "hvp")])
def test_module_examples_hold(name):
    """The doctest in each algorithm's docstring: the exact answer on a small DenseOperator."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"saddles.hessian.{name}"))
    assert result.attempted > 0 and result.failed == 0


def test_modules_import_only_what_they_may():
    """The algorithms depend on the operator, never the other way round, and no algorithm
    depends on the Hessian operator: imports anywhere in a module (inside functions and under
    TYPE_CHECKING too). The operators carry no analysis methods; those are free functions."""
    import ast
    import importlib

    allowed = {
        "operator": set(),
        "random_vectors": set(),
        "hvp": {"operator", "random_vectors"},
        "krylov": {"operator", "random_vectors"},
        "power": {"operator", "random_vectors"},
        "hutchpp": {"operator", "random_vectors"},
        "slq": {"operator", "random_vectors", "krylov"},
    }
    for name in HESSIAN_MODULES:
        path = importlib.import_module(f"saddles.hessian.{name}").__file__
        tree = ast.parse(open(path, encoding="utf-8").read())
        imported = {
            node.module.split(".")[2]
            for node in ast.walk(tree)  # anywhere, not only at the top level
            if isinstance(node, ast.ImportFrom)
            and node.module is not None
            and node.module.startswith("saddles.hessian.")
        }
        assert imported <= allowed[name], (name, imported - allowed[name])
    from saddles.hessian import DenseOperator, HessianOperator, SymmetricOperator

    for cls in (SymmetricOperator, DenseOperator, HessianOperator):
        for analysis in ("top_eigen", "trace", "spectral_density", "power_iteration", "lanczos"):
            assert not hasattr(cls, analysis), (cls.__name__, analysis)
