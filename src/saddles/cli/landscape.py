"""`saddles landscape`: sample a model's loss landscape into a resumable run directory.

The model, checkpoint, data and loss are given as for `saddles hessian`:

- ``--model hf:PATH``: a local Hugging Face folder (``save_pretrained``; never downloaded,
  eager attention), or ``module:function`` (or ``path/to/file.py:function``): a factory called
  with no arguments that returns the ``torch.nn.Module``;
- ``--checkpoint``: a state dict, loaded without unpickling arbitrary objects
  (``torch.load(..., weights_only=True)``, or a ``.safetensors`` file), or a Hugging Face
  checkpoint folder (:func:`saddles.io.checkpoints.load_into`); the weights it holds are the
  landscape's centre;
- ``--data``: a ``.pt`` file (``weights_only=True``) holding a tensor, a tuple/list of tensors,
  a dict of tensors (passed to the loss as a dict, keys kept) or a list of such batches; a
  ``.safetensors`` file (one dict batch); an ``.npy`` array; an ``.npz`` (a dict batch when it
  holds ``input_ids``, else its arrays in file order); ``--batch-size`` splits it;
- ``--criterion cross_entropy|mse`` (applied to ``model(inputs)`` and ``targets``: a dict
  batch's ``--inputs-key``/``--targets-key``, default ``inputs``/``targets``) or ``causal_lm``
  (next-token cross-entropy on ``input_ids``), or ``--loss module:function`` naming a
  ``loss(model, batch) -> scalar`` function; ``--metric name=module:function`` adds per-point
  values such as accuracy.

``--params-include/--params-exclude GLOB`` (repeatable), ``--params-exclude-1d`` and
``--params-type CLASS`` select the parameters the directions move (:mod:`saddles.io.params`);
``--autocast bf16|fp16`` and ``--eval-tokens N|auto`` trade precision and data for speed at LM
scale.

Directions are random (``--directions``, ``--seed``, ``--norm``, ``--keep-1d``,
``--orthogonalize``; Li et al. 2018) or point to other checkpoints (``--to``, repeated: files
or folders, as ``--checkpoint``). Coordinates are a grid (``--resolution``, also spelled
``--grid``, on ``[-span, span]`` or ``--range low,high``), that grid refined adaptively
(``--sampling adaptive``, ``--adaptive-target``, ``--adaptive-budget``, ``--adaptive-coarse``;
:mod:`saddles.landscape.adaptive`), or ``--scattered N`` points. The
defaults are :class:`saddles.runs.config.AnalysisConfig`'s (``resolution``, ``span``,
``n_directions``, ``seed``, ``norm``, ...), declared once (:data:`saddles.cli._options.DEFAULTS`).
The run directory ``--out`` receives ``config.json``, ``chunks/`` and
``landscape.npz``/``.json``; ``--resume`` continues an interrupted run.

Every option is checked (the coordinates built, the devices and paths looked at) before the
model or the data is loaded, so a bad value fails at once, naming its option. torch is imported
inside the command, so other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from saddles.cli import _loading, app, friendly_errors
from saddles.cli._options import (
    DEFAULTS,
    Autocast,
    BatchSizeOption,
    CheckpointOption,
    CriterionOption,
    DataOption,
    DeviceOption,
    DType,
    Engine,
    ExecutorName,
    InputsKeyOption,
    LossOption,
    Method,
    ModelOption,
    Norm,
    Orthogonalize,
    OutOption,
    ParamsExclude1dOption,
    ParamsExcludeOption,
    ParamsIncludeOption,
    ParamsTypeOption,
    QuietOption,
    Region,
    Sampling,
    TargetsKeyOption,
    ThreadsOption,
)

#: The option each argument of :func:`saddles.sampling.grid`/``scattered`` comes from, by the
#: word the library's message starts with.
_COORDINATE_OPTIONS = {"resolution": "--resolution / --grid", "range": "--range / --span",
                       "ranges": "--range / --span", "radius": "--radius",
                       "coarse": "--adaptive-coarse", "rel_target": "--adaptive-target",
                       "budget": "--adaptive-budget", "adaptive": "--sampling"}  # fmt: skip


@app.command()
@friendly_errors
def landscape(
    model: ModelOption,
    data: DataOption,
    checkpoint: CheckpointOption = None,
    criterion: CriterionOption = None,
    inputs_key: InputsKeyOption = None,
    targets_key: TargetsKeyOption = None,
    loss: LossOption = None,
    metric: list[str] | None = typer.Option(
        None, help="Extra per-point value as name=module:function (repeatable)."
    ),
    batch_size: BatchSizeOption = None,
    directions: int = typer.Option(
        DEFAULTS["n_directions"],
        min=1,
        max=10,
        help="Number of random directions (the landscape's dimension).",
    ),  # fmt: skip
    seed: int = typer.Option(DEFAULTS["seed"], help="Seed of the random directions."),
    norm: Norm = typer.Option(
        Norm(DEFAULTS["norm"]), help="Direction normalization (Li et al. 2018)."
    ),
    keep_1d: bool = typer.Option(
        not DEFAULTS["ignore_1d"],
        "--keep-1d",
        help="Also move biases and norm-layer parameters (zeroed by default).",
    ),  # fmt: skip
    params_include: ParamsIncludeOption = None,
    params_exclude: ParamsExcludeOption = None,
    params_exclude_1d: ParamsExclude1dOption = False,
    params_type: ParamsTypeOption = None,
    orthogonalize: Orthogonalize = typer.Option(
        Orthogonalize("none"), help="Gram-Schmidt the directions (orthonormal: unit length)."
    ),
    to: list[Path] | None = typer.Option(
        None,
        help="Instead of random directions: a checkpoint to interpolate towards, a file or a "
        "Hugging Face folder (repeatable; coordinate 1 is that checkpoint).",
    ),
    resolution: str = typer.Option(
        str(DEFAULTS["resolution"]),
        "--resolution",
        "--grid",
        help="Grid points per axis: one number for every axis, or one per axis (e.g. 41,31).",
    ),  # fmt: skip
    span: float | None = typer.Option(
        None, help=f"Axes from -span to span (default {DEFAULTS['span']:g}); or --range."
    ),
    range_: list[str] | None = typer.Option(
        None,
        "--range",
        help="Axis range low,high: once for every axis, or repeated once per axis.",
    ),  # fmt: skip
    sampling: Sampling = typer.Option(
        Sampling("grid"),
        help="grid: every point; adaptive: refine the grid from a coarse sub-grid where the "
        "diagram can still change, with a stated bound on its bottleneck distance.",
    ),
    adaptive_target: float = typer.Option(
        DEFAULTS["adaptive_target"], help="Adaptive: target error, a fraction of the range."
    ),
    adaptive_budget: int | None = typer.Option(
        DEFAULTS["adaptive_budget"], help="Adaptive: at most this many evaluations."
    ),
    adaptive_coarse: int = typer.Option(
        DEFAULTS["adaptive_coarse"], help="Adaptive: points per axis of the first round."
    ),
    scattered: int | None = typer.Option(
        None, min=1, help="Instead of a grid: this many scattered points (kNN graph later)."
    ),
    method: Method = typer.Option(Method("sobol"), help="Scattered sampling method."),
    region: Region = typer.Option(
        Region("box"), help="Scattered points in the --span/--range box or a ball."
    ),
    radius: float = typer.Option(1.0, help="Radius of the ball for --region ball."),
    sample_seed: int = typer.Option(0, help="Seed of the scattered points."),
    engine: Engine = typer.Option(
        Engine(DEFAULTS["engine"]),
        help="auto: batched (vmap) where the model is overhead-bound, else sequential; "
        "decided by counting operators and FLOPs, never by timing.",
    ),
    chunk_size: int | None = typer.Option(
        DEFAULTS["chunk_size"], min=1, help="Points per batched call / chunk."
    ),
    executor: ExecutorName = typer.Option(
        ExecutorName(DEFAULTS["executor"]),
        help="Where chunks run: local (this process) or ray (joins RAY_ADDRESS, else starts a "
        "loopback cluster of --workers). Values are bit-identical either way.",
    ),
    workers: int | None = typer.Option(
        DEFAULTS["workers"], min=1, help="Ray workers (default: one per CPU)."
    ),
    gpus_per_worker: float = typer.Option(0.0, min=0.0, help="GPUs per Ray worker (fractions)."),
    max_retries: int = typer.Option(3, min=0, help="Retries of a chunk whose Ray worker died."),
    max_memory: str | None = typer.Option(
        None, help="Memory budget of a batched chunk, e.g. 2GB (default: a quarter of the RAM)."
    ),
    device: DeviceOption = DEFAULTS["device"],
    dtype: DType | None = typer.Option(None, help="Evaluation precision (default: the model's)."),
    autocast: Autocast | None = typer.Option(
        None, help="Forwards under torch.autocast (faster at LM scale, adds rounding noise)."
    ),
    eval_tokens: str | None = typer.Option(
        None,
        help="Evaluate only the data's first N tokens (whole sequences) per point; 'auto': "
        "each point on doubling prefixes of the data until the standard error of its loss "
        "meets --stderr-target (the tokens per point are saved and plotted).",
    ),
    stderr_target: float = typer.Option(
        DEFAULTS["stderr_target"],
        help="With --eval-tokens auto: the target standard error, a fraction of the value range.",
    ),
    train: bool = typer.Option(False, "--train", help="Evaluate in train mode (default: eval)."),
    threads: ThreadsOption = None,
    out: OutOption = Path("runs/landscape"),
    plot: Path | None = typer.Option(
        None, help="Folder for figures: a curve (1-D), contour and surface (2-D grids)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Measure a forward, a gradient and an HVP, print the predicted "
        "time and memory, and stop.",
    ),
    quiet: QuietOption = False,
) -> None:
    """Evaluate the loss on a grid or scattered points spanned by directions from the model.

    The run directory --out receives config.json, chunks/ and landscape.npz/.json.
    """
    # Every option is checked before the model or the data is loaded.
    to = to or []
    if not resume and (out / "config.json").exists():  # the library would reuse a finished run
        typer.echo(f"error: {out} already holds a run; pass --resume to continue it (or load "
                   "it if finished), or choose another --out", err=True)  # fmt: skip
        raise typer.Exit(code=2)
    adaptive = None
    if sampling.value == "adaptive":
        adaptive = {"coarse": adaptive_coarse, "rel_target": adaptive_target,
                    "budget": adaptive_budget}  # fmt: skip
    coords = _coordinates(resolution, span, range_ or [], scattered, method.value, region.value,
                          radius, sample_seed, dims=len(to) or directions,
                          dims_hint="--to" if to else "--directions",
                          adaptive=adaptive)  # fmt: skip
    metrics = _metrics(metric or [])
    for path in to:
        if not path.exists():
            raise typer.BadParameter(f"no such file or folder: {path}", param_hint="--to")
    if max_memory is not None:
        from saddles.files import parse_bytes

        with _loading.option("--max-memory"):
            parse_bytes(max_memory)
    from saddles.runs.config import AnalysisConfig, parse_tokens

    if eval_tokens is not None:
        try:
            eval_tokens = parse_tokens("--eval-tokens", eval_tokens)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--eval-tokens") from None
    try:  # the library's rule for the target
        AnalysisConfig(stderr_target=stderr_target)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--stderr-target") from None
    _loading.check_device(device)
    _loading.check_out_dir(out)
    if plot is not None:
        _loading.check_out_dir(plot, "--plot")
    spec = _loading.param_spec(params_include or [], params_exclude or [], params_exclude_1d,
                               params_type or [])  # fmt: skip

    import numpy as np
    import torch

    from saddles import directions as dirs_mod
    from saddles.landscape import evaluate

    if threads is not None:
        torch.set_num_threads(threads)
    problem = _loading.load_problem(
        model=model, checkpoint=checkpoint, data=data, criterion=criterion and criterion.value,
        loss=loss, inputs_key=inputs_key, targets_key=targets_key, batch_size=batch_size,
        params=spec,
    )  # fmt: skip
    net, loss_fn, batches, selection = problem.model, problem.loss, problem.data, problem.selection

    if to:  # each checkpoint loaded into a copy of the model, stored names matched
        with _loading.option("--to"):
            dirs = dirs_mod.interpolation(net, to, params=spec)
    else:
        dirs = dirs_mod.random_directions(
            net,
            directions,
            seed=seed,
            norm=norm.value,
            ignore_1d=not keep_1d,
            orthogonalize=orthogonalize.value,
            params=spec,
        )
    if dry_run:
        from saddles.runs import cost

        probed = cost.probe(net, loss_fn, batches, params=spec or "all")
        rows = cost.with_total([cost.landscape_cost(probed, coords.n_points, coords.dims)])
        typer.echo(cost.cost_table(probed, rows))
        return
    result = evaluate(
        net,
        loss_fn,
        batches,
        dirs,
        coords,
        metrics=metrics,
        engine=engine.value,
        chunk_size=chunk_size,
        executor=executor.value,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        max_retries=max_retries,
        max_memory=max_memory,
        device=device,
        dtype=dtype.value if dtype else None,
        autocast=autocast.value if autocast else None,
        eval_tokens=eval_tokens,
        stderr_target=stderr_target,
        params=spec,
        train_mode=train,
        run_dir=out,
        resume=resume,
        progress=not quiet,
    )

    info = result.info
    where = f"grid {'x'.join(map(str, result.shape))}" if result.is_grid else "scattered points"
    typer.echo(
        f"{result.n_points} points ({where}) in {result.dims}-D, "
        f"{info['model']['n_params']:,} parameters, engine {info['engine']}"
        + (f" (chunk {info['chunk_size']})" if info["engine"] == "batched" else "")
    )
    finite = result.loss[np.isfinite(result.loss)]
    low = f"{finite.min():.6g}" if finite.size else "nan"
    high = f"{finite.max():.6g}" if finite.size else "nan"
    if spec:
        typer.echo(f"parameters moved: {selection.describe()}")
    typer.echo(f"centre loss {info['center_loss']:.6g}; loss from {low} to {high}")
    if result.is_adaptive:
        a = info["adaptive"]
        typer.echo(f"adaptive: {a['n_evaluations']} of {a['n_dense']} points evaluated "
                   f"({a['fraction_of_dense']:.1%}) in {a['n_rounds']} rounds, stopped: "
                   f"{a['stop_reason']}; estimated error {a['error']:.3g} "
                   f"({a['bound_relative']:.2%} of the range), the bound on the bottleneck "
                   "distance to the dense grid's diagram")  # fmt: skip
    if result.n_nonfinite:
        typer.echo(f"{result.n_nonfinite} point(s) gave a non-finite loss (kept as NaN/inf)")
    if result.loss_stderr is not None:
        se = result.loss_stderr[np.isfinite(result.loss_stderr)]
        if se.size:
            typer.echo(f"standard error of the loss over the examples: {np.median(se):.3g} "
                       f"(median), {se.max():.3g} (largest)")  # fmt: skip
    if result.tokens is not None:
        data = info["data"]
        typer.echo(f"eval_tokens auto: {int(result.tokens.sum()):,} tokens in all, "
                   f"{int(data['n_tokens']) * result.n_points:,} with all the data at every "
                   f"point; target standard error {data['stderr_target']:.3g}")  # fmt: skip
    typer.echo(f"wrote {out / 'landscape.npz'} and {out / 'landscape.json'}")
    if plot is not None:
        from saddles.report.figures import landscape_figures

        pictures = landscape_figures(result, plot, stem=out.name or "landscape")
        if pictures:
            typer.echo("figures: " + ", ".join(str(p) for p in pictures.values()))
        else:
            typer.echo("no figure for a scattered or 3-D+ landscape; `saddles export` writes "
                       "it for ParaView")  # fmt: skip


# --- parsing options ------------------------------------------------------------------------


def _metrics(specs: list[str]) -> dict[str, Any]:
    """``name=module:function`` options into ``{name: function}``."""
    out = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        if not sep or not name or not target:
            raise typer.BadParameter(
                f"expected name=module:function, got {spec!r}", param_hint="--metric"
            )
        fn = _loading.import_object(target, "--metric")
        if not callable(fn):
            raise typer.BadParameter(f"{target} is not callable", param_hint="--metric")
        out[name] = fn
    return out


def _coordinates(resolution: str, span: float | None, ranges: list[str], scattered: int | None,
                 method: str, region: str, radius: float, seed: int, dims: int,
                 dims_hint: str, adaptive: dict[str, Any] | None = None):  # fmt: skip
    """The points to evaluate (:mod:`saddles.sampling`), built before anything is loaded, so
    that a bad value is refused at once, naming its option. ``adaptive``: the options of
    :func:`saddles.sampling.adaptive_grid`, for ``--sampling adaptive``."""
    from saddles import sampling

    if adaptive is not None and scattered is not None:
        raise typer.BadParameter("--sampling adaptive refines a grid; drop --scattered",
                                 param_hint="--sampling")  # fmt: skip
    if span is not None and ranges:
        raise typer.BadParameter("give --span or --range, not both", param_hint="--span")
    if span is not None:
        bounds: Any = (-span, span)
    elif ranges:
        parsed = [_parse_range(r) for r in ranges]
        bounds = parsed[0] if len(parsed) == 1 else parsed
    else:
        bounds = (-DEFAULTS["span"], DEFAULTS["span"])
    try:
        if scattered is not None:
            return sampling.scattered(scattered, dims, method=method, region=region,
                                      ranges=bounds, radius=radius, seed=seed)  # fmt: skip
        if adaptive is not None:
            return sampling.adaptive_grid(_parse_grid(resolution), bounds, dims=dims, **adaptive)
        return sampling.grid(_parse_grid(resolution), bounds, dims=dims)
    except ValueError as exc:
        word = str(exc).split()[0]
        hint = _COORDINATE_OPTIONS.get(word, dims_hint)
        if word == "conflicting":  # per-axis values for another number of axes
            hint = "--resolution / --grid" if "," in resolution else "--range / --span"
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def _parse_grid(text: str) -> int | list[int]:
    try:
        sizes = [int(x) for x in text.split(",")]
    except ValueError as exc:
        raise typer.BadParameter(
            f"expected a resolution such as 51 or 51,31, got {text!r}",
            param_hint="--resolution / --grid",
        ) from exc
    return sizes if "," in text else sizes[0]


def _parse_range(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise typer.BadParameter(
            f"expected low,high (e.g. -1,1), got {text!r}", param_hint="--range"
        ) from exc
