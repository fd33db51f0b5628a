"""`saddles compare RUN_DIR...`: relate finished runs to a per-run quantity (model size, a
configuration value, a column of a metadata table); a thin layer over
:mod:`saddles.runs.compare`."""

from __future__ import annotations

from pathlib import Path

import typer

from saddles.cli import app, friendly_errors


@app.command()
@friendly_errors
def compare(
    run_dirs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR...", help="Folders of saddles run or saddles dynamics."
    ),
    by: str = typer.Option(
        "n_params",
        help="The per-run quantity: n_params, a configuration "
        "value, a constant column of the rows, or a --meta column.",
    ),
    meta: Path | None = typer.Option(
        None, help="CSV of per-run values; its first column holds the run folders' names."
    ),
    step: int | None = typer.Option(
        None, help="Checkpoint step of dynamics runs (default: each run's last)."
    ),
    metric: list[str] | None = typer.Option(
        None, help="Metrics to correlate (repeatable; default: the TDA and curvature metrics)."
    ),
    fit: list[str] | None = typer.Option(
        None, help="Metrics fitted as power laws of n_params (repeatable)."
    ),
    n_boot: int = typer.Option(1000, min=0, help="Bootstrap resamples."),
    n_perm: int = typer.Option(2000, min=1, help="Permutations for p-values."),
    out: Path = typer.Option(Path("compare"), help="Output folder."),
) -> None:
    """Correlate every metric of the runs with --by (intervals, permutation p, Holm over the
    table), fit power laws against the parameter count, and write compare.csv,
    power_laws.csv and report.html. Says the step each dynamics run is taken at; warns when
    the runs' settings differ (every setting that changes the numbers) or their steps do."""
    from saddles.cli import _loading
    from saddles.report.compare import write_comparison
    from saddles.report.spans import noise_sentence
    from saddles.runs.compare import compare_runs, load_runs, read_meta

    table = None
    if meta is not None:
        if not meta.is_file():
            raise typer.BadParameter(f"no such file: {meta}", param_hint="--meta")
        table = read_meta(meta)
    runs = load_runs(run_dirs, step)
    for run in runs:  # which checkpoint each dynamics run is compared at
        if run.kind == "dynamics":
            last = " (its last)" if step is None and run.step == max(run.steps) else ""
            typer.echo(f"{run.name}: step {run.step}{last}")
    out = _loading.check_out_dir(out, "--out")
    result = compare_runs(
        runs, by, meta=table, metrics=metric or None, fit=fit or None, n_boot=n_boot, n_perm=n_perm
    )
    for line in result.warnings:
        typer.echo(f"warning: {line}", err=True)
    paths = write_comparison(result, out, title=f"saddles compare: {by}")
    hits = sum(r["significant"] for r in result.relations)
    typer.echo(
        f"{len(result.runs)} runs, {len(result.relations)} relations to {by} "
        f"({hits} significant after Holm), {len(result.power_laws)} power-law fits"
    )
    sentence = noise_sentence(result.rows, unit="run", unit_key="run")
    if sentence:  # a span sweep: where a feature stands above the noise
        typer.echo(f"noise: {sentence}")
    typer.echo(f"table: {paths['compare']}")
    typer.echo(f"report: {paths['report']}")
