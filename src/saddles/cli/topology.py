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
    figures = _plots(field, tree, plot, threshold, relative) if plot else []
    if as_json:
        metrics["figures"] = [str(f) for f in figures]
        clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items()}
        typer.echo(json.dumps(clean, indent=2))
        return
    _print_table(metrics)
    for f in figures:
        typer.echo(f"figure: {f}")


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


def _plots(field, tree, out_dir: Path, threshold, relative) -> list[Path]:
    from saddles import plots
    from saddles.topology import simplify

    shown = simplify(tree, threshold, relative) if threshold is not None else tree
    files = [plots.save(plots.persistence_diagram_figure(tree), out_dir / "persistence.png")]
    if len(shown.nodes) > 5000:
        typer.echo(
            f"the merge tree has {len(shown.nodes)} nodes; drawing its simplification that "
            "keeps the 1% most persistent part of the value range (use --threshold to choose)"
        )
        shown = simplify(tree, 0.01, relative=True)
    files.append(plots.save(plots.merge_tree_figure(shown), out_dir / "merge_tree.png"))
    if field.ndim == 2:
        files.append(plots.save(plots.field_figure(field, shown), out_dir / "field.png"))
    return files


def _print_table(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"topology of {metrics['field']}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if key == "field":
            continue
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        table.add_row(key, text)
    Console().print(table)
