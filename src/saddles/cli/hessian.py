"""`saddles hessian`: top eigenvalues, trace and eigenvalue density of a model's loss Hessian.

The model, checkpoint, data and loss are given as for `saddles landscape`:

- ``--model hf:PATH`` (a local Hugging Face folder) or ``module:function`` (or
  ``path/to/file.py:function``): a factory called with no arguments;
- ``--checkpoint``: a state dict, loaded without unpickling arbitrary objects
  (``torch.load(..., weights_only=True)``, or a ``.safetensors`` file);
- ``--data``: ``.pt`` (a tensor, tuple, dict or list of batches), ``.safetensors``, ``.npy``
  or ``.npz``, batches passed to the loss as stored (see `saddles landscape`);
- ``--criterion cross_entropy|mse|causal_lm`` (with ``--inputs-key/--targets-key`` for dict
  batches), or ``--loss module:function`` naming a ``loss(model, batch) -> scalar`` function.

The Hessian is taken over the parameters ``--params-include/--params-exclude GLOB``,
``--params-exclude-1d`` and ``--params-type CLASS`` select (:mod:`saddles.params`), or the
older ``--params all|weights|name,name``.

The command prints the eigenvalues and the trace with its standard error, and writes
``hessian.json`` and the density figures into ``--out``. torch is imported inside the command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from saddles.cli import app, friendly_errors
from saddles.cli._options import PARAMS_HELP, Criterion, HvpMethod, TraceMethod, Which
from saddles.files import write_json

#: At most this many eigenpairs are printed; hessian.json holds them all.
SHOWN_EIGENPAIRS = 10


@app.command()
@friendly_errors
def hessian(
    model: str = typer.Option(
        ..., help="hf:PATH (a local Hugging Face folder) or a factory module:function."
    ),
    data: Path = typer.Option(
        ..., help="Data: .pt (tensor, tuple, dict or list of batches), .safetensors, .npy, .npz."
    ),
    checkpoint: Path | None = typer.Option(None, help="State dict: .pt/.pth or .safetensors."),
    criterion: Criterion | None = typer.Option(
        None,
        help="cross_entropy (the default) or mse on (inputs, targets); causal_lm: next-token "
        "cross-entropy on input_ids.",
    ),
    inputs_key: str | None = typer.Option(None, help="A dict batch's inputs (default inputs)."),
    targets_key: str | None = typer.Option(None, help="A dict batch's targets (default targets)."),
    loss: str | None = typer.Option(
        None, help="Instead of --criterion: a loss(model, batch) function as module:function."
    ),
    params: str = typer.Option(
        "all", help="Parameters: 'all', 'weights' (dim >= 2), or comma-separated names."
    ),
    params_include: list[str] = typer.Option([], help=PARAMS_HELP["include"]),
    params_exclude: list[str] = typer.Option([], help=PARAMS_HELP["exclude"]),
    params_exclude_1d: bool = typer.Option(
        False, "--params-exclude-1d", help=PARAMS_HELP["exclude_1d"]
    ),
    params_type: list[str] = typer.Option([], help=PARAMS_HELP["type"]),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Number of eigenvalues."),
    which: Which = typer.Option(
        Which("LA"), help="LA: largest, SA: smallest (negative curvature), LM: largest magnitude."
    ),
    tol: float | None = typer.Option(None, help="Relative residual tolerance of the eigenpairs."),
    trace_method: TraceMethod = typer.Option(TraceMethod("hutch++"), help="Trace estimator."),
    trace_matvecs: int = typer.Option(99, min=4, help="HVPs for the trace estimate."),
    n_lanczos: int = typer.Option(90, min=2, help="Lanczos steps per density run."),
    n_runs: int = typer.Option(1, min=1, help="Density runs (random start vectors)."),
    sigma: float | None = typer.Option(None, help="Density smoothing width (default: auto)."),
    batch_size: int | None = typer.Option(
        None, min=1, help="Split the data into batches of this size (same loss, less memory)."
    ),
    float64: bool = typer.Option(False, "--float64", help="Compute in double precision."),
    hvp: HvpMethod = typer.Option(
        HvpMethod("auto"),
        help="HVP backend: auto (double backward, a fixed rule), reverse, forward, or fastest "
        "(times both; results may then differ at rounding level between machines).",
    ),
    train: bool = typer.Option(False, "--train", help="Run the model in train mode."),
    device: str = typer.Option("cpu", help="torch device, e.g. cpu or cuda."),
    seed: int = typer.Option(0, help="Seed of every random start vector."),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads."),
    out: Path = typer.Option(Path("runs/hessian"), help="Directory for hessian.json and figures."),
    plot: Path | None = typer.Option(
        None, help="Folder for the figures (density, histogram, eigenvalues); default --out."
    ),
) -> None:
    """Top eigenvalues, trace (+- standard error) and eigenvalue density of the loss Hessian."""
    import torch

    from saddles.cli import _loading
    from saddles.hessian import HessianOperator, spectral_density, top_eigen, trace
    from saddles.hessian_plots import plot_density, plot_density_histogram, plot_eigenvalues

    if threads is not None:
        torch.set_num_threads(threads)
    loss_fn, loss_label = _loading.build_loss(criterion and criterion.value, loss,
                                              inputs_key=inputs_key,
                                              targets_key=targets_key)  # fmt: skip
    _loading.check_device(device)
    _loading.check_out_dir(out)
    if plot is not None:
        _loading.check_out_dir(plot, "--plot")
    spec = _loading.param_spec(params_include, params_exclude, params_exclude_1d, params_type)
    if spec and params != "all":
        raise typer.BadParameter("give --params or the --params-* globs, not both",
                                 param_hint="--params")  # fmt: skip
    net = _loading.load_model(model, checkpoint)
    batch = _loading.load_data(data)
    batches = _loading.split_batches(batch, batch_size) if batch_size else batch
    _loading.check_tokens(net, batches)
    _loading.check_loss(net, loss_fn, batches)
    net = net.to(device)
    param_filter: Any = params if params in ("all", "weights") else params.split(",")
    if spec:
        _loading.check_params(net, spec)
        param_filter = spec

    start = time.perf_counter()
    op = HessianOperator(net, loss_fn, batches, params=param_filter,
                         dtype=torch.float64 if float64 else None, device=device, hvp=hvp.value,
                         train=train)  # fmt: skip
    if top_k > op.dim:
        typer.echo(f"note: --top-k {top_k} is more than the {op.dim} parameters; computing all "
                   f"{op.dim} eigenvalues", err=True)  # fmt: skip
    eig = top_eigen(op, min(top_k, op.dim), which=which.value, tol=tol, seed=seed)
    exact = trace_method.value == "exact"
    tr = trace(op, trace_method.value, None if exact else trace_matvecs, seed=seed)
    sd = spectral_density(op, n_lanczos, n_runs, sigma=sigma, seed=seed)
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
        "loss": loss_label,
        "dim": op.dim,
        "params": op.params_info,
        "parameters": list(op.names),
        "dtype": str(op.dtype).replace("torch.", ""),
        "train_mode": train,
        "hvp_method": op.hvp_method,
        "hvp_seconds": op.hvp_timings,
        "seed": seed,
        "eigen": {
            "which": eig.which,
            "eigenvalues": eig.eigenvalues.tolist(),
            "residual_norms": eig.residual_norms.tolist(),
            "converged": eig.converged.tolist(),
            "tol": eig.tol,
            "n_hvps": eig.n_hvps,
        },
        "trace": {
            "value": tr.value,
            "stderr": tr.stderr,
            "method": tr.method,
            "n_matvecs": tr.n_matvecs,
        },  # fmt: skip
        "density": {
            "n_lanczos": int(sd.nodes.shape[1]),
            "n_runs": int(sd.nodes.shape[0]),
            "sigma": sd.sigma,
            "nodes": sd.nodes.tolist(),
            "weights": sd.weights.tolist(),
            "grid": sd.grid.tolist(),
            "density": sd.density.tolist(),
        },
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
    typer.echo(f"trace = {tr.value:.6g} +- {tr.stderr:.2g} ({tr.method}, {tr.n_matvecs} HVPs)")
    typer.echo(f"wrote {json_path}, " + ", ".join(str(f) for f in figures))
