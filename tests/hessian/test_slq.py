"""saddles.hessian.slq: the eigenvalue density by stochastic Lanczos quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hessian_cases import F64, make_mlp

from saddles.hessian import DenseOperator, HessianOperator, spectral_density


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


def test_bad_density_arguments_get_clear_messages():
    """spectral_density names the argument it refuses."""
    model, loss, data, _ = make_mlp()
    op = HessianOperator(model, loss, data, dtype=F64)
    with pytest.raises(ValueError, match="n_lanczos"):
        spectral_density(op, n_lanczos=1)
    with pytest.raises(ValueError, match="sigma"):
        spectral_density(op, sigma=-1.0)
