"""`saddles export`: a landscape (or a field) and its critical points as VTK files.

SOURCE is a landscape ``.npz`` with its ``.json`` sidecar (``Landscape.save``), a landscape
run directory (``landscape.npz`` inside), a pipeline run directory (``landscape-<kind>/``
inside, each exported), or a field ``.npy``/``.npz`` as ``saddles topology`` reads it.
OUT is a folder, or for a single landscape the file itself when it ends in ``.vti`` (a grid
in 1 to 3 dimensions) or ``.vtu`` (scattered points, more dimensions); the critical points go
beside it. What is written is :mod:`saddles.report.export`'s job. Never imports torch:
landscapes are read by :meth:`saddles.landscape.Landscape.load` (numpy and json, with its
format-version check).
"""

from __future__ import annotations

from pathlib import Path

import typer

from saddles.cli import app, friendly_errors
from saddles.cli.topology import Representation

#: OUT names the landscape file itself when it ends in one of these.
FILE_SUFFIXES = (".vti", ".vtu")


@app.command()
@friendly_errors
def export(
    source: Path = typer.Argument(..., help="Landscape .npz, run directory, or field .npy/.npz."),
    out: Path = typer.Argument(
        ...,
        help="Directory for the .vti/.vtu, .vtp and .csv files, or for one landscape the "
        ".vti/.vtu file itself (critical points beside it).",
    ),
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
    found = sources(source)
    for name, arrays in found:
        out_dir, name = destination(out, name, arrays, len(found))
        for path in export_arrays(out_dir, name, **arrays, **options):
            typer.echo(str(path))


def destination(out: Path, name: str, arrays: dict, n_sources: int) -> tuple[Path, str]:
    """``(folder, name)`` of what :func:`export_arrays` writes for one landscape: OUT's folder
    and stem when OUT ends in ``.vti``/``.vtu`` (which must be the file this landscape
    makes), else OUT itself and the landscape's name."""
    from saddles.report.export import file_suffix

    if out.suffix not in FILE_SUFFIXES:
        return out, name
    if n_sources > 1:
        raise typer.BadParameter(f"{out} names one file, but SOURCE holds {n_sources} "
                                 "landscapes; give a folder", param_hint="OUT")  # fmt: skip
    coords, shape = arrays.get("coords"), arrays.get("shape")
    dims = coords.shape[1] if coords is not None and coords.ndim == 2 else len(shape or (1,))
    suffix = file_suffix(shape, dims)
    if suffix != out.suffix:
        kind = "a grid of 1 to 3 dimensions" if suffix == ".vti" else "scattered or 4-D+ points"
        raise typer.BadParameter(f"this landscape is {kind}, written as {suffix}, not "
                                 f"{out.suffix}; name the file {out.stem}{suffix}",
                                 param_hint="OUT")  # fmt: skip
    return out.parent, out.stem


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
    """The arrays of a landscape written by ``Landscape.save`` (``.npz`` + ``.json``), read by
    :meth:`saddles.landscape.Landscape.load`."""
    from saddles.landscape import Landscape

    land = Landscape.load(npz)
    if land.is_adaptive:  # the filled field its metrics use, and which points were evaluated
        metrics = {name: land.filled(name) for name in land.metrics}
        metrics["measured"] = land.measured.astype(float)
        return {"loss": land.filled(), "coords": land.coords, "metrics": metrics,
                "shape": land.shape}  # fmt: skip
    return {"loss": land.loss, "coords": land.coords, "metrics": land.metrics,
            "shape": land.shape}  # fmt: skip
