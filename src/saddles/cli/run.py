"""`saddles run config.yaml`: the whole pipeline on one model described by a YAML file.

    name: my-model                      # optional; a label in tables and the report
    model: mypackage.models:make_net    # factory (module:function or file.py:function),
                                        # or hf:path/to/folder (a local Hugging Face model)
    checkpoint: weights.safetensors     # a state dict (.safetensors, or .pt read weights_only)
    data: batch.pt                      # .pt (tensor, tuple, dict or list of batches),
                                        # .safetensors, .npy or .npz; passed on as stored
    criterion: cross_entropy            # cross_entropy, mse, causal_lm, or
                                        #   loss: mypackage.losses:my_loss  (loss(model, batch))
    inputs_key: inputs                  # optional: a dict batch's entries for the criterion
    targets_key: targets
    batch_size: 256                     # optional: split the data into batches
    params:                             # optional: the parameters moved and differentiated
      include: ["gpt_neox.layers.3.*"]  #   (saddles.io.params; same as analysis: params:)
      exclude_1d: true
    out: runs/my-model                  # the run directory
    analysis:                           # any AnalysisConfig field (saddles.runs.config)
      resolution: 41
      representations: [grid-full, knn]

The keys and their checks are :class:`saddles.runs.schema.RunSpec`'s, shared with
``saddles dynamics``. Relative paths are read relative to the YAML file's folder.
"""

from __future__ import annotations

from pathlib import Path

import typer

from saddles.cli import app, friendly_errors
from saddles.cli._options import ThreadsOption


@app.command()
@friendly_errors
def run(
    config_path: Path = typer.Argument(..., metavar="CONFIG", help="A YAML file (see --help)."),
    out: Path | None = typer.Option(None, help="Run directory (overrides the file's `out`)."),
    quiet: bool = typer.Option(False, help="No progress display."),
    threads: ThreadsOption = None,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Measure a forward, a gradient and an HVP, print the predicted "
        "time and memory of the run, and stop.",
    ),
) -> None:
    """Analyze one model as configured in a YAML file: landscape, topology, Hessian, report.

    Keys: name, model (module:function or hf:PATH), checkpoint, data, criterion or loss,
    inputs_key, targets_key, batch_size, params, out, analysis (any AnalysisConfig field).
    The resolved configuration is written to the run directory's run.yaml and config.yaml;
    cost.json holds the cost predicted before the run beside the one measured.
    """
    import time

    import yaml
    from rich.console import Console

    from saddles.cli import _loading
    from saddles.files import atomic_write_text, write_json
    from saddles.report.figures import write_figures
    from saddles.report.summary import summarize
    from saddles.runs.analyze import analyze

    spec = read_spec(config_path, "run")
    config = spec.analysis
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _loading.check_device(config.device, "device")
    problem = load_spec(spec)
    model, loss, data = problem.model, problem.loss, problem.data
    from saddles.runs import cost

    rss = cost.peak_rss_bytes()  # the model and the data are loaded
    probed = cost.probe(model, loss, data, params=config.params or "all")
    predicted = cost.analysis_cost(probed, config)
    if dry_run:
        typer.echo(cost.cost_table(probed, predicted))
        return
    name = spec.name
    out_dir = _loading.check_out_dir(out or spec.out, "out")
    start = time.perf_counter()
    analysis = analyze(model, loss, data, config, name=name, run_dir=out_dir / name,
                       progress=not quiet)  # fmt: skip
    write_json(out_dir / "cost.json", {
        "probe": probed.to_dict(), "predicted": [r.to_dict() for r in predicted],
        "measured": {"seconds": time.perf_counter() - start, "stages": analysis.timings,
                     "peak_bytes": max(cost.peak_rss_bytes() - rss, 0)},  # as predicted
    })  # fmt: skip
    atomic_write_text(out_dir / "run.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False))
    figures = {name: write_figures(analysis, out_dir / name / "figures")}
    paths = summarize([analysis], out_dir, x_key="model", y_metrics=[], categorical=True,
                      title=f"saddles: {name}", figures=figures,
                      info={"configuration file": str(config_path)})  # fmt: skip
    console = Console()
    for row in analysis.rows():
        console.print(row_line(row, f"{row['direction']:>8} {row['representation']:<12}"))
    console.print(f"report: {paths['report']}")


def row_line(row: dict, where: str) -> str:
    """One printed line of a plane row: ``where``, the span in a sweep, then minima, saddles
    and average persistence, or the scale summaries (critical span, basin radius)."""
    if "sweep_span" in row:  # a span sweep: the span, or the plane's scale summaries
        span = row["sweep_span"]
        where += f" span {span if span != '' else 'all':<8}"
    if "n_minima" not in row:
        return (f"{where} critical span {row['critical_span']:.4g} basin radius "
                f"{row['basin_radius']:.4g}")  # fmt: skip
    return (f"{where} minima {row['n_minima']:>5} saddles {row['n_saddles']:>5} "
            f"average persistence {row['average_persistence']:.4g}")  # fmt: skip


def read_spec(config_path: Path, command: str):
    """The file's :class:`~saddles.runs.schema.RunSpec` for ``command``; a refusal names
    the key (exit 2)."""
    from saddles.runs.schema import RunSpec, SpecError

    try:
        return RunSpec.from_yaml(config_path, command)
    except SpecError as exc:
        raise typer.BadParameter(exc.message, param_hint=exc.key) from exc


def load_spec(spec, model=None):
    """:meth:`RunSpec.load <saddles.runs.schema.RunSpec.load>`, a refusal naming the YAML key
    (exit 2); a factory's model without ``checkpoint:`` gets the random-initialization line."""
    from saddles.cli import _loading
    from saddles.io.problem import InputError

    try:
        problem = spec.load(model)
    except InputError as exc:
        raise typer.BadParameter(exc.message, param_hint=exc.argument) from exc
    if model is None and spec.checkpoint is None:
        _loading.warn_random_init(spec.model, "checkpoint:")
    return problem
