"""`saddles dynamics config.yaml`: the pipeline on every checkpoint of a training run.

    name: my-run                        # optional; a label in tables and the report
    model: mypackage.models:make_net    # factory (module:function or file.py:function), or
                                        # hf:PATH (a Hugging Face folder: the architecture)
    checkpoints: ckpts/                 # .safetensors / .pt state dicts, or Hugging Face
                                        # folders (model.safetensors inside), one per step
    steps: [0, 1000, 8000]              # optional: only these steps
    data: batch.pt                      # a tensor / tuple of tensors (.pt) or arrays (.npz)
    criterion: cross_entropy            # or  loss: mypackage.losses:my_loss
    inputs_key: input_ids               # optional: a dict batch's entries for the criterion
    targets_key: labels
    batch_size: 256                     # optional: split the data into batches
    params: {exclude: ["*embed*"]}      # optional: the parameters moved and differentiated
    policy: fixed                       # fixed (default), hessian or pca
    out: runs/my-run                    # dynamics.csv, report.html, one folder per checkpoint
    analysis:                           # any AnalysisConfig field (saddles.runs.config) ...
      resolution: 21
      hessian_top_k: 5
      subspaces:                        # ... and optionally several subspaces, each
        2d: {}                          #     overriding the fields above
        4d: {n_directions: 4, sampling: sobol, n_points: 512, representations: [knn],
             hessian: false}

The model is built once; each checkpoint's weights are loaded into a copy of it (a folder of
Hugging Face revisions shares one architecture). With ``--executor ray --workers N`` whole
checkpoints run on N Ray workers at once (a loopback cluster, or the one ``RAY_ADDRESS``
names), with the numbers of one process; the table is written, and each checkpoint's result
printed, as they finish. The step of a checkpoint comes from its
name (step1000, step_001000, checkpoint-1000), a sidecar <name>.json with "step", or a
folder's trainer_state.json. A rerun analyzes only checkpoints that are new, and resumes one
that was interrupted. The keys and their checks are :class:`saddles.runs.schema.RunSpec`'s,
shared with ``saddles run``. Relative paths (hf: ones too) are read relative to the YAML
file's folder.
"""

from __future__ import annotations

import copy
from pathlib import Path

import typer

from saddles.cli import app, friendly_errors
from saddles.cli._options import ExecutorName, ThreadsOption


@app.command()
@friendly_errors
def dynamics(
    config_path: Path = typer.Argument(..., metavar="CONFIG", help="A YAML file (see --help)."),
    out: Path | None = typer.Option(None, help="Output folder (overrides the file's `out`)."),
    quiet: bool = typer.Option(False, help="No progress display."),
    threads: ThreadsOption = None,
    allow_duplicates: bool = typer.Option(
        False, help="Fit trends over revisions whose weights are byte-identical to another's."
    ),
    executor: ExecutorName = typer.Option(
        ExecutorName("local"),
        help="Where whole checkpoints run: local (one after another, in this process) or ray "
        "(--workers at once). Values are bit-identical either way.",
    ),
    workers: int | None = typer.Option(
        None, help="Ray workers, one checkpoint each at a time (default: one per CPU)."
    ),
    gpus_per_worker: float = typer.Option(0.0, help="GPUs per Ray worker (fractions)."),
) -> None:
    """Analyze every checkpoint of a training run as configured in a YAML file.

    Keys: name, model (module:function or hf:PATH), checkpoints (a folder), steps, data,
    criterion or loss, inputs_key, targets_key, batch_size, params, policy (fixed, hessian,
    pca), out, analysis (any AnalysisConfig field, and `subspaces: {label: {fields}}`).
    Writes dynamics.csv (one row per checkpoint x subspace x representation, with step and
    every metric) and report.html, and prints each checkpoint as it is analyzed.
    Every revision's weights are hashed first (checkpoints.csv): revisions byte-identical to
    another are named, marked in every row, and left out of the trends unless
    --allow-duplicates. With --executor ray, --workers checkpoints are analyzed at once.
    """
    import yaml
    from rich.console import Console

    from saddles.cli import _loading
    from saddles.cli.run import load_spec, read_spec, row_line
    from saddles.files import atomic_write_text
    from saddles.io.suite import duplicates_message
    from saddles.report.dynamics import dynamics_report
    from saddles.report.spans import noise_sentence
    from saddles.runs.compare import read_table
    from saddles.runs.series import (
        ModelCopies,
        analyze_checkpoints,
        discover_checkpoints,
        load_state,
        select_steps,
    )

    if workers is not None and workers < 1:
        raise typer.BadParameter(f"must be a positive integer, not {workers}",
                                 param_hint="--workers")  # fmt: skip
    if not gpus_per_worker >= 0:
        raise typer.BadParameter(f"must be >= 0, not {gpus_per_worker}",
                                 param_hint="--gpus-per-worker")  # fmt: skip
    if executor.value == "local" and (workers is not None or gpus_per_worker):
        raise typer.BadParameter("--workers and --gpus-per-worker need --executor ray",
                                 param_hint="--executor")  # fmt: skip
    spec = read_spec(config_path, "dynamics")
    if threads is not None:  # this process's; Ray workers run one thread each
        import torch

        torch.set_num_threads(threads)
    configs = spec.configs
    for cfg in configs.values():
        _loading.check_device(cfg.device, "device")
    try:
        found = discover_checkpoints(spec.checkpoints)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="checkpoints") from exc
    try:
        ckpts = select_steps(found, spec.steps)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="steps") from exc
    template = _loading.build_model(spec.model, "model")
    for cfg in configs.values():
        _loading.check_params(template, cfg.params, "params")
    first = copy.deepcopy(template)
    try:
        load_state(first, ckpts[0])  # a checkpoint that does not fit is refused up front
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="checkpoints") from exc
    problem = load_spec(spec, model=first)  # data and loss, checked on the first checkpoint
    data, loss = problem.data, problem.loss
    name = spec.name
    out_dir = _loading.check_out_dir(out or spec.out, "out")
    rows = analyze_checkpoints(ModelCopies(template), ckpts, loss, data, configs, out_dir,
                               policy=spec.policy, run_name=name, progress=not quiet,
                               layout="long", executor=executor.value, workers=workers,
                               gpus_per_worker=gpus_per_worker)  # fmt: skip
    atomic_write_text(out_dir / "run.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False))
    settings = {"policy": spec.policy, "subspaces": {k: c.to_dict() for k, c in configs.items()}}
    report = dynamics_report(rows, out_dir, title=f"saddles dynamics: {name}", config=settings,
                             info={"configuration file": str(config_path),
                                   "model": str(spec.source["model"])},
                             allow_duplicates=allow_duplicates)  # fmt: skip
    console = Console()
    suite = read_table(out_dir / "checkpoints.csv")
    message = duplicates_message(suite)
    if message:
        left = "kept in" if allow_duplicates else "left out of (--allow-duplicates keeps them)"
        console.print(f"warning: {message}; {left} the trends")
    for r in rows:
        console.print(row_line(r, f"step {r['step']:>8} {r['subspace']:>4} "
                                  f"{r['representation']:<12}"))  # fmt: skip
    sentence = noise_sentence(rows)  # a span sweep: where a feature stands above the noise
    if sentence:
        console.print(f"noise: {sentence}", highlight=False, soft_wrap=True)
    console.print(f"table: {out_dir / 'dynamics.csv'}")
    console.print(f"report: {report}")
