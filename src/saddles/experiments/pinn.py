"""Physics-informed networks for 1D convection: model, data, loss, training and errors.

The problem (Krishnapriyan et al. 2021, "Characterizing possible failure modes in
physics-informed neural networks"): ``u_t + beta u_x = 0`` for x in [0, 2 pi), t in [0, 1],
``u(x, 0) = sin x``, periodic in x; the exact solution is ``sin(x - beta t)``. Everything here
follows their reference code, which the paper (Xie et al. 2024) used:

- grid: 256 values of x in [0, 2 pi) (endpoint excluded) by 100 values of t in [0, 1];
- data: the initial condition on the 256 x values, the periodic boundary pair ``u(0, t)``,
  ``u(2 pi, t)`` on the 100 t values, and ``N_f`` collocation points (100 by default) drawn
  without replacement (numpy seed 0) from the interior grid, t = 0 and x = 0 excluded;
- network: 2-50-50-50-50-1 with tanh (7,851 parameters), PyTorch's default initialization after
  ``torch.manual_seed(seed)``;
- loss: initial-condition MSE + boundary MSE + residual MSE;
- training: L-BFGS (lr 1, history 50, tolerances 1e-7, strong-Wolfe line search), one ``step``
  call that runs until L-BFGS stops by itself (at most ``max_iter`` iterations);
- error: relative L2 and mean absolute error on the full 256 x 100 grid.

The loss takes ``u_t + beta u_x`` as one forward-mode derivative (``torch.func.jvp`` along the
direction (beta, 1) in (x, t)), not with ``torch.autograd.grad``, so it runs both under plain
autograd (training, double-backward Hessian-vector products) and under ``torch.vmap`` over
stacked parameter sets (the landscape sampler's batched engine).

This module owns the PINN experiment's models, data, training and error metrics; the analysis
of the trained models belongs to the pipeline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from saddles.experiments import load_checkpoint, save_checkpoint
from saddles.io.data import Batch, LossFn, mean_variance, with_variance

__all__ = [
    "BATCH_LAYOUT",
    "convection_data",
    "convection_loss",
    "convection_loss_terms",
    "exact_solution",
    "load_checkpoint",
    "make_pinn",
    "run_pinn_experiment",
    "pinn_errors",
    "save_checkpoint",
    "solution_figure",
    "train_pinn",
]

#: Names of the tensors of a convection batch, in order (see :func:`convection_data`).
BATCH_LAYOUT = ("xt_f", "xt_0", "u_0", "xt_lb", "xt_ub")

X_MAX = 2 * math.pi


def make_pinn(seed: int = 0, width: int = 50, depth: int = 4) -> nn.Module:
    """The reference network ``(x, t) -> u``: ``depth`` hidden tanh layers of ``width`` units.

    Input is a ``(n, 2)`` tensor of (x, t) rows, output ``(n, 1)``. The defaults give the
    reference 2-50-50-50-50-1 net (7,851 parameters), initialized by PyTorch's defaults after
    ``torch.manual_seed(seed)``.
    """
    if width < 1 or depth < 1:
        raise ValueError(f"width and depth must be positive, got width={width}, depth={depth}")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    d_in = 2
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.Tanh()]
        d_in = width
    layers.append(nn.Linear(d_in, 1))
    return nn.Sequential(*layers)


def _grid(n_x: int, n_t: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference grid: x in [0, 2 pi) without its endpoint, t in [0, 1] with both ends."""
    if n_x < 2 or n_t < 2:
        raise ValueError(f"the grid needs n_x >= 2 and n_t >= 2, got n_x={n_x}, n_t={n_t}")
    return np.linspace(0, X_MAX, n_x, endpoint=False), np.linspace(0, 1, n_t)


def exact_solution(x: np.ndarray, t: np.ndarray, beta: float) -> np.ndarray:
    """``sin(x - beta t)``, the exact solution of the convection problem."""
    return np.sin(x - beta * t)


def convection_data(
    n_x: int = 256,
    n_t: int = 100,
    n_f: int = 100,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, ...]:
    """One batch in the reference layout, five tensors (names in :data:`BATCH_LAYOUT`):

    0. ``xt_f`` ``(n_f, 2)``: collocation points (x, t) where the residual is enforced;
    1. ``xt_0`` ``(n_x, 2)``: initial-condition points (x, 0);
    2. ``u_0`` ``(n_x, 1)``: ``sin x`` at those points;
    3. ``xt_lb`` ``(n_t, 2)``: lower boundary (0, t);
    4. ``xt_ub`` ``(n_t, 2)``: upper boundary (2 pi, t).

    The first tensor is the collocation set, so the batch size (:func:`saddles.io.data.batch_size`)
    is ``n_f``. Collocation points are drawn as the reference code does: the interior grid
    (x = 0 and t = 0 removed) flattened t-major, then ``numpy.random.choice`` without replacement
    after seeding numpy's legacy generator with ``seed`` (the global generator is not touched).
    """
    x, t = _grid(n_x, n_t)
    n_interior = (n_x - 1) * (n_t - 1)
    if not 1 <= n_f <= n_interior:
        raise ValueError(f"n_f must be between 1 and {n_interior} (the interior grid), got {n_f}")
    xx, tt = np.meshgrid(x[1:], t[1:])  # 'xy' indexing: rows are t, columns are x
    interior = np.stack([xx.ravel(), tt.ravel()], axis=1)
    pick = np.random.RandomState(seed).choice(interior.shape[0], n_f, replace=False)
    xt_f = interior[pick]
    xt_0 = np.stack([x, np.zeros_like(x)], axis=1)
    u_0 = np.sin(x)[:, None]
    xt_lb = np.stack([np.zeros_like(t), t], axis=1)
    xt_ub = np.stack([np.full_like(t, X_MAX), t], axis=1)
    return tuple(torch.as_tensor(a, dtype=dtype) for a in (xt_f, xt_0, u_0, xt_lb, xt_ub))


def _check_batch(batch: Batch) -> None:
    if len(batch) != len(BATCH_LAYOUT):
        raise ValueError(
            f"a convection batch has {len(BATCH_LAYOUT)} tensors {BATCH_LAYOUT}, got {len(batch)}"
        )
    for name, tensor, cols in zip(BATCH_LAYOUT, batch, (2, 2, 1, 2, 2), strict=True):
        if tensor.ndim != 2 or tensor.shape[1] != cols:
            raise ValueError(
                f"batch tensor {name} must have shape (n, {cols}), got {tuple(tensor.shape)}"
            )


def convection_loss_terms(
    model: nn.Module, batch: Batch, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three MSE terms ``(initial condition, boundary, residual)`` of the PINN loss: the
    means of :func:`convection_squares`."""
    return tuple(torch.mean(sq) for sq in convection_squares(model, batch, beta))


def convection_squares(
    model: nn.Module, batch: Batch, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The squared errors behind the three terms, one per point of each term's own set
    (initial-condition points, boundary pairs, collocation points).

    The residual ``u_t + beta u_x`` is the derivative of u along (beta, 1) in (x, t), taken by
    one ``torch.func.jvp`` through the model: vmappable and twice differentiable with respect
    to the parameters.
    """
    _check_batch(batch)
    xt_f, xt_0, u_0, xt_lb, xt_ub = batch
    ic = (model(xt_0) - u_0) ** 2
    bc = (model(xt_lb) - model(xt_ub)) ** 2
    direction = torch.tensor([beta, 1.0], dtype=xt_f.dtype, device=xt_f.device)
    _, residual = torch.func.jvp(model, (xt_f,), (direction.expand_as(xt_f),))
    return ic, bc, residual**2


def convection_loss(beta: float) -> LossFn:
    """``loss(model, batch)``: IC MSE + periodic-boundary MSE + residual MSE for ``beta``.

    The batch is the one of :func:`convection_data`. Works under plain autograd (including
    ``create_graph=True`` for Hessian-vector products) and under ``torch.vmap`` with
    ``torch.func.functional_call``.
    """
    beta = float(beta)
    if not math.isfinite(beta):
        raise ValueError(f"beta must be a finite number, got {beta}")

    def loss(model: nn.Module, batch: Batch) -> torch.Tensor:
        ic, bc, res = convection_loss_terms(model, batch, beta)
        return ic + bc + res

    def stats(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        # The loss is a sum of three means over disjoint point sets, so its squared standard
        # error is the sum of theirs (each var / n over its own points).
        squares = convection_squares(model, batch, beta)
        ic, bc, res = (torch.mean(sq) for sq in squares)
        return ic + bc + res, sum(mean_variance(sq) for sq in squares)

    loss.__name__ = loss.__qualname__ = f"convection_loss_beta_{beta:g}"
    return with_variance(loss, stats)


def train_pinn(
    beta: float,
    seed: int = 0,
    n_f: int = 100,
    max_iter: int = 100_000,
    *,
    n_x: int = 256,
    n_t: int = 100,
    data_seed: int = 0,
    dtype: torch.dtype = torch.float32,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the reference PINN for ``beta`` with L-BFGS as Krishnapriyan et al. did.

    The net is :func:`make_pinn` (``seed``); the data is :func:`convection_data` (``data_seed``,
    fixed at 0 in the reference code whatever the run's seed). One ``LBFGS.step`` call with
    lr 1, ``max_iter``, history 50, ``tolerance_grad = tolerance_change = 1e-7`` and the
    strong-Wolfe line search runs until L-BFGS stops by itself. ``callback(evaluation, loss)``
    is called after every loss evaluation.

    Returns the model (in ``dtype``) and ``info``: ``beta``, ``seed``, ``n_f``, ``loss`` (final
    total) and its terms ``loss_ic``, ``loss_bc``, ``loss_res``, ``iterations`` and
    ``function_evals`` (L-BFGS's own counters), and ``seconds`` (wall time of the step).
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    model = make_pinn(seed).to(dtype)
    batch = convection_data(n_x=n_x, n_t=n_t, n_f=n_f, seed=data_seed, dtype=dtype)
    loss_fn = convection_loss(beta)
    params = list(model.parameters())
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        history_size=50,
        tolerance_grad=1e-7,
        tolerance_change=1e-7,
        line_search_fn="strong_wolfe",
    )
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        optimizer.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        evaluations += 1
        if callback is not None:
            callback(evaluations, float(loss.detach()))
        return loss

    model.train()
    t0 = time.perf_counter()
    optimizer.step(closure)
    seconds = time.perf_counter() - t0
    state = optimizer.state[params[0]]
    with torch.no_grad():  # forward-mode derivatives still work without the backward graph
        ic, bc, res = (float(v) for v in convection_loss_terms(model, batch, float(beta)))
    info = {
        "beta": float(beta),
        "seed": seed,
        "n_f": n_f,
        "loss": ic + bc + res,
        "loss_ic": ic,
        "loss_bc": bc,
        "loss_res": res,
        "iterations": int(state.get("n_iter", 0)),
        "function_evals": int(state.get("func_evals", evaluations)),
        "seconds": seconds,
    }
    return model, info


def _predict_grid(model: nn.Module, n_x: int, n_t: int) -> tuple[np.ndarray, ...]:
    """``(x, t, u_pred)`` on the grid, each ``(n_t, n_x)`` (rows are t, as in the reference)."""
    x, t = _grid(n_x, n_t)
    xx, tt = np.meshgrid(x, t)
    param = next(model.parameters(), None)  # a parameter-free model is evaluated in float64
    dtype, device = (torch.float64, "cpu") if param is None else (param.dtype, param.device)
    xt = torch.as_tensor(np.stack([xx.ravel(), tt.ravel()], axis=1), dtype=dtype, device=device)
    with torch.no_grad():
        u = model(xt).reshape(n_t, n_x).to(torch.float64).cpu().numpy()
    return xx, tt, u


def pinn_errors(model: nn.Module, beta: float, n_x: int = 256, n_t: int = 100) -> dict[str, float]:
    """Errors of the model against ``sin(x - beta t)`` on the full ``n_x`` x ``n_t`` grid.

    ``rel_l2``: ``||u_pred - u||_2 / ||u||_2`` (the reference code's "relative error");
    ``mae``: mean of ``|u_pred - u|`` (its "absolute error"); ``max_abs``: the largest error.
    """
    xx, tt, u_pred = _predict_grid(model, n_x, n_t)
    u = exact_solution(xx, tt, float(beta))
    err = u_pred - u
    return {
        "rel_l2": float(np.linalg.norm(err) / np.linalg.norm(u)),
        "mae": float(np.mean(np.abs(err))),
        "max_abs": float(np.max(np.abs(err))),
    }


def solution_figure(model: nn.Module, beta: float, n_x: int = 256, n_t: int = 100):
    """A matplotlib figure: predicted u, exact ``sin(x - beta t)`` and ``|error|`` over (x, t).

    The figure is created without pyplot (no global state, any backend); save it with
    ``fig.savefig(path)``.
    """
    from matplotlib.figure import Figure

    xx, tt, u_pred = _predict_grid(model, n_x, n_t)
    u = exact_solution(xx, tt, float(beta))
    err = np.abs(u_pred - u)
    rel = np.linalg.norm(u_pred - u) / np.linalg.norm(u)
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    extent = (0.0, X_MAX, 0.0, 1.0)
    panels = (
        (u_pred, "predicted u", "RdBu_r", (-1.0, 1.0)),
        (u, "exact sin(x - beta t)", "RdBu_r", (-1.0, 1.0)),
        (err, "|error|", "magma", (0.0, max(float(err.max()), 1e-12))),
    )
    for ax, (field, title, cmap, (lo, hi)) in zip(axes, panels, strict=True):
        im = ax.imshow(
            field, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=lo, vmax=hi
        )
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.set_ylabel("t")
        fig.colorbar(im, ax=ax)
    fig.suptitle(f"convection, beta = {float(beta):g}: relative L2 error {rel:.3g}")
    return fig


# --- the experiment ------------------------------------------------------------------------


def _claims():
    """The paper's PINN claims (Xie et al. 2024, sec. 6.2 of the notes: beta in [1..10]), the
    primary relations of this experiment: saddles and average persistence (raw, and divided
    by the value range) rise with beta and with the absolute error, the top Hessian
    eigenvalue and the trace; the error and both Hessian numbers rise with beta."""
    from saddles.runs.relate import Claim

    src = "Xie et al. 2024, PINNs"
    out = [
        Claim("n_saddles", "beta", 1, f"more saddles with beta ({src})"),
        Claim("average_persistence", "beta", 1, f"higher average persistence with beta ({src})"),
        Claim("average_persistence_relative", "beta", 1,
              "higher average persistence / value range with beta (scale-free companion)"),
    ]  # fmt: skip
    quantities = {"mae": "absolute error", "hessian_top_eigenvalue": "top Hessian eigenvalue",
                  "hessian_trace": "Hessian trace"}  # fmt: skip
    for q, name in quantities.items():
        out += [Claim("n_saddles", q, 1, f"more saddles with higher {name} ({src})"),
                Claim("average_persistence", q, 1,
                      f"higher average persistence with higher {name} ({src})")]  # fmt: skip
    out += [Claim(q, "beta", 1, f"{name} rises with beta ({src})")
            for q, name in quantities.items()]  # fmt: skip
    return tuple(out)


#: The experiment's pre-stated (primary) relations; everything else is exploratory.
CLAIMS = _claims()


def run_pinn_experiment(
    out_dir: str | Path,
    betas: Sequence[float] = tuple(range(1, 11)),
    config: Any = None,
    *,
    n_f: int = 100,
    seed: int = 0,
    train_seeds: int = 1,
    max_iter: int = 100_000,
    progress: bool = True,
) -> dict[str, Path]:
    """Xie et al.'s PINN experiment: for each beta, train (or reuse the run directory's
    checkpoint), measure the error, analyze the landscape, then relate the metrics across betas.

    ``train_seeds``: training runs per beta, initialized with seeds ``seed``, ``seed + 1``, ...
    (each a separate model; its rows carry ``train_seed``). With more than one, summaries
    are over training runs, then direction seeds within each
    (:func:`saddles.runs.summary.seed_summary`), and each training run is one observation of
    the relations. Writes ``out_dir/beta-<b>/`` for the model trained with ``seed`` and
    ``out_dir/beta-<b>-seed<s>/`` for the others (checkpoint, and ``analysis-<config id>/``
    with the landscapes, metrics and figures of each analysis configuration), so adding
    seeds to a finished run trains only the new ones; and ``out_dir/{metrics.csv,
    relations.csv, report.html}`` for the latest configuration; returns the summary's paths.
    """
    from rich.console import Console

    from saddles.runs.analyze import AnalysisConfig

    if train_seeds < 1:
        raise ValueError(f"train_seeds must be at least 1, got {train_seeds}")
    config = config or AnalysisConfig()
    out_dir = Path(out_dir)
    console = Console(quiet=not progress)
    started = time.perf_counter()
    analyses, figures = [], {}
    for beta in betas:
        for train_seed in range(seed, seed + train_seeds):
            analysis, label, figs = _pinn_model(out_dir, float(beta), train_seed, seed, config,
                                                n_f, max_iter, console, progress)  # fmt: skip
            analyses.append(analysis)
            figures[label] = figs
    info = {"experiment": "PINN, 1D convection", "betas": [float(b) for b in betas],
            "n_f": n_f, "seed": seed, "training seeds per beta": train_seeds,
            "device": config.device, "torch threads": torch.get_num_threads(),
            "wall seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    from saddles.report.summary import summarize

    return summarize(analyses, out_dir, x_key="beta", y_metrics=["rel_l2", "mae"],
                     title="PINNs for 1D convection: loss landscape topology against beta",
                     figures=figures, info=info, claims=CLAIMS,
                     claims_source="the paper's PINN claims, notes sec. 6.2")  # fmt: skip


def _pinn_model(out_dir: Path, beta: float, train_seed: int, base_seed: int, config: Any,
                n_f: int, max_iter: int, console: Any, progress: bool):  # fmt: skip
    """Train (or load) one PINN and analyze it: ``(analysis, report label, figures)``."""
    from saddles.experiments import trained_model
    from saddles.report import plots
    from saddles.report.figures import write_figures
    from saddles.runs.analyze import analyze

    name = f"beta={beta:g}"
    suffix = "" if train_seed == base_seed else f"-seed{train_seed}"
    label = name if train_seed == base_seed else f"{name}, training seed {train_seed}"
    model_dir = out_dir / f"beta-{beta:g}{suffix}"
    # One analysis directory per analysis configuration: changing the grid or the
    # directions reuses the trained model and starts a new, separate analysis.
    analysis_dir = model_dir / f"analysis-{config.short_id()}"
    settings = {"beta": beta, "seed": train_seed, "n_f": n_f, "max_iter": max_iter}
    t0 = time.perf_counter()
    model, info, loaded = trained_model(
        model_dir, settings, lambda: make_pinn(train_seed),
        lambda: _strip(train_pinn(beta, seed=train_seed, n_f=n_f, max_iter=max_iter)),
    )  # fmt: skip
    errors = pinn_errors(model, beta)
    console.print(f"[bold]{label}[/]: {'loaded' if loaded else 'trained'} in "
                  f"{time.perf_counter() - t0:.1f} s, final loss {info['loss']:.3g}, "
                  f"relative L2 error {errors['rel_l2']:.3g}")  # fmt: skip
    quality = {"beta": beta, "train_seed": train_seed, "rel_l2": errors["rel_l2"],
               "mae": errors["mae"], "train_loss": float(info["loss"])}  # fmt: skip
    analysis = analyze(model, convection_loss(beta), convection_data(n_f=n_f), config,
                       name=name, quality=quality, run_dir=analysis_dir,
                       progress=progress)  # fmt: skip
    figs = write_figures(analysis, analysis_dir / "figures")
    figs["predicted vs exact solution"] = plots.save(
        solution_figure(model, beta), analysis_dir / "figures" / "solution.png"
    )
    return analysis, label, figs


def _strip(result: tuple[nn.Module, dict[str, Any]]) -> tuple[nn.Module, dict[str, Any]]:
    """Keep only JSON-friendly training info."""
    model, info = result
    return model, {k: v for k, v in info.items() if isinstance(v, (int, float, str))}
