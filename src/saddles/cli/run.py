"""`saddles run config.yaml`: the whole pipeline on one model described by a YAML file.

    name: my-model                      # optional; a label in tables and the report
    model: mypackage.models:make_net    # factory (module:function or file.py:function)
    checkpoint: weights.safetensors     # a state dict (.safetensors, or .pt read weights_only)
    data: batch.pt                      # a tensor / tuple of tensors (.pt) or arrays (.npz)
    criterion: cross_entropy            # or  loss: mypackage.losses:my_loss  (loss(model, batch))
    batch_size: 256                     # optional: split the data into batches
    out: runs/my-model                  # the run directory
    analysis:                           # any AnalysisConfig field (saddles.pipeline)
      resolution: 41
      representations: [grid-full, knn]

Relative paths are read relative to the YAML file's folder.
"""

from __future__ import annotations

from pathlib import Path

import typer

from saddles.cli import app, friendly_errors

KEYS = {"name", "model", "checkpoint", "data", "criterion", "loss", "batch_size", "out",
        "analysis"}  # fmt: skip


@app.command()
@friendly_errors
def run(
    config_path: Path = typer.Argument(..., metavar="CONFIG", help="A YAML file (see --help)."),
    out: Path | None = typer.Option(None, help="Run directory (overrides the file's `out`)."),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """Analyze one model as configured in a YAML file: landscape, topology, Hessian, report.

    Keys: name, model (module:function), checkpoint, data, criterion or loss, batch_size,
    out, analysis (any AnalysisConfig field). The resolved configuration is written to the
    run directory's config.yaml.
    """
    from rich.console import Console

    from saddles.cli import _loading
    from saddles.pipeline import AnalysisConfig, _read_yaml, analyze, summarize, write_figures

    try:
        spec = _read_yaml(config_path)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="CONFIG") from exc
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise typer.BadParameter(f"unknown key(s) {unknown}; known: {sorted(KEYS)}")
    for key in ("model", "data"):
        if key not in spec:
            raise typer.BadParameter(f"{config_path} must say `{key}:`", param_hint="CONFIG")
    if ("criterion" in spec) == ("loss" in spec):
        raise typer.BadParameter("give exactly one of `criterion:` or `loss:`", param_hint="CONFIG")
    try:
        config = AnalysisConfig.from_dict(spec.get("analysis") or {})
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(f"analysis: {exc}", param_hint="CONFIG") from exc

    if "given" in config.directions:
        raise typer.BadParameter("`given` directions need the library (analyze(given=...))")
    base = config_path.parent
    model = _loading.build_model(_relative_to(spec["model"], base))
    if spec.get("checkpoint"):
        _loading.load_checkpoint(model, base / spec["checkpoint"], "checkpoint")
    data = _loading.load_data(base / spec["data"])
    if spec.get("batch_size"):
        data = _loading.split_batches(data, int(spec["batch_size"]))
    if "criterion" in spec:
        loss = _loading.make_criterion(spec["criterion"])
    else:
        loss = _loading.import_object(_relative_to(spec["loss"], base), "loss")
    name = str(spec.get("name", Path(spec["model"].split(":")[-1]).name))
    out_dir = out or base / spec.get("out", f"runs/{name}")
    analysis = analyze(model, loss, data, config, name=name, run_dir=out_dir / name,
                       progress=not quiet)  # fmt: skip
    figures = {name: write_figures(analysis, out_dir / name / "figures")}
    paths = summarize([analysis], out_dir, x_key="model", y_metrics=[], categorical=True,
                      title=f"saddles: {name}", figures=figures,
                      info={"configuration file": str(config_path)})  # fmt: skip
    console = Console()
    for row in analysis.rows():
        console.print(f"{row['direction']:>8} {row['representation']:<12} minima "
                      f"{row['n_minima']:>5} saddles {row['n_saddles']:>5} average persistence "
                      f"{row['average_persistence']:.4g}")  # fmt: skip
    console.print(f"report: {paths['report']}")


def _relative_to(spec: str, base: Path) -> str:
    """``file.py:function`` read relative to the YAML file's folder (``module:function`` as is)."""
    target, sep, attr = str(spec).partition(":")
    if target.endswith(".py") and not Path(target).is_absolute():
        return f"{base / target}{sep}{attr}"
    return str(spec)
