"""`saddles hessian`: top eigenvalues, trace and eigenvalue density of a model's loss Hessian.

The model, checkpoint, data and loss are given as for `saddles landscape`:

- ``--model hf:PATH`` (a local Hugging Face folder) or ``module:function`` (or
  ``path/to/file.py:function``): a factory called with no arguments;
- ``--checkpoint``: a state dict, loaded without unpickling arbitrary objects
  (``torch.load(..., weights_only=True)``, or a ``.safetensors`` file), or a Hugging Face
  checkpoint folder;
- ``--data``: ``.pt`` (a tensor, tuple, dict or list of batches), ``.safetensors``, ``.npy``
  or ``.npz``, batches passed to the loss as stored (see `saddles landscape`);
- ``--criterion cross_entropy|mse|causal_lm`` (with ``--inputs-key/--targets-key`` for dict
  batches), or ``--loss module:function`` naming a ``loss(model, batch) -> scalar`` function.

The Hessian is taken over the parameters ``--params-include/--params-exclude GLOB``,
``--params-exclude-1d`` and ``--params-type CLASS`` select (:mod:`saddles.io.params`), or the
older ``--params all|weights|name,name``.

The defaults (``--top-k``, ``--trace-matvecs``, ``--n-lanczos``, ``--n-runs``, ``--seed``,
``--device``) are :class:`saddles.runs.config.AnalysisConfig`'s, so the command computes what
an analysis's Hessian does. Options are checked before the model or the data is loaded.

The command prints the eigenvalues and the trace with its standard error, and writes
``hessian.json`` (:func:`saddles.runs.analyze.compute_hessian`'s record, the same an analysis
builds its Hessian metrics from, with the inputs and timings) and the density figures into
``--out``. Each stage (top eigenpairs, trace, density) says on stderr when it starts and when
it is done, with its seconds and HVPs, unless ``--quiet``. torch is imported inside the
command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from saddles.cli import app, friendly_errors
from saddles.cli._options import (
    DEFAULTS,
    BatchSizeOption,
    CheckpointOption,
    CriterionOption,
    DataOption,
    DeviceOption,
    HvpMethod,
    InputsKeyOption,
    LossOption,
    ModelOption,
    OutOption,
    ParamsExclude1dOption,
    ParamsExcludeOption,
    ParamsIncludeOption,
    ParamsTypeOption,
    QuietOption,
    TargetsKeyOption,
    ThreadsOption,
    TraceMethod,
    Which,
)
from saddles.files import write_json

#: At most this many eigenpairs are printed; hessian.json holds them all.
SHOWN_EIGENPAIRS = 10


@app.command()
@friendly_errors
def hessian(
    model: ModelOption,
    data: DataOption,
    checkpoint: CheckpointOption = None,
    criterion: CriterionOption = None,
    inputs_key: InputsKeyOption = None,
    targets_key: TargetsKeyOption = None,
    loss: LossOption = None,
    params: str = typer.Option(
        "all", help="Parameters: 'all', 'weights' (dim >= 2), or comma-separated names."
    ),
    params_include: ParamsIncludeOption = None,
    params_exclude: ParamsExcludeOption = None,
    params_exclude_1d: ParamsExclude1dOption = False,
    params_type: ParamsTypeOption = None,
    top_k: int = typer.Option(
        DEFAULTS["hessian_top_k"], "--top-k", min=1, help="Number of eigenvalues."
    ),
    which: Which = typer.Option(
        Which("LA"), help="LA: largest, SA: smallest (negative curvature), LM: largest magnitude."
    ),
    tol: float | None = typer.Option(None, help="Relative residual tolerance of the eigenpairs."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Measure a forward, a gradient and an HVP, print the predicted "
        "time and memory, and stop.",
    ),
    memory: str | None = typer.Option(
        None,
        help="Bytes the Lanczos bases may hold, e.g. 4GiB (default: 256 MiB or 2 top-k + 6 "
        "vectors, whichever is more; less memory costs more HVPs).",
    ),
    trace_method: TraceMethod = typer.Option(TraceMethod("hutch++"), help="Trace estimator."),
    trace_matvecs: int = typer.Option(
        DEFAULTS["trace_matvecs"], min=4, help="HVPs for the trace estimate."
    ),
    n_lanczos: int = typer.Option(
        DEFAULTS["density_lanczos"],
        "--n-lanczos",
        "--density-lanczos",
        min=2,
        help="Lanczos steps per density run.",
    ),  # fmt: skip
    n_runs: int = typer.Option(
        DEFAULTS["density_runs"],
        "--n-runs",
        "--density-runs",
        min=1,
        help="Density runs (random start vectors).",
    ),  # fmt: skip
    sigma: float | None = typer.Option(None, help="Density smoothing width (default: auto)."),
    batch_size: BatchSizeOption = None,
    float64: bool = typer.Option(False, "--float64", help="Compute in double precision."),
    hvp: HvpMethod = typer.Option(
        HvpMethod("auto"),
        help="HVP backend: auto (double backward, a fixed rule), reverse, forward, or fastest "
        "(times both; results may then differ at rounding level between machines).",
    ),
    train: bool = typer.Option(False, "--train", help="Run the model in train mode."),
    device: DeviceOption = DEFAULTS["device"],
    seed: int = typer.Option(DEFAULTS["seed"], help="Seed of every random start vector."),
    threads: ThreadsOption = None,
    out: OutOption = Path("runs/hessian"),
    plot: Path | None = typer.Option(
        None, help="Folder for the figures (density, histogram, eigenvalues); default --out."
    ),
    quiet: QuietOption = False,
) -> None:
    """Top eigenvalues, trace (+- standard error) and eigenvalue density of the loss Hessian.

    --out receives hessian.json and the density figures.
    """
    from saddles.cli import _loading

    # Every option is checked before the model or the data is loaded.
    _loading.check_device(device)
    _loading.check_out_dir(out)
    if plot is not None:
        _loading.check_out_dir(plot, "--plot")
    spec = _loading.param_spec(params_include or [], params_exclude or [], params_exclude_1d,
                               params_type or [])  # fmt: skip
    if spec and params != "all":
        raise typer.BadParameter("give --params or the --params-* globs, not both",
                                 param_hint="--params")  # fmt: skip
    if sigma is not None and not sigma > 0:
        raise typer.BadParameter(f"must be a positive number, not {sigma}", param_hint="--sigma")
    if tol is not None and not tol > 0:
        raise typer.BadParameter(f"must be a positive number, not {tol}", param_hint="--tol")
    from saddles.files import parse_bytes

    try:
        memory_bytes = None if memory is None else parse_bytes(memory)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--memory") from None

    import time

    import torch

    from saddles.hessian import HessianOperator
    from saddles.report.hessian_plots import plot_density, plot_density_histogram, plot_eigenvalues
    from saddles.runs.analyze import compute_hessian

    if threads is not None:
        torch.set_num_threads(threads)
    problem = _loading.load_problem(
        model=model, checkpoint=checkpoint, data=data, criterion=criterion and criterion.value,
        loss=loss, inputs_key=inputs_key, targets_key=targets_key, batch_size=batch_size,
        params=spec,
    )  # fmt: skip
    net, loss_fn, batches = problem.model.to(device), problem.loss, problem.data
    param_filter: Any = spec or (params if params in ("all", "weights") else params.split(","))

    start = time.perf_counter()
    op = HessianOperator(net, loss_fn, batches, params=param_filter,
                         dtype=torch.float64 if float64 else None, device=device, hvp=hvp.value,
                         train=train)  # fmt: skip
    if top_k > op.dim:
        typer.echo(f"note: --top-k {top_k} is more than the {op.dim} parameters; computing all "
                   f"{op.dim} eigenvalues", err=True)  # fmt: skip
    if dry_run:
        from saddles.runs import cost

        probed = cost.probe(net, loss_fn, batches, params=param_filter,
                            dtype=torch.float64 if float64 else None, device=device)  # fmt: skip
        matvecs = op.dim if trace_method.value == "exact" else trace_matvecs
        rows = cost.with_total([cost.hessian_cost(
            probed, top_k=min(top_k, op.dim), trace_matvecs=matvecs, density_lanczos=n_lanczos,
            density_runs=n_runs, memory=memory_bytes)])  # fmt: skip
        typer.echo(cost.cost_table(probed, rows))
        return
    if not quiet:
        typer.echo(f"Hessian over {op.dim:,} parameters ({op.hvp_method} HVPs)", err=True)
    record, eig, sd = compute_hessian(
        op, top_k=min(top_k, op.dim), which=which.value, tol=tol,
        trace_method=trace_method.value, trace_matvecs=trace_matvecs, n_lanczos=n_lanczos,
        n_runs=n_runs, sigma=sigma, seed=seed, memory=memory_bytes,
        progress=None if quiet else lambda text: typer.echo(text, err=True),
    )  # fmt: skip
    seconds = time.perf_counter() - start

    out.mkdir(parents=True, exist_ok=True)
    fig_dir = plot or out
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = [fig_dir / "density.png", fig_dir / "density_histogram.png",
               fig_dir / "eigenvalues.png"]  # fmt: skip
    plot_density(sd, path=figures[0])
    plot_density_histogram(sd, path=figures[1])
    plot_eigenvalues(eig.eigenvalues, eig.residual_norms, path=figures[2])
    report = {
        "model": model,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "data": str(data),
        "loss": problem.loss_label,
        **record,
        "train_mode": train,
        "hvp_seconds": op.hvp_timings,
        "seed": seed,
        "seconds": seconds,
        "figures": [str(f) for f in figures],
    }
    json_path = out / "hessian.json"
    write_json(json_path, report, indent=1)  # atomic; NaN becomes null, so always valid JSON

    info = op.params_info
    typer.echo(
        f"Hessian over {op.dim:,} parameters ({info['n_tensors']} of {info['n_tensors_total']} "
        f"tensors; {report['dtype']}, {op.hvp_method} HVPs)"
    )
    typer.echo(f"{eig.which} eigenpairs from {eig.n_hvps} HVPs (Lanczos):")
    typer.echo(f"{'i':>3}  {'eigenvalue':>14}  {'||Hv - lv||':>11}")
    pairs = list(zip(eig.eigenvalues, eig.residual_norms, eig.converged, strict=True))
    for i, (lam, res, converged) in enumerate(pairs[:SHOWN_EIGENPAIRS], 1):
        flag = "" if converged else "  (not converged)"
        typer.echo(f"{i:>3}  {lam:>14.6g}  {res:>11.2g}{flag}")
    if len(pairs) > SHOWN_EIGENPAIRS:
        unconverged = sum(not c for *_, c in pairs[SHOWN_EIGENPAIRS:])
        typer.echo(f"  ... {len(pairs) - SHOWN_EIGENPAIRS} more in {out / 'hessian.json'}"
                   + (f" ({unconverged} not converged)" if unconverged else ""))  # fmt: skip
    trace = record["trace"]
    typer.echo(f"trace = {trace['value']:.6g} +- {trace['stderr']:.2g} ({trace['method']}, "
               f"{trace['n_matvecs']} HVPs)")  # fmt: skip
    typer.echo(f"wrote {json_path}, " + ", ".join(str(f) for f in figures))
