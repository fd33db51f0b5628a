"""saddles.hessian.krylov: Lanczos and the extreme eigenpairs, against numpy.linalg.eigh."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hessian_cases import F64, Quadratic, make_mlp, quadratic_loss

from saddles.hessian import DenseOperator, HessianOperator, lanczos, top_eigen, trace


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


def test_bad_eigen_arguments_get_clear_messages():
    """top_eigen names the argument it refuses."""
    model, loss, data, _ = make_mlp()
    op = HessianOperator(model, loss, data, dtype=F64)
    with pytest.raises(ValueError, match="k must be"):
        top_eigen(op, 0)
    with pytest.raises(ValueError, match="k must be"):
        top_eigen(op, op.dim + 1)
    with pytest.raises(ValueError, match="which must be"):
        top_eigen(op, 1, which="BE")
    with pytest.raises(TypeError, match="seed"):
        top_eigen(op, 1, seed=0.5)


class NoisyOperator(DenseOperator):
    """A dense matrix whose products carry a relative rounding error of ``level`` that changes
    from call to call, as a float32 HVP of a large network does (deterministic: seeded)."""

    def __init__(self, A, level: float):
        super().__init__(A)
        self.level, self.gen = level, torch.Generator().manual_seed(7)

    def _apply(self, V):
        HV = super()._apply(V)
        noise = torch.randn(HV.shape, generator=self.gen, dtype=HV.dtype)
        return HV + self.level * HV.norm(dim=0, keepdim=True) * noise / noise.norm(dim=0)


def test_residuals_at_the_products_own_noise_count_as_converged():
    """Lanczos reaches tol in its own arithmetic, but the products are noisier than tol: the
    true residuals stop at the noise, which is measured (by linearity) and accepted."""
    rng = np.random.default_rng(0)
    d = np.concatenate([[9.0, 8.0, 7.0], rng.uniform(-1, 1, 197)])
    Q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    A = Q @ np.diag(d) @ Q.T
    clean = top_eigen(DenseOperator(A), 3, tol=1e-7)
    assert clean.converged.all() and clean.hvp_noise is None
    noisy = NoisyOperator(A, 1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "did not reach tol" warning
        r = top_eigen(noisy, 3, tol=1e-7)
    assert r.converged.all()
    assert r.hvp_noise is not None and 1e-5 < r.hvp_noise < 1e-3  # ~ sqrt(3) * 1e-5 * 9
    assert np.all(r.residual_norms > 1e-7 * np.abs(r.eigenvalues))  # tol itself was missed
    np.testing.assert_allclose(r.eigenvalues, [9, 8, 7], atol=1e-4)  # error <= residual
    # A run cut short is not excused by the noise: the recurrence itself did not converge.
    with pytest.warns(RuntimeWarning, match="did not reach tol"):
        short = top_eigen(NoisyOperator(A, 1e-5), 3, tol=1e-7, max_hvps=4)
    assert not short.converged.all()


def test_wide_float32_dot_products_accumulate_in_float64():
    """Above WIDE entries the products that enter T sum float32 blocks in float64: within a few
    float32 roundings of the exact value, where one float32 gemv over millions of entries is
    off by orders of magnitude more."""
    from saddles.hessian.krylov import WIDE, _coefficients, _dot

    g = torch.Generator().manual_seed(0)
    a = torch.rand(4 * WIDE, generator=g) + 0.5  # positive: the error of a plain sum shows
    b = torch.rand(4 * WIDE, generator=g) + 0.5
    exact = float(a.double() @ b.double())
    eps = torch.finfo(torch.float32).eps
    assert abs(_dot(a, b) - exact) <= 4 * eps * exact
    rows = torch.stack([a, b, a - b])
    exact_rows = (rows.double() @ b.double()).numpy()
    scale = (rows.abs().double() @ b.abs().double()).numpy()
    blocked = np.abs(_coefficients(rows, b) - exact_rows) / scale
    plain = np.abs((rows @ b).double().numpy() - exact_rows) / scale
    assert blocked.max() <= 4 * eps and plain.max() > 100 * blocked.max()
    assert abs(torch.dot(a[:1000], b[:1000]).item() - _dot(a[:1000], b[:1000])) == 0.0  # short
