"""saddles.report.hessian_plots: the figures of a density."""

from __future__ import annotations

import numpy as np
import pytest

from saddles.hessian import DenseOperator, spectral_density


def test_density_figures(tmp_path):
    from saddles.report.hessian_plots import plot_density, plot_density_histogram

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
