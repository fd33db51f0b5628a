"""Figures of a Hessian eigenvalue density (from :func:`saddles.hessian.spectral_density`).

Two views of the same stochastic Lanczos quadrature result:

- :func:`plot_density`: the Gaussian-smoothed density against the eigenvalue, on a log scale by
  default, as in PyHessian's figure (Yao et al. 2020, Fig. 1; Ghorbani et al. 2019): the bulk near
  zero and the few outliers are both visible.
- :func:`plot_density_histogram`: the raw quadrature (Ritz nodes weighted by their weights,
  averaged over runs) binned into a histogram, which needs no smoothing width.

Both take anything with ``grid``, ``density``, ``nodes`` and ``weights`` arrays, return the
matplotlib ``Figure`` and write a PNG when given a path. They use matplotlib's object API with
the Agg canvas, never pyplot, so no global state or display is touched. No torch here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from saddles.hessian import SpectralDensity

__all__ = ["plot_density", "plot_density_histogram"]


def _figure(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: str | Path | None) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)


def plot_density(
    density: SpectralDensity,
    *,
    log: bool = True,
    floor: float = 1e-7,
    path: str | Path | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The smoothed eigenvalue density; ``log`` plots ``density + floor`` on a log axis (the floor
    is PyHessian's, so empty stretches of the spectrum show instead of vanishing)."""
    grid, values = np.asarray(density.grid), np.asarray(density.density)
    if grid.shape != values.shape or grid.ndim != 1:
        raise ValueError("density.grid and density.density must be 1-D arrays of one length")
    fig, ax = _figure(ax)
    if log:
        ax.semilogy(grid, values + floor, lw=1.2)
    else:
        ax.plot(grid, values, lw=1.2)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log)" if log else "density")
    ax.set_title(title or f"Hessian eigenvalue density (SLQ, sigma = {density.sigma:.3g})")
    ax.grid(alpha=0.3)
    _save(fig, path)
    return fig


def plot_density_histogram(
    density: SpectralDensity,
    *,
    bins: int = 60,
    log: bool = True,
    path: str | Path | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Histogram of the quadrature: Ritz nodes weighted by their weights, averaged over runs and
    divided by bin width (so the bars integrate to 1)."""
    nodes, weights = np.asarray(density.nodes), np.asarray(density.weights)
    if nodes.shape != weights.shape or nodes.ndim != 2:
        raise ValueError("density.nodes and density.weights must be (n_runs, m) arrays")
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    heights, edges = np.histogram(
        nodes.ravel(), bins=bins, weights=weights.ravel() / nodes.shape[0], density=False
    )
    heights = heights / np.diff(edges)
    fig, ax = _figure(ax)
    ax.bar(edges[:-1], heights, width=np.diff(edges), align="edge", edgecolor="none", log=log)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log)" if log else "density")
    ax.set_title(title or f"Hessian eigenvalue histogram ({nodes.shape[0]} SLQ run(s))")
    _save(fig, path)
    return fig


def plot_eigenvalues(
    eigenvalues,
    residuals=None,
    *,
    path: str | Path | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The computed eigenvalues by index, with their residual norms as error bars (Lanczos'
    bound on how far each Ritz value can be from an eigenvalue); a log axis when they are all
    positive and span decades."""
    values = np.asarray(eigenvalues, dtype=float)
    fig, ax = _figure(ax)
    err = None if residuals is None else np.abs(np.asarray(residuals, dtype=float))
    ax.errorbar(np.arange(1, len(values) + 1), values, yerr=err, marker="o", ls="none",
                capsize=3)  # fmt: skip
    if len(values) and values.min() > 0 and values.max() / values.min() > 1e3:
        ax.set_yscale("log")
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue")
    ax.set_title(title or f"top {len(values)} Hessian eigenvalues (error bar: residual)")
    ax.grid(alpha=0.3)
    _save(fig, path)
    return fig
