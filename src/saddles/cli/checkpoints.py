"""`saddles checkpoints FOLDER`: a training run's checkpoints with their steps, sizes and weight
hashes, and the revisions that are byte-identical to another, before any analysis; a thin
layer over :func:`saddles.io.suite.check_suite`."""

from __future__ import annotations

from pathlib import Path

import typer

from saddles.cli import app, friendly_errors


@app.command()
@friendly_errors
def checkpoints(
    folder: Path = typer.Argument(..., help="A folder of checkpoints (files or HF folders)."),
    out: Path | None = typer.Option(None, help="Also write the table to this CSV file."),
) -> None:
    """List the checkpoints of a run: step, name, parameter count, sha256 of the weights, and
    which checkpoint a duplicated revision copies. Exits 0; the duplicates are named."""
    from rich.console import Console
    from rich.table import Table

    from saddles.files import write_csv
    from saddles.io.suite import check_suite, discover_checkpoints, duplicates_message

    try:
        found = discover_checkpoints(folder)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="FOLDER") from exc
    rows = check_suite(found)
    table = Table(title=f"{len(rows)} checkpoints in {folder}")
    for column in ("step", "checkpoint", "n_params", "sha256", "duplicate_of"):
        table.add_column(column, justify="right" if column in ("step", "n_params") else "left")
    for r in rows:
        table.add_row(str(r["step"]), r["checkpoint"], f"{r['n_params']:,}", r["sha256"][:16],
                      r["duplicate_of"])  # fmt: skip
    console = Console()
    console.print(table)
    message = duplicates_message(rows)
    console.print(f"warning: {message}" if message else "no duplicated revisions")
    if out is not None:
        console.print(f"table: {write_csv(out, rows)}")
