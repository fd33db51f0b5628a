"""saddles.hessian.power: PyHessian's power iteration, reproduced."""

from __future__ import annotations

import numpy as np

from saddles.hessian import DenseOperator, power_iteration


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
