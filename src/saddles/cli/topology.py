"""`saddles topology`: merge tree, persistence and metrics of a field saved as .npy/.npz.

Needs no model, so it never imports torch; matplotlib loads on demand.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from saddles.cli import app, friendly_errors
from saddles.cli._loading import check_out_dir
from saddles.cli._options import Connectivity, NanPolicy, Representation


@app.command()
@friendly_errors
def topology(
    field_path: Path = typer.Argument(
        ...,
        metavar="FIELD",
        help="A .npy array (1 to 10 dimensions), or a .npz with one array "
        "or a 'loss' array (as saved by `saddles landscape`).",
    ),
    connectivity: Connectivity = typer.Option(
        Connectivity("full"),
        help="Grid neighbours: full (8 in 2D), faces (4 in 2D), or "
        "freudenthal (6 in 2D, TTK's triangulation of an image).",
    ),
    representation: Representation | None = typer.Option(
        None,
        help="The graph over the samples (as `saddles run` names them); default: grid-full, "
        "grid-faces or grid-ttk by --connectivity for a grid, knn for scattered points.",
    ),
    k: int | None = typer.Option(
        None, "--k", min=1, help="Neighbours per point for knn graphs (default 4 x dimension)."
    ),
    threshold: float | None = typer.Option(
        None, help="Also report metrics after removing pairs with persistence below this."
    ),
    relative: bool = typer.Option(
        False, help="Read --threshold as a fraction of the field's value range."
    ),
    nan_policy: NanPolicy = typer.Option(
        NanPolicy("raise"), help="NaN/inf values: 'raise' an error, or treat them as 'max'."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    plot: Path | None = typer.Option(None, help="Write figures (PNG) into this directory."),
    pairs: bool = typer.Option(
        False, "--pairs", help="Also list the persistence pairs (values, vertices, coordinates)."
    ),
    vs: Path | None = typer.Option(
        None,
        "--vs",
        metavar="OTHER",
        help="Another field: bottleneck and Wasserstein distances "
        "between the two diagrams (unsimplified), raw and range-normalized.",
    ),
) -> None:
    """Merge tree and 0-dimensional persistence of FIELD's sublevel sets, with metrics."""
    from saddles.topology import compute_metrics
    from saddles.topology.representations import (
        GRID_REPRESENTATIONS,
        representation_k,
        representation_name,
        representation_tree,
    )

    if threshold is not None and not threshold >= 0:
        raise typer.BadParameter(f"must be a non-negative number, not {threshold}",
                                 param_hint="--threshold")  # fmt: skip
    if plot is not None:
        check_out_dir(plot, "--plot")
    field, points = _load_field(field_path)
    if representation is not None:
        name = representation.value
    elif points is None:
        name = representation_name(connectivity.value, grid=True)
    else:  # a landscape sampled at scattered points: join them by nearest neighbours
        name = "knn"
    try:
        shape = field.shape if points is None else None
        tree = representation_tree(name, field, coords=points, shape=shape, k=k,
                                   nan_policy=nan_policy.value)  # fmt: skip
        metrics = compute_metrics(tree, threshold=threshold, relative=relative)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="FIELD") from exc
    if name in GRID_REPRESENTATIONS:
        graph = GRID_REPRESENTATIONS[name]
    elif name.startswith("knn"):
        used = representation_k(name, points.shape[1], k)
        graph = f"{name} (k = {used}, scattered points in {points.shape[1]}D)"
    else:
        graph = f"{name} (scattered points in {points.shape[1]}D)"
    metrics = {"field": str(field_path), "shape": list(field.shape), "representation": name,
               "connectivity": graph, **metrics}  # fmt: skip
    coords = points if points is not None else _grid_coords(field_path, field)
    if vs is not None:
        metrics["vs"] = _distances(tree, vs, representation, connectivity, k, nan_policy)
    table = _pairs(tree, coords, field.shape) if pairs else None
    figures = _plots(field, tree, plot, threshold, relative, field_path, coords) if plot else []
    if as_json:
        metrics["figures"] = [str(f) for f in figures]
        if table is not None:
            metrics["pairs"] = table
        clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items()}
        typer.echo(json.dumps(clean, indent=2))
        return
    _print_table({k: v for k, v in metrics.items() if k != "vs"})
    if vs is not None:
        _print_table({"field": f"{field_path} vs {vs}", **metrics["vs"]}, "distances")
    if table is not None:
        _print_pairs(table)
    for f in figures:
        typer.echo(f"figure: {f}")


def _grid_coords(path: Path, field):
    """The grid's coordinates, ``(n, ndim)`` in C order, when the file stores them (a landscape
    ``.npz``); else None (grid indices)."""
    import numpy as np

    if path.suffix != ".npz":
        return None
    with np.load(path, allow_pickle=False) as data:
        coords = data["coords"] if "coords" in data.files else None
    if coords is None or coords.ndim != 2 or coords.shape != (field.size, field.ndim):
        return None
    return coords.astype(np.float64)


def _distances(tree, other: Path, representation, connectivity, k, nan_policy) -> dict:
    """Distances between ``tree``'s diagram and that of OTHER, built the same way."""
    from saddles.topology import diagram_distances
    from saddles.topology.representations import representation_name, representation_tree

    field, points = _load_field(other)
    if representation is not None:
        name = representation.value
    elif points is None:
        name = representation_name(connectivity.value, grid=True)
    else:
        name = "knn"
    try:
        shape = field.shape if points is None else None
        tree_b = representation_tree(name, field, coords=points, shape=shape, k=k,
                                     nan_policy=nan_policy.value)  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--vs") from exc
    return {"field": str(other), "representation": name, **diagram_distances(tree, tree_b)}


def _pairs(tree, coords, shape) -> list[dict]:
    """The persistence pairs as JSON-ready rows (see ``saddles.topology.persistence_pairs``)."""
    from saddles.topology import persistence_pairs

    table = persistence_pairs(tree, coords=coords, shape=None if coords is not None else shape)
    rows = []
    for i in range(len(table["pair_id"])):
        row = {key: value[i].tolist() for key, value in table.items()}
        rows.append(row)
    return rows


PAIR_ENDS = ("birth_coords", "death_coords")


def _print_pairs(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} persistence pairs (essential ones end at the maximum)")
    for column in ("pair", "birth", "death", "persistence", "essential", "birth at", "death at"):
        table.add_column(column, justify="right")
    for r in rows:
        where = [", ".join(f"{c:.4g}" for c in r.get(key, [])) for key in PAIR_ENDS]
        values = [f"{r[key]:.6g}" for key in ("birth", "death", "persistence")]
        table.add_row(str(r["pair_id"]), *values, "yes" if r["essential"] else "", *where)
    Console().print(table)


def _load_field(path: Path):
    import numpy as np

    if not path.exists():
        raise typer.BadParameter(f"no such file: {path}", param_hint="FIELD")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a file that is not an array
        raise typer.BadParameter(f"{path} is not a .npy/.npz array file ({exc})") from exc
    points = None
    if isinstance(data, np.lib.npyio.NpzFile):
        keys = list(data.keys())
        key = "loss" if "loss" in keys else keys[0] if len(keys) == 1 else None
        if key is None:
            raise typer.BadParameter(
                f"{path} holds arrays {keys}; expected one array or one named 'loss'"
            )
        coords = data["coords"] if "coords" in keys else None
        if key == "loss" and "measured" in keys and "cells" in keys:
            # an adaptive landscape (saddles.landscape.adaptive): the filled field
            from saddles.landscape.adaptive import fill

            loss, measured, cells = data["loss"], data["measured"], data["cells"]
            data = fill(np.where(measured, loss, np.nan), loss.shape, cells).reshape(loss.shape)
        else:
            data = data[key]
        if coords is not None and data.ndim == 1 and coords.ndim == 2 and coords.shape[1] > 1:
            if coords.shape[0] != data.shape[0]:
                raise typer.BadParameter(
                    f"{path}: {data.shape[0]} loss values but {coords.shape[0]} coordinates"
                )
            points = coords
    if data.ndim < 1 or data.ndim > 10:
        raise typer.BadParameter(f"the field must have 1 to 10 dimensions, not {data.ndim}")
    return data, points


def _plots(field, tree, out_dir: Path, threshold, relative, source: Path, coords) -> list[Path]:
    """Figures named after the input (``<stem>-persistence.png``, ...), so that two inputs
    share a folder; a 2-D field drawn over its stored coordinates when the file has them."""
    from saddles.report import plots
    from saddles.topology import simplify

    stem = source.stem
    shown = simplify(tree, threshold, relative) if threshold is not None else tree
    figure = _readable_ticks(plots.persistence_diagram_figure(tree))
    files = [plots.save(figure, out_dir / f"{stem}-persistence.png")]
    if len(shown.nodes) > 5000:
        typer.echo(
            f"the merge tree has {len(shown.nodes)} nodes; drawing its simplification that "
            "keeps the 1% most persistent part of the value range (use --threshold to choose)"
        )
        shown = simplify(tree, 0.01, relative=True)
    figure = _readable_ticks(plots.merge_tree_figure(shown))
    files.append(plots.save(figure, out_dir / f"{stem}-merge-tree.png"))
    if field.ndim == 2:
        if coords is not None:  # field[i, j] at (direction 1 = axis0[i], direction 2 = axis1[j])
            grid = coords.reshape(*field.shape, 2)
            extent = (grid[0, 0, 0], grid[-1, 0, 0], grid[0, 0, 1], grid[0, -1, 1])
            figure = plots.field_figure(field, shown, tuple(map(float, extent)), indexing="ij")
        else:  # a bare array: an image, x = column index, y = row index
            figure = plots.field_figure(field, shown)
            figure.axes[0].set(xlabel="column index", ylabel="row index")
        figure = _readable_ticks(figure)
        files.append(plots.save(figure, out_dir / f"{stem}-field.png"))
    return files


def _readable_ticks(fig):
    """Tick labels with at most 4 significant digits and no offset text (1.235e+06, not
    an axis of 1.2345672 with a 1e6 in the corner)."""
    from matplotlib.ticker import FuncFormatter

    short = FuncFormatter(lambda v, _: f"{v:.4g}")
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(short)
    return fig


def _print_table(metrics: dict, what: str = "topology") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{what} of {metrics['field']}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if key == "field":
            continue
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        if isinstance(value, list) and len(value) > 8:  # e.g. basin_sizes: --json has them all
            text = f"{str(value[:8])[:-1]}, ... ({len(value)} in all)]"
        table.add_row(key, text)
    Console().print(table)
