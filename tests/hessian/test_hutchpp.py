"""saddles.hessian.hutchpp: the trace, exact and estimated, with honest standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hessian_cases import F64, make_cnn, make_mlp

from saddles.hessian import DenseOperator, HessianOperator, trace


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


def test_bad_trace_arguments_get_clear_messages():
    """trace names the argument it refuses."""
    model, loss, data, _ = make_mlp()
    op = HessianOperator(model, loss, data, dtype=F64)
    with pytest.raises(ValueError, match="method must be"):
        trace(op, "diagonal")
    with pytest.raises(ValueError, match="n_matvecs >= dim"):
        trace(op, "exact", 10)
    with pytest.raises(ValueError, match="n_matvecs >= 2"):
        trace(op, "hutchinson", 1)
