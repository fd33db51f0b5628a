"""`saddles export`: a landscape (or a field) and its critical points as VTK files.

SOURCE is a landscape ``.npz`` with its ``.json`` sidecar (``Landscape.save``), a landscape
run directory (``landscape.npz`` inside), a pipeline run directory (``landscape-<kind>/``
inside, each exported), or a field ``.npy``/``.npz`` as ``saddles topology`` reads it. What
is written is :mod:`saddles.report.export`'s job. Never imports torch: landscape files are read with
numpy and json.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from saddles.cli import app, friendly_errors
from saddles.cli.topology import Representation

#: The sidecar's format name (``saddles.landscape.result.LANDSCAPE_FORMAT``, not imported:
#: the landscape package imports torch).
LANDSCAPE_FORMAT = "saddles.landscape"


@app.command()
@friendly_errors
def export(
    source: Path = typer.Argument(..., help="Landscape .npz, run directory, or field .npy/.npz."),
    out: Path = typer.Argument(..., help="Directory for the .vti/.vtu, .vtp and .csv files."),
    representation: Representation | None = typer.Option(
        None,
        help="Graph of the merge tree (and of a scattered .vtu); default grid-full on a "
        "grid, knn on scattered points.",
    ),
    k: int | None = typer.Option(
        None, "--k", min=1, help="Neighbours per point for knn graphs (default 4 x dimension)."
    ),
    threshold: float | None = typer.Option(
        None, help="Only the critical points of pairs at least this persistent."
    ),
    relative: bool = typer.Option(False, help="Read --threshold as a fraction of the value range."),
) -> None:
    """Write SOURCE as VTK XML files (ParaView, TTK) with its critical points."""
    from saddles.report.export import export_arrays

    try:
        import vtkmodules  # noqa: F401
    except ImportError as exc:
        typer.echo("error: saddles export writes with the vtk package: pip install "
                   "'saddles[export]' (or pip install vtk)", err=True)  # fmt: skip
        raise typer.Exit(1) from exc
    if threshold is not None and not threshold >= 0:
        raise typer.BadParameter(f"must be a non-negative number, not {threshold}",
                                 param_hint="--threshold")  # fmt: skip
    options = dict(representation=representation.value if representation else None, k=k,
                   threshold=threshold, relative=relative)  # fmt: skip
    for name, arrays in sources(source):
        for path in export_arrays(out, name, **arrays, **options):
            typer.echo(str(path))


def sources(source: Path) -> list[tuple[str, dict]]:
    """``(name, arrays for export_arrays)`` for each landscape SOURCE names."""
    if not source.exists():
        raise typer.BadParameter(f"no such file or directory: {source}", param_hint="SOURCE")
    if source.is_dir():
        if (source / "landscape.npz").exists():
            return [("landscape", read_landscape(source / "landscape.npz"))]
        found = sorted(source.glob("landscape-*/landscape.npz"))
        if not found:
            raise typer.BadParameter(
                f"{source} holds no landscape.npz and no landscape-<kind>/landscape.npz",
                param_hint="SOURCE",
            )
        return [(f.parent.name, read_landscape(f)) for f in found]
    if source.suffix == ".json":
        source = source.with_suffix(".npz")
    if source.suffix == ".npz" and source.with_suffix(".json").exists():
        return [(source.stem, read_landscape(source))]
    from saddles.cli.topology import _load_field

    field, points = _load_field(source)
    if points is None:
        return [(source.stem, {"loss": field, "shape": field.shape})]
    return [(source.stem, {"loss": field, "coords": points})]


def read_landscape(npz: Path) -> dict:
    """The arrays of a landscape written by ``Landscape.save`` (``.npz`` + ``.json``)."""
    import numpy as np

    side = npz.with_suffix(".json")
    if not side.exists():
        raise FileNotFoundError(f"landscape file {side} does not exist")
    meta = json.loads(side.read_text())
    if meta.get("format") != LANDSCAPE_FORMAT:
        raise ValueError(f"{side} is not a saddles landscape sidecar")
    with np.load(npz, allow_pickle=False) as z:
        arrays = {
            "loss": z["loss"].reshape(-1),
            "coords": z["coords"],
            "metrics": {m: z[f"metric__{m}"].reshape(-1) for m in meta.get("metrics", [])},
        }
    arrays["shape"] = tuple(meta["shape"]) if meta.get("shape") is not None else None
    return arrays
