"""`saddles experiment pinn|resnet` and `saddles demo`: the paper's experiments end to end.

Each command parses options into an :class:`~saddles.runs.config.AnalysisConfig`, calls the
experiment function, and prints the metrics table and the report's path. torch is imported
inside the command bodies only.
"""

from __future__ import annotations

from pathlib import Path

import typer

from saddles.cli import app, friendly_errors
from saddles.cli._options import DEFAULTS, Dataset, ExecutorName, HessianPlane, Policy, Preset
from saddles.names import LM_POLICY, LM_TRAIN_SEEDS
from saddles.topology.representations import REPRESENTATIONS

experiment_app = typer.Typer(
    help="Run one of the paper's experiments: train, analyze, relate, report.",
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")

DIRECTIONS_HELP = "Comma-separated direction kinds: random, hessian."
REPS_HELP = f"Comma-separated representations: {', '.join(REPRESENTATIONS)}."
SPAN_HELP = (
    "Coordinates run over [-span, span]; comma-separated spans sample each plane at "
    "every one, and 'auto' chooses them (saddles.landscape.scales)."
)
WHICH_HELP = "Which Hessian eigenvectors span the hessian plane: top, or top_bottom (cuts saddles)."
#: Training runs per beta in `saddles demo`: with 3 the demo took 231 s of CPU time (one
#: thread) on a 2-core machine, within its 10-minute budget (the README's run).
DEMO_TRAIN_SEEDS = 3
TRAIN_SEEDS_HELP = ("Training runs per {what} (seeds seed, seed+1, ...; each a separate model, "
                    "finished ones reused): intervals then cover training seeds too.")  # fmt: skip


def _config(directions: str, representations: str, resolution: int, span: float | str,
            hessian: bool, threshold: float, threads: int | None, **extra):  # fmt: skip
    import torch

    from saddles.runs.config import AnalysisConfig, parse_span

    if threads:
        torch.set_num_threads(threads)
    try:
        return AnalysisConfig(
            directions=[d.strip() for d in directions.split(",") if d.strip()],
            representations=[r.strip() for r in representations.split(",") if r.strip()],
            resolution=resolution, span=parse_span(str(span)), hessian=hessian,
            threshold=threshold if threshold > 0 else None, **extra,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@experiment_app.command("pinn")
@friendly_errors
def pinn(
    out: Path = typer.Option(Path("runs/pinn"), help="Run directory (resumable)."),
    betas: str = typer.Option("1,2,3,4,5,6,7,8,9,10", help="Comma-separated beta values."),
    n_f: int = typer.Option(100, help="Collocation points (the reference code's default)."),
    max_iter: int = typer.Option(100_000, help="L-BFGS iteration cap (it stops by itself)."),
    seed: int = typer.Option(0, help="Seed of the network's initialization and directions."),
    directions: str = typer.Option(",".join(DEFAULTS["directions"]), help=DIRECTIONS_HELP),
    representations: str = typer.Option(",".join(DEFAULTS["representations"]), help=REPS_HELP),
    resolution: int = typer.Option(DEFAULTS["resolution"], help="Grid points per axis."),
    span: str = typer.Option(f"{DEFAULTS['span']:g}", help=SPAN_HELP),
    hessian_which: HessianPlane = typer.Option(
        HessianPlane(DEFAULTS["hessian_which"]), help=WHICH_HELP
    ),  # fmt: skip
    hessian: bool = typer.Option(
        DEFAULTS["hessian"], help="Compute Hessian eigenvalues, trace and density."
    ),
    threshold: float = typer.Option(
        DEFAULTS["threshold"], help="Simplification threshold (fraction of range)."
    ),
    threads: int = typer.Option(1, help="torch threads (1 is fastest for this small net)."),
    seeds_per_model: int = typer.Option(
        1, "--direction-seeds", min=1, help="Random planes per model (seed, seed+1, ...)."
    ),
    train_seeds: int = typer.Option(
        1, "--train-seeds", min=1, help=TRAIN_SEEDS_HELP.format(what="beta")
    ),
    executor: ExecutorName = typer.Option(
        ExecutorName("local"), help="Where landscape chunks run: local or ray (same values)."
    ),
    workers: int | None = typer.Option(None, min=1, help="Ray workers (default: one per CPU)."),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """PINNs for 1D convection (Krishnapriyan et al. 2021) for several beta."""
    from saddles.experiments.pinn import run_pinn_experiment

    config = _config(directions, representations, resolution, span, hessian, threshold, threads,
                     seed=seed, direction_seeds=seeds_per_model, executor=executor.value,
                     workers=workers, hessian_which=hessian_which.value)  # fmt: skip
    beta_values = _floats(betas, "--betas")
    paths = run_pinn_experiment(out, beta_values, config, n_f=n_f, seed=seed,
                                train_seeds=train_seeds, max_iter=max_iter,
                                progress=not quiet)  # fmt: skip
    _print_summary(paths)


@experiment_app.command("resnet")
@friendly_errors
def resnet(
    out: Path = typer.Option(Path("runs/resnet"), help="Run directory (resumable)."),
    dataset: Dataset = typer.Option(
        Dataset("cifar10"), help="cifar10 (needs --data-dir) or digits (offline)."
    ),  # fmt: skip
    data_dir: Path | None = typer.Option(None, help="Folder holding cifar-10-batches-py."),
    download: bool = typer.Option(False, help="Download CIFAR-10 into --data-dir if missing."),
    seeds: str = typer.Option("0,123,123456,2023", help="Comma-separated training seeds."),
    train_seeds: int | None = typer.Option(
        None, "--train-seeds", min=1, help="Train only the first N of --seeds per architecture."
    ),
    epochs: int = typer.Option(10, help="Training epochs per model."),
    eval_images: int = typer.Option(1024, help="Test images in the evaluation batch."),
    train_images: int | None = typer.Option(None, help="Train on the first N images only."),
    directions: str = typer.Option(",".join(DEFAULTS["directions"]), help=DIRECTIONS_HELP),
    representations: str = typer.Option(",".join(DEFAULTS["representations"]), help=REPS_HELP),
    resolution: int = typer.Option(21, help="Grid points per axis (the experiment's: 21)."),
    span: str = typer.Option(f"{DEFAULTS['span']:g}", help=SPAN_HELP),
    hessian_which: HessianPlane = typer.Option(
        HessianPlane(DEFAULTS["hessian_which"]), help=WHICH_HELP
    ),  # fmt: skip
    hessian: bool = typer.Option(
        DEFAULTS["hessian"], help="Compute Hessian eigenvalues, trace and density."
    ),
    threshold: float = typer.Option(
        DEFAULTS["threshold"], help="Simplification threshold (fraction of range)."
    ),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's)."),
    seeds_per_model: int = typer.Option(
        1, "--direction-seeds", min=1, help="Random planes per model (seed, seed+1, ...)."
    ),
    executor: ExecutorName = typer.Option(
        ExecutorName("local"), help="Where landscape chunks run: local or ray (same values)."
    ),
    workers: int | None = typer.Option(None, min=1, help="Ray workers (default: one per CPU)."),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """ResNet-20 with and without skip connections (He et al. 2016; Li et al. 2018)."""
    from saddles.experiments.resnet import run_resnet_experiment

    config = _config(directions, representations, resolution, span, hessian, threshold, threads,
                     direction_seeds=seeds_per_model, executor=executor.value,
                     workers=workers, hessian_which=hessian_which.value)  # fmt: skip
    if dataset.value == "cifar10" and data_dir is None:
        raise typer.BadParameter(
            "CIFAR-10 needs --data-dir (the folder with the standard cifar-10-batches-py "
            "files); nothing is downloaded unless --download. Without the files, run "
            "--dataset digits, an offline substitute (scikit-learn's digits at 32x32)."
        )
    try:
        paths = run_resnet_experiment(
            out, config, dataset=dataset.value, data_dir=data_dir, download=download,
            seeds=_first(seeds, train_seeds), epochs=epochs,
            eval_images=eval_images, train_images=train_images, progress=not quiet,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _print_summary(paths)


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Run directory (resumable)."),
    train_seeds: int = typer.Option(
        DEMO_TRAIN_SEEDS, "--train-seeds", min=1, help=TRAIN_SEEDS_HELP.format(what="beta")
    ),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """The PINN experiment at demo scale: beta 1, 3, 5, 7, 9, each trained with 3 seeds;
    41x41 grids; 8 random planes per model and the Hessian plane; image and kNN
    representations; noise floors (about 4 minutes of CPU time on one thread)."""
    from saddles.experiments.pinn import run_pinn_experiment

    config = _config("random,hessian", "grid-full,grid-ttk,knn", 41, 1.0, True, 0.01, 1,
                     direction_seeds=8)  # fmt: skip
    paths = run_pinn_experiment(out, [1, 3, 5, 7, 9], config, train_seeds=train_seeds,
                                progress=not quiet)  # fmt: skip
    _print_summary(paths)


def _first(seeds: str, n: int | None) -> list[int]:
    """The training seeds of --seeds, the first ``n`` of them if --train-seeds is given."""
    values = [int(s) for s in _floats(seeds, "--seeds")]
    if n is not None and n > len(values):
        raise typer.BadParameter(f"--train-seeds {n} needs at least {n} --seeds, got {seeds}")
    return values[:n]


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"{name} must be comma-separated numbers, not {text!r}") from exc
    if not values:
        raise typer.BadParameter(f"{name} is empty")
    return values


def _print_summary(paths: dict[str, Path]) -> None:
    """Over direction seeds (first representation): counts raw, simplified and above the noise
    floor, persistence raw and relative, each as mean [95% interval]; then the relations of
    those metrics with what was varied; then the paths."""
    import csv

    from rich.console import Console
    from rich.table import Table

    from saddles.runs.registry import label, metrics_for

    console = Console()
    if not console.is_terminal and console.width < 160:
        console = Console(width=160)  # a log file or pipe: do not squeeze the table
    rows = list(csv.DictReader(open(paths["summary"])))
    first_rep = rows[0]["representation"]
    quality = [k for k in ("beta", "rel_l2", "skip", "accuracy") if f"{k}_mean" in rows[0]]
    metrics = metrics_for("cli")
    nested = any(int(r.get("n_train_seeds") or 1) > 1 for r in rows)
    over = (
        "training seeds, then direction seeds; 'train share': the share of the saddle "
        "count's variance from the training run"
        if nested
        else "direction seeds"
    )
    table = Table(title=f"{first_rep}: mean [95% interval over {over}]; raw counts, "
                  f"simplified at 1% of the range, above 2x the noise floor; every value is in "
                  f"{paths['summary']}")  # fmt: skip
    swept = "sweep_span" in rows[0]  # a span sweep: a row per span (and the plane's summaries)
    heads = ["model", "direction", *(["span"] if swept else []), *(["train seeds"] * nested),
             "seeds", *quality[1:], *metrics, *(["train share"] * nested), "noise floor",
             "H top eig"]  # fmt: skip
    for c in heads:
        table.add_column(label(c), justify="right")
    for r in rows:
        if r["representation"] != first_rep:
            continue
        if swept and r["sweep_span"] == "":
            continue  # the scale summaries: in summary.csv
        cells = [r["model"], r["direction"], *([r["sweep_span"]] if swept else []),
                 *([r["n_train_seeds"]] * nested), r["n_seeds"]]  # fmt: skip
        cells += [_short(r[f"{q}_mean"]) for q in quality[1:]]
        cells += [_interval(r, m) for m in metrics]
        cells += [_short(r.get("n_saddles_share_training", ""))] * nested
        cells += [_short(r.get("noise_floor_mean", "")),
                  _short(r.get("hessian_top_eigenvalue_mean", ""))]  # fmt: skip
        table.add_row(*cells)
    console.print(table)
    rel = list(csv.DictReader(open(paths["relations"])))
    ys = ("beta", "skip", "accuracy")
    focus = [r for r in rel if r["representation"] == first_rep and r["x"] in metrics
             and r["y"] in ys]  # fmt: skip
    if focus:
        t = Table(title="relations: Spearman rho [95% Fisher-z interval], permutation p, "
                  "Holm-adjusted p within its family (primary: the paper's claims; "
                  "claims.csv and the report give a verdict per claim)")  # fmt: skip
        for c in ("direction", "metric", "against", "runs" if nested else "models",
                  "rho [interval]", "p", "Holm p",
                  "family"):  # fmt: skip
            t.add_column(c, justify="right")
        for r in focus:
            t.add_row(r["direction"], r["x"], r["y"], r["n"],
                      f"{_short(r['spearman'])} [{_short(r['spearman_ci_low'])}, "
                      f"{_short(r['spearman_ci_high'])}]", _short(r["spearman_p"]),
                      _short(r["spearman_p_holm"]), r.get("family", ""))  # fmt: skip
        console.print(t)
    console.print(f"report: {paths['report']}")


def _interval(row: dict[str, str], metric: str) -> str:
    mean, lo, hi = (row.get(f"{metric}_{s}", "") for s in ("mean", "ci_low", "ci_high"))
    if lo in ("", "nan") or hi in ("", "nan"):
        return _short(mean)
    return f"{_short(mean)} [{_short(lo)}, {_short(hi)}]"


def _short(v: str) -> str:
    try:
        f = float(v)
    except ValueError:
        return v
    return f"{f:.4g}"


@experiment_app.command("lm")
@friendly_errors
def lm(
    out: Path = typer.Option(Path("runs/lm"), help="Run directory (resumable, incremental)."),
    preset: Preset = typer.Option(
        Preset("small"), help="small (CPU: 4 sizes x 2 training runs, ~2 h, 1 thread) or full (GPU)"
    ),
    sizes: str | None = typer.Option(None, help="Comma-separated size names (default: preset)."),
    steps: int | None = typer.Option(None, help="Training steps (default: the preset's)."),
    seed: int = typer.Option(0, help="Seed of initialization, data order and directions."),
    train_seeds: int = typer.Option(
        LM_TRAIN_SEEDS, "--train-seeds", min=1, help=TRAIN_SEEDS_HELP.format(what="size")
    ),
    policy: Policy = typer.Option(
        Policy(LM_POLICY), help="Directions per checkpoint (hessian: the top/bottom plane)."
    ),
    device: str | None = typer.Option(None, help="cpu, cuda or auto (default: the preset's)."),
    threads: int | None = typer.Option(1, help="torch threads."),
    executor: ExecutorName = typer.Option(
        ExecutorName("local"),
        help="Where checkpoints are analyzed: local, or ray (--workers "
        "at once, one torch thread each; the same values).",
    ),  # fmt: skip
    workers: int | None = typer.Option(None, min=1, help="Ray workers (default: one per CPU)."),
    quiet: bool = typer.Option(False, help="No progress display."),
) -> None:
    """Character-level GPTs of several sizes: topology and curvature over training, scaling."""
    import csv

    import torch
    from rich.console import Console

    from saddles.cli._loading import check_device
    from saddles.experiments.lm import run_lm_experiment

    if threads:
        torch.set_num_threads(threads)
    if device not in (None, "auto"):
        check_device(device)
    size_list = [s.strip() for s in sizes.split(",")] if sizes else None
    paths = run_lm_experiment(out, preset.value, sizes=size_list, steps=steps, seed=seed,
                              train_seeds=train_seeds, policy=policy.value, device=device,
                              executor=executor.value, workers=workers,
                              progress=not quiet)  # fmt: skip
    console = Console(width=160)
    with open(paths["hypotheses"]) as f:
        _print_hypotheses(console, list(csv.DictReader(f)))
    console.print(f"dynamics: {paths['dynamics']}\nreport: {paths['report']}")


def _print_hypotheses(console, rows: list[dict[str, str]]) -> None:
    """The LM study's hypotheses as one table: span (in a sweep), hypothesis, quantity,
    value [95% interval], n, p, Holm p and verdict; what is missing as a line under it."""
    from rich.table import Table

    swept = any(r.get("span") for r in rows)
    table = Table(title="H1-H4: value [95% interval], n, permutation p, Holm p over the "
                  "primary family (every span); pooled over training runs")  # fmt: skip
    for c in (*(["span"] * swept), "H", "quantity", "value [interval]", "n", "p", "Holm p",
              "verdict"):  # fmt: skip
        table.add_column(c, overflow="fold")
    missing = []
    for r in rows:
        if r["quantity"] == "what is missing":
            missing.append(r)
            continue
        ci = (f" [{_short(r['ci_low'])}, {_short(r['ci_high'])}]"
              if r["ci_low"] not in ("", "nan") else "")  # fmt: skip
        table.add_row(*([r.get("span", "")] * swept), r["hypothesis"], r["quantity"],
                      f"{_short(r['value'])}{ci}", r["n"], _short(r["p"]),
                      _short(r["p_holm"]), r["verdict"])  # fmt: skip
    console.print(table)
    for r in missing:
        console.print(f"{r['hypothesis']} cannot be asked: {r['note']}")
