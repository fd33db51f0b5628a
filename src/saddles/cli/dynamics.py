"""`saddles dynamics config.yaml`: the pipeline on every checkpoint of a training run.

    name: my-run                        # optional; a label in tables and the report
    model: mypackage.models:make_net    # factory (module:function or file.py:function), or
                                        # hf:PATH (a Hugging Face folder: the architecture)
    checkpoints: ckpts/                 # .safetensors / .pt state dicts, or Hugging Face
                                        # folders (model.safetensors inside), one per step
    steps: [0, 1000, 8000]              # optional: only these steps
    data: batch.pt                      # a tensor / tuple of tensors (.pt) or arrays (.npz)
    criterion: cross_entropy            # or  loss: mypackage.losses:my_loss
    batch_size: 256                     # optional: split the data into batches
    policy: fixed                       # fixed (default), hessian or pca
    out: runs/my-run                    # dynamics.csv, report.html, one folder per checkpoint
    analysis:                           # any AnalysisConfig field (saddles.runs.analyze) ...
      resolution: 21
      hessian_top_k: 5
      subspaces:                        # ... and optionally several subspaces, each
        2d: {}                          #     overriding the fields above
        4d: {n_directions: 4, sampling: sobol, n_points: 512, representations: [knn],
             hessian: false}

The model is built once; each checkpoint's weights are loaded into a copy of it (a folder of
Hugging Face revisions shares one architecture). The step of a checkpoint comes from its
name (step1000, step_001000, checkpoint-1000), a sidecar <name>.json with "step", or a
folder's trainer_state.json. A rerun analyzes only checkpoints that are new. Relative paths
(hf: ones too) are read relative to the YAML file's folder.
"""

from __future__ import annotations

import copy
from pathlib import Path

import typer

from saddles.cli import app, friendly_errors

KEYS = {"name", "model", "checkpoints", "steps", "data", "criterion", "loss", "batch_size",
        "policy", "out", "analysis"}  # fmt: skip


@app.command()
@friendly_errors
def dynamics(
    config_path: Path = typer.Argument(..., metavar="CONFIG", help="A YAML file (see --help)."),
    out: Path | None = typer.Option(None, help="Output folder (overrides the file's `out`)."),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """Analyze every checkpoint of a training run as configured in a YAML file.

    Keys: name, model (module:function or hf:PATH), checkpoints (a folder), steps, data,
    criterion or loss, batch_size, policy (fixed, hessian, pca), out, analysis (any
    AnalysisConfig field, and `subspaces: {label: {fields}}`). Writes dynamics.csv (one row
    per checkpoint x subspace x representation, with step and every metric) and report.html.
    """
    from rich.console import Console

    from saddles.cli import _loading
    from saddles.cli.run import _relative_to
    from saddles.files import read_yaml
    from saddles.names import POLICIES
    from saddles.report.dynamics import dynamics_report
    from saddles.runs.series import (
        analyze_checkpoints,
        configs_from_dict,
        discover_checkpoints,
        load_state,
        select_steps,
    )

    spec = read_yaml(config_path)
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise typer.BadParameter(f"unknown key(s) {unknown}; known: {sorted(KEYS)}",
                                 param_hint=str(config_path))  # fmt: skip
    for key in ("model", "checkpoints", "data"):
        if key not in spec:
            raise typer.BadParameter(f"{config_path} must say `{key}:`", param_hint="CONFIG")
    if ("criterion" in spec) == ("loss" in spec):
        raise typer.BadParameter("give exactly one of `criterion:` or `loss:`",
                                 param_hint=str(config_path))  # fmt: skip
    policy = spec.get("policy", "fixed")
    if policy not in POLICIES:
        raise typer.BadParameter(f"must be one of {POLICIES}, not {policy!r}", param_hint="policy")
    try:
        configs = configs_from_dict(spec.get("analysis") or {})
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="analysis") from exc
    for cfg in configs.values():
        _loading.check_device(cfg.device, "device")

    base = config_path.parent
    try:
        found = discover_checkpoints(base / str(spec["checkpoints"]))
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="checkpoints") from exc
    try:
        ckpts = select_steps(found, spec.get("steps"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="steps") from exc
    model_spec = model_path(str(spec["model"]), base)
    template = _loading.build_model(model_spec, "model")
    data = _loading.load_data(base / str(spec["data"]), "data")
    if spec.get("batch_size") is not None:
        data = _loading.split_batches(data, spec["batch_size"])
    loss_spec = spec.get("loss")
    loss, _ = _loading.build_loss(spec.get("criterion"),
                                  None if loss_spec is None else _relative_to(loss_spec, base),
                                  loss_hint="loss", criterion_hint="criterion")  # fmt: skip
    first = copy.deepcopy(template)
    try:
        load_state(first, ckpts[0])  # a checkpoint that does not fit is refused up front
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="checkpoints") from exc
    _loading.check_loss(first, loss, data, "data")
    name = str(spec.get("name", Path(str(spec["checkpoints"])).name or "run"))
    out_dir = _loading.check_out_dir(out or base / str(spec.get("out", f"runs/{name}")), "out")
    rows = analyze_checkpoints(lambda: copy.deepcopy(template), ckpts, loss, data, configs,
                               out_dir, policy=policy, run_name=name, progress=not quiet,
                               layout="long")  # fmt: skip
    settings = {"policy": policy, "subspaces": {k: c.to_dict() for k, c in configs.items()}}
    report = dynamics_report(rows, out_dir, title=f"saddles dynamics: {name}", config=settings,
                             info={"configuration file": str(config_path),
                                   "model": str(spec["model"])})  # fmt: skip
    console = Console()
    for r in rows:
        console.print(f"step {r['step']:>8} {r['subspace']:>4} {r['representation']:<12} minima "
                      f"{r['n_minima']:>5} saddles {r['n_saddles']:>5} average persistence "
                      f"{r['average_persistence']:.4g}")  # fmt: skip
    console.print(f"table: {out_dir / 'dynamics.csv'}")
    console.print(f"report: {report}")


def model_path(spec: str, base: Path) -> str:
    """The ``model:`` value for the CLI's model builder: ``hf:PATH`` with a relative PATH read
    from the YAML file's folder, ``file.py:function`` likewise, ``module:function`` as is."""
    from saddles.cli.run import _relative_to

    if spec.startswith("hf:"):
        path = Path(spec[3:])
        return spec if path.is_absolute() else f"hf:{base / path}"
    return _relative_to(spec, base)
