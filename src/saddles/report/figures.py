"""The figures of one analysis: contour, surface, merge tree, persistence diagram, density.

Labels say which critical points are marked (all, or those left after simplification at the
configured share of the value range). Built with :mod:`saddles.report.plots`; never imports torch.
"""

from __future__ import annotations

from pathlib import Path


def write_figures(analysis, fig_dir: str | Path) -> dict[str, Path]:
    """PNG figures of one analysis; returns ``{label: path}`` in reading order.

    For each direction kind: the loss contour and 3D surface with the (simplified) merge tree's
    minima and saddles, the merge tree, and the persistence diagram of the first
    representation; then the Hessian density.
    """
    from saddles.report import plots
    from saddles.topology import simplify

    fig_dir = Path(fig_dir)
    out: dict[str, Path] = {}
    cfg = analysis.config
    rep = cfg.representations[0]
    span = cfg.span
    for kind, landscape in analysis.landscapes.items():
        tree = analysis.trees[kind][rep]
        shown = simplify(tree, cfg.threshold, relative=True) if cfg.threshold else tree
        label = f"{kind} directions"
        marks = (
            f"critical points after simplification at {cfg.threshold:g} of the range"
            if (cfg.threshold)
            else "all critical points"
        )
        legend = f"simplified at {cfg.threshold:g} of the range" if cfg.threshold else "raw"
        if cfg.sweeps:  # a span sweep shows its middle span's landscape
            span = float(max(abs(landscape.coords.min()), abs(landscape.coords.max())))
        if landscape.shape is not None and len(landscape.shape) == 2:
            # field[i, j] at (direction 1 = i, direction 2 = j); adaptive: the filled field
            field = landscape.filled().reshape(landscape.shape)
            extent = (-span, span, -span, span)
            out[f"{label}: contour ({marks})"] = plots.save(
                plots.field_figure(
                    field, shown, extent, f"{analysis.name}, {label}", indexing="ij", marks=legend
                ),  # fmt: skip
                fig_dir / f"{kind}-contour.png",
            )
            out[f"{label}: surface ({marks})"] = plots.save(
                plots.surface_figure(
                    field, shown, extent, f"{analysis.name}, {label}", indexing="ij", marks=legend
                ),  # fmt: skip
                fig_dir / f"{kind}-surface.png",
            )
        out[f"{label}: merge tree ({rep}, {marks})"] = plots.save(
            plots.merge_tree_figure(shown, title=f"merge tree, {label}, {rep}", marks=legend),
            fig_dir / f"{kind}-merge-tree.png",
        )
        out[f"{label}: persistence diagram ({rep})"] = plots.save(
            plots.persistence_diagram_figure(tree, title=f"persistence, {label}, {rep}"),
            fig_dir / f"{kind}-persistence.png",
        )
        if landscape.tokens is not None:
            out[f"{label}: tokens per point (eval_tokens auto)"] = plots.save(
                plots.tokens_figure(landscape.coords, landscape.tokens, landscape.loss_stderr,
                                    f"{analysis.name}, {label}: tokens per point"),
                fig_dir / f"{kind}-tokens.png",
            )  # fmt: skip
    if analysis.density is not None:
        from saddles.report.hessian_plots import plot_density

        fig = plot_density(analysis.density, title=f"{analysis.name}: Hessian eigenvalue density")
        out["Hessian eigenvalue density"] = plots.save(fig, fig_dir / "hessian-density.png")
    return out


def landscape_figures(
    landscape, fig_dir: str | Path, stem: str = "landscape", threshold: float | None = 0.01
) -> dict[str, Path]:
    """PNG figures of one landscape: a curve for a 1-D grid; contour and surface for a 2-D
    grid (a log colour scale when the values span decades); the minima and saddles of the
    8-connected merge tree, simplified at ``threshold`` of the value range, marked on them;
    with ``eval_tokens="auto"``, the tokens each point used (any landscape).
    Axes carry the stored coordinates. Scattered and 3-D+ landscapes get no picture here
    (``saddles export`` writes them for ParaView). Returns ``{label: path}``."""
    import numpy as np

    from saddles.report import plots
    from saddles.topology import simplify

    fig_dir = Path(fig_dir)
    out: dict[str, Path] = {}
    if landscape.tokens is not None:  # eval_tokens auto: where the tokens went
        fig = plots.tokens_figure(landscape.coords, landscape.tokens, landscape.loss_stderr, stem)
        out[f"{stem}: tokens per point"] = plots.save(fig, fig_dir / f"{stem}-tokens.png")
    if landscape.shape is None or len(landscape.shape) > 2:
        return out
    tree, _ = landscape.topology("full")
    shown = simplify(tree, threshold, relative=True) if threshold else tree
    marks = f"simplified at {threshold:g} of the range" if threshold else "raw"
    if len(landscape.shape) == 1:
        xs = landscape.coords[:, 0]
        fig = plots.curve_figure(xs, landscape.filled(), shown, title=stem, marks=marks)
        out[f"{stem}: curve ({marks})"] = plots.save(fig, fig_dir / f"{stem}-curve.png")
        return out
    field = landscape.filled().reshape(landscape.shape)  # adaptive: the filled field
    axis0, axis1 = (np.unique(landscape.coords[:, i]) for i in (0, 1))
    extent = (axis0[0], axis0[-1], axis1[0], axis1[-1])
    log = plots.spans_decades(field)
    fig = plots.field_figure(field, shown, extent, stem, log=log, indexing="ij", marks=marks)
    out[f"{stem}: contour ({marks})"] = plots.save(fig, fig_dir / f"{stem}-contour.png")
    fig = plots.surface_figure(field, shown, extent, stem, indexing="ij", marks=marks)
    out[f"{stem}: surface ({marks})"] = plots.save(fig, fig_dir / f"{stem}-surface.png")
    return out
