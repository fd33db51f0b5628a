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
    analysis:                           # any AnalysisConfig field (saddles.runs.analyze)
      resolution: 41
      representations: [grid-full, knn]

Relative paths are read relative to the YAML file's folder.
"""

from __future__ import annotations

from pathlib import Path

import typer

from saddles.cli import app, friendly_errors

KEYS = {"name", "model", "checkpoint", "data", "criterion", "loss", "batch_size", "out",
        "analysis", "inputs_key", "targets_key", "params"}  # fmt: skip


@app.command()
@friendly_errors
def run(
    config_path: Path = typer.Argument(..., metavar="CONFIG", help="A YAML file (see --help)."),
    out: Path | None = typer.Option(None, help="Run directory (overrides the file's `out`)."),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """Analyze one model as configured in a YAML file: landscape, topology, Hessian, report.

    Keys: name, model (module:function or hf:PATH), checkpoint, data, criterion or loss,
    inputs_key, targets_key, batch_size, params, out, analysis (any AnalysisConfig field).
    The resolved configuration is written to the run directory's config.yaml.
    """
    from rich.console import Console

    from saddles.cli import _loading
    from saddles.files import read_yaml
    from saddles.report.figures import write_figures
    from saddles.runs.analyze import AnalysisConfig, analyze
    from saddles.runs.summary import summarize

    spec = read_yaml(config_path)
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise typer.BadParameter(f"unknown key(s) {unknown}; known: {sorted(KEYS)}",
                                 param_hint=str(config_path))  # fmt: skip
    for key in ("model", "data"):
        if key not in spec:
            raise typer.BadParameter(f"{config_path} must say `{key}:`", param_hint="CONFIG")
    if ("criterion" in spec) == ("loss" in spec):
        raise typer.BadParameter("give exactly one of `criterion:` or `loss:`",
                                 param_hint=str(config_path))  # fmt: skip
    size = spec.get("batch_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise typer.BadParameter(f"must be a positive integer, not {size!r}",
                                 param_hint="batch_size")  # fmt: skip
    analysis_spec = spec.get("analysis") or {}
    if "params" in spec and isinstance(analysis_spec, dict):
        if "params" in analysis_spec:
            raise typer.BadParameter("give `params:` at the top or under `analysis:`, not both",
                                     param_hint="params")  # fmt: skip
        analysis_spec = {**analysis_spec, "params": spec["params"]}
    try:
        config = AnalysisConfig.from_dict(analysis_spec)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="analysis") from exc
    if "given" in config.directions:
        raise typer.BadParameter("`given` directions need the library (analyze(given=...))",
                                 param_hint="analysis")  # fmt: skip
    _loading.check_device(config.device, "device")

    base = config_path.parent
    checkpoint = base / spec["checkpoint"] if spec.get("checkpoint") else None
    model = _loading.load_model(_relative_to(spec["model"], base), checkpoint, "model",
                                "checkpoint")  # fmt: skip
    _loading.check_params(model, config.params, "params")
    data = _loading.load_data(base / str(spec["data"]), "data")
    if size is not None:
        data = _loading.split_batches(data, size)
    loss_spec = spec.get("loss")
    keys = {k: spec.get(k) for k in ("inputs_key", "targets_key")}
    for key, value in keys.items():
        if value is not None and not isinstance(value, str):
            raise typer.BadParameter(f"must be a string, not {value!r}", param_hint=key)
    loss, _ = _loading.build_loss(spec.get("criterion"),
                                  None if loss_spec is None else _relative_to(loss_spec, base),
                                  loss_hint="loss", criterion_hint="criterion",
                                  **keys)  # fmt: skip
    _loading.check_tokens(model, data, "data")
    _loading.check_loss(model, loss, data, "data")
    name = str(spec.get("name", Path(spec["model"].split(":")[-1]).name))
    out_dir = _loading.check_out_dir(out or base / str(spec.get("out", f"runs/{name}")), "out")
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
    """``file.py:function`` and ``hf:folder`` read relative to the YAML file's folder
    (``module:function`` and absolute paths as they are)."""
    if str(spec).startswith("hf:"):
        folder = Path(str(spec)[3:]).expanduser()
        return f"hf:{folder if folder.is_absolute() else base / folder}"
    target, sep, attr = str(spec).partition(":")
    if target.endswith(".py") and not Path(target).is_absolute():
        return f"{base / target}{sep}{attr}"
    return str(spec)
