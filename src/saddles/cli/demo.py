"""`saddles demo`: the topology core on a built-in analytic landscape with several basins.

A stand-in until the PINN experiment exists: it shows what a run prints and draws, in seconds.
"""

from __future__ import annotations

from pathlib import Path

import typer

from saddles.cli import app


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), help="Directory for the figures."),
    size: int = typer.Option(201, help="Grid points per axis."),
    seed: int = typer.Option(0, help="Seed of the basins' positions and depths."),
) -> None:
    """Analyse a synthetic landscape (Gaussian basins in a bowl, with a little noise)."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from saddles import plots
    from saddles.analytic import gaussian_basins
    from saddles.topology import compute_metrics, knn_edges, merge_tree, merge_tree_grid, simplify

    console = Console()
    field, centres = gaussian_basins((size, size), n_basins=6, seed=seed, noise=1e-3)
    console.print(f"landscape: {size}x{size} grid on [-1, 1]^2, {len(centres)} Gaussian basins "
                  "plus noise of amplitude 1e-3")  # fmt: skip
    threshold = 0.01  # relative to the value range: removes the noise's minima
    rows = {}
    trees = {}
    for conn in ("full", "faces", "freudenthal"):
        trees[conn] = merge_tree_grid(field, conn)
        rows[f"grid, {conn}"] = compute_metrics(trees[conn], threshold, relative=True)
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(size * size // 4, 2))
    idx = np.clip(np.round((pts + 1) / 2 * (size - 1)).astype(int), 0, size - 1)
    vals = field[idx[:, 1], idx[:, 0]]
    rows["scattered, knn k=8"] = compute_metrics(
        merge_tree(vals, knn_edges(pts, k=8)), threshold, relative=True
    )
    table = Table(title='metrics ("_simplified": pairs below 1% of the value range removed)')
    keys = ["n_minima", "n_saddles", "n_merge_events", "average_persistence",
            "average_finite_persistence", "max_finite_persistence", "persistence_entropy",
            "n_minima_simplified", "n_saddles_simplified",
            "average_persistence_simplified"]  # fmt: skip
    table.add_column("metric")
    for name in rows:
        table.add_column(name, justify="right")
    for k in keys:
        table.add_row(k, *(_fmt(m[k]) for m in rows.values()))
    console.print(table)
    simple = simplify(trees["full"], threshold, relative=True)
    extent = (-1, 1, -1, 1)
    figs = [
        plots.save(plots.field_figure(field, simple, extent=extent), out / "landscape.png"),
        plots.save(plots.merge_tree_figure(simple), out / "merge_tree.png"),
        plots.save(plots.persistence_diagram_figure(trees["full"]), out / "persistence.png"),
    ]
    for f in figs:
        console.print(f"figure: {f}")


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
