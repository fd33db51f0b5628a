"""The experiment: topology and curvature over training, across model sizes.

:func:`run_lm_training` trains every size of a preset with the same data, data order, schedule
and seed (resumable); :func:`run_lm_experiment` then analyzes every checkpoint of every size
(incremental, :func:`saddles.runs.series.analyze_checkpoints`), fits final loss against size, and
writes ``dynamics.csv``, ``hypotheses.csv`` (:mod:`saddles.experiments.lm.hypotheses`), the
figures and ``report.html``.

Owns the experiment's orchestration: may import every other module of this package; the
analysis, plotting and report modules of :mod:`saddles` are imported when it runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saddles.experiments.lm.data import char_corpus, encode, fixed_eval_batch, train_val_split
from saddles.experiments.lm.hypotheses import hypotheses_section, span_hypotheses
from saddles.experiments.lm.model import GPT, lm_loss
from saddles.experiments.lm.presets import PRESETS, _size_name, gpt_for_size
from saddles.experiments.lm.train import log_spaced_steps, train_lm
from saddles.names import LM_POLICY, LM_TRAIN_SEEDS

# --- training every size -------------------------------------------------------------------


def run_lm_training(
    out_dir: str | os.PathLike,
    preset: str = "small",
    sizes: Sequence[str | int] | None = None,
    steps: int | None = None,
    seed: int = 0,
    *,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Train every size of ``PRESETS[preset]`` (or ``sizes``) into ``out_dir/<size>/checkpoints``
    with the same data, data order, schedule and seed; returns ``{size: checkpoint directory}``.

    Resumable: finished runs are skipped and interrupted ones continue (see :func:`train_lm`).
    ``steps`` overrides the preset's; ``device`` its device (``"auto"``: cuda when available).
    The small preset (1,000 steps at 16 x 64 tokens) measured on a shared CPU, one thread:
    0.003, 0.014, 0.037 and 0.085 s per step for its four sizes, about 150 s of wall time per
    training seed including evaluations; final val loss (nats per character) 1.79, 1.55,
    1.43, 1.38 with seed 0 and 1.83, 1.59, 1.51, 1.45 with seed 1.
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    p = PRESETS[preset]
    names = [_size_name(s) for s in (sizes if sizes is not None else p.sizes)]
    steps = p.steps if steps is None else steps
    device = device or p.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    text, vocab = char_corpus()
    train_ids, val_ids = train_val_split(encode(text, vocab))
    out_dir = Path(out_dir)
    dirs = {}
    for name in names:
        ckpt_dir = out_dir / name / "checkpoints"
        model = gpt_for_size(name, len(vocab), p.block_size, seed)

        def report(record: dict, name: str = name) -> None:
            if progress:
                print(
                    f"{name} step {record['step']:>6}: train {record['train_loss']:.3f}, "
                    f"val {record['val_loss']:.3f} ({record['seconds']:.0f} s)",
                    flush=True,
                )

        info = train_lm(
            model,
            train_ids,
            val_ids,
            steps=steps,
            batch_size=p.batch_size,
            block_size=p.block_size,
            lr=p.lr,
            weight_decay=p.weight_decay,
            warmup=min(p.warmup, steps),
            seed=seed,
            checkpoint_dir=ckpt_dir,
            checkpoint_steps=log_spaced_steps(steps, p.n_checkpoints),
            eval_batch_size=p.eval_batch_size,
            device=device,
            callback=report,
        )
        if progress:
            speed = (
                "already trained"
                if info["resumed_from"] == steps
                else f"{info['seconds_per_step']:.3f} s/step"
            )
            print(
                f"{name}: {info['params']:,} parameters, final val loss "
                f"{info['final_val_loss']:.3f} ({speed})"
            )
        dirs[name] = ckpt_dir
    return dirs


# --- analyzing every checkpoint, the hypotheses and the report -----------------------------


#: The spans every landscape of the default configurations is sampled at: half-decades where
#: the small preset's models show features on the plane of the top and most negative Hessian
#: eigenvectors (a 2-D probe of L2-d64 at steps 63, 251 and 1000: a saddle from 0.003 to 0.3,
#: above the batch floor at 0.01-0.1 at step 251, one basin above 1).
LM_SPANS = [0.003, 0.01, 0.03, 0.1, 0.3]


def default_lm_configs(seed: int = 0) -> dict[str, Any]:
    """Per checkpoint, sized for a CPU: a 15 x 15 grid (Hessian metrics) and a 4-D Sobol
    sample of 256 points with a kNN graph, each at every span of :data:`LM_SPANS`, with a
    batch noise floor from the evaluation batch's two halves and the arithmetic one. With the
    experiment's default policy ("hessian") the planes are those of the top and most negative
    Hessian eigenvectors (``hessian_which: top_bottom``), the directions that cut saddles;
    random planes show one basin at every span on these models."""
    from saddles.runs.analyze import AnalysisConfig

    shared = dict(span=LM_SPANS, batch_floor=2, noise_points=8, hessian_which="top_bottom",
                  seed=seed)  # fmt: skip
    return {
        "2d": AnalysisConfig(resolution=15, representations=["grid-full"], hessian_top_k=2,
                             trace_matvecs=20, density_lanczos=20, **shared),
        "4d": AnalysisConfig(sampling="sobol", n_points=256, n_directions=4,
                             representations=["knn"], hessian=False, **shared),
    }  # fmt: skip


def run_lm_experiment(
    out_dir: str | os.PathLike,
    preset: str = "small",
    *,
    sizes: Sequence[str | int] | None = None,
    steps: int | None = None,
    seed: int = 0,
    train_seeds: int = LM_TRAIN_SEEDS,
    configs: dict[str, Any] | None = None,
    policy: str = LM_POLICY,
    eval_batch_size: int = 8,
    device: str | None = None,
    executor: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Train every size (resumable), analyze every checkpoint of every size (incremental),
    then write ``dynamics.csv``, ``hypotheses.csv``, the figures and ``report.html``.

    Landscapes use one fixed batch of ``eval_batch_size`` training windows for every checkpoint
    and size. Returns the paths written. ``executor="ray"`` analyzes ``workers`` checkpoints
    at once, one per Ray worker (:func:`saddles.runs.series.analyze_checkpoints`; the same
    numbers as in this process).

    ``train_seeds``: training runs per size (seeds ``seed``, ``seed + 1``, ...: initialization
    and data order; the evaluation batch and directions stay those of ``seed``). The run of
    ``seed`` lives in ``training/`` and ``analysis/``, the others in ``training-seed<s>/`` and
    ``analysis-seed<s>/`` (finished ones reused); rows carry ``train_seed``. With several,
    ``summary.csv`` gives each size x step over training runs, then direction seeds (mean,
    hierarchical interval, each level's variance share: :func:`saddles.runs.summary.
    seed_summary`), the relations take each training run as one observation, and the
    hypotheses pool the training runs of each size
    (:func:`saddles.experiments.lm.hypotheses.hypothesis_table`).

    A span sweep (the default configurations: :data:`LM_SPANS`) gives the hypotheses at each
    span, one Holm family over all (:func:`saddles.experiments.lm.hypotheses.span_hypotheses`;
    a ``span`` column in hypotheses.csv); the saddle count they follow is the count above the
    noise floor where one is measured (``n_saddles_above_noise``), the raw count otherwise.
    """
    from saddles.report import plots, spans
    from saddles.report.analysis import write_report
    from saddles.runs.analyze import write_csv
    from saddles.runs.relate import power_laws, relations_from_rows
    from saddles.runs.rows import planes_from_checkpoints, wide_name
    from saddles.runs.series import analyze_checkpoints, with_policy

    started = time.perf_counter()
    out_dir = Path(out_dir)
    if train_seeds < 1:
        raise ValueError(f"train_seeds must be at least 1, got {train_seeds}")
    runs = {s: (out_dir / ("training" if s == seed else f"training-seed{s}"),
                out_dir / ("analysis" if s == seed else f"analysis-seed{s}"))
            for s in range(seed, seed + train_seeds)}  # fmt: skip
    trained = {s: run_lm_training(train_dir, preset, sizes, steps, s, device=device,
                                  progress=progress)
               for s, (train_dir, _) in runs.items()}  # fmt: skip
    ckpt_dirs = trained[seed]
    p = PRESETS[preset]
    text, vocab = char_corpus()
    train_ids, _ = train_val_split(encode(text, vocab))
    eval_batch = fixed_eval_batch(train_ids, eval_batch_size, p.block_size, seed)
    configs = configs or default_lm_configs(seed)
    rows: list[dict[str, Any]] = []
    for train_seed, dirs in trained.items():
        for size, ckdir in dirs.items():
            model_cfg = json.loads((ckdir / "run.json").read_text())["model"]
            n_params = sum(t.numel() for t in GPT(**model_cfg).parameters())
            if progress:
                print(f"analyzing the checkpoints of {size}, training seed {train_seed} "
                      f"({n_params:,} parameters)", flush=True)  # fmt: skip
            rows += analyze_checkpoints(
                lambda cfg=model_cfg: GPT(**cfg), ckdir, lm_loss, eval_batch, configs,
                runs[train_seed][1] / size, policy=policy, run_name=size,
                extra={"size": size, "n_params": n_params, "train_seed": train_seed},
                progress=progress, executor=executor, workers=workers,
            )  # fmt: skip
    for r in rows:
        r["model"] = f"{r['size']}@{r['step']}"
    paths = {"dynamics": write_csv(out_dir / "dynamics.csv", rows)}
    if train_seeds > 1:
        from saddles.runs.summary import seed_summary

        first = next(iter(configs.values())).representations[0]
        paths["summary"] = write_csv(
            out_dir / "summary.csv",
            seed_summary(
                [{**r, "direction": policy, "representation": first} for r in rows], n_boot=1000
            ),
        )

    label = next(iter(configs))
    rep = configs[label].representations[0]
    noisy = configs[label].noise_points > 0 or bool(configs[label].batch_floor)
    count = "n_saddles_above_noise" if noisy else "n_saddles"
    columns = {}  # span -> the hypotheses' columns (H1/H3 count, H2 persistence, H4 kD counts)
    for tag in _span_tags(rows, label, rep):
        at = f"{rep}@{tag}" if tag else rep
        kd = [wide_name(k, f"{c.representations[0]}@{tag}" if tag else c.representations[0],
                        count) for k, c in configs.items() if k != label]  # fmt: skip
        columns[_span_label(tag)] = (wide_name(label, at, count),
                                     wide_name(label, at, "average_persistence"), kd)  # fmt: skip
    hypotheses = span_hypotheses(rows, columns, seed=seed)
    paths["hypotheses"] = write_csv(out_dir / "hypotheses.csv", hypotheses)

    scale_cols = [wide_name(label, rep, m) for m in ("critical_span", "basin_radius")]
    drawn = ["val_loss", *(c for cols in columns.values() for c in cols[:2]), *scale_cols,
             "top_eigenvalue", "bottom_eigenvalue", "trace"]  # fmt: skip
    means = _mean_over_runs(rows, drawn)
    figures, constant = {}, {}
    for metric in drawn:
        values = {float(r[metric]) for r in rows if _finite(r.get(metric))}
        if len(values) == 1:  # the same at every checkpoint of every size: said, not drawn
            constant[metric] = values.pop()
        elif values:
            safe = metric.replace(".", "-").replace("@", "-")
            fig = plots.dynamics_figure(means, metric, "size", err_key=f"{metric}_sd")
            figures[f"{metric} against step"] = plots.save(fig, out_dir / f"dynamics-{safe}.png")
    if any(columns):  # a sweep: each size's metrics against the span, a line per step
        for size in dict.fromkeys(r["size"] for r in rows):
            planes = [p for p in planes_from_checkpoints([r for r in rows if r["size"] == size])
                      if p["subspace"] == label and p["representation"] == rep]  # fmt: skip
            points = spans.span_points(planes, list(SPAN_METRICS), "step")
            fig = plots.span_figure(points, list(SPAN_METRICS), "step",
                                    title=f"{size}: the scale sweep (mean over training runs, "
                                    "bars: their SD)", line_label="step")  # fmt: skip
            figures[f"{size}: metrics against the span"] = plots.save(
                fig, out_dir / f"spans-{size}.png"
            )
    finals = {}
    for r in rows:
        finals[r["size"], r["train_seed"]] = r  # rows are ordered by step within a run
    final_rows = list(finals.values())
    n = [r["n_params"] for r in final_rows]
    loss = [float(r.get("val_loss", np.nan)) for r in final_rows]
    fit, note = None, "fewer than 3 sizes: no power-law fit"
    sizes_seen = len(set(n))
    if sizes_seen >= 3 and np.isfinite(loss).all():
        fits: dict[tuple, Any] = {}
        (law,) = power_laws(final_rows, ["val_loss"], by=(), n_boot=500, seed=seed,
                            fits=fits)  # fmt: skip
        fit = fits.get(("val_loss",))
        if fit is None:
            note = f"power-law fit failed: {law['note']}"
        else:
            note = (f"final val loss = {fit.a:.3g} N^-{fit.alpha:.3g} + {fit.c:.3g}, alpha 95% "
                    f"CI [{fit.alpha_ci[0]:.3g}, {fit.alpha_ci[1]:.3g}] over {len(n)} training "
                    f"runs of {sizes_seen} sizes"
                    + ("" if sizes_seen >= 4 else " (c fixed at 0: 3 sizes cannot fit 3 "
                       "parameters with any check left)"))  # fmt: skip
    if constant:
        note += (". The same at every checkpoint of every size (not drawn): "
                 + ", ".join(f"{m} = {v:g}" for m, v in constant.items()))  # fmt: skip
    figures["final val loss against size"] = plots.save(
        plots.scaling_figure(n, loss, fit), out_dir / "scaling.png"
    )
    tda = list(dict.fromkeys(c for cols in columns.values() for c in (*cols[:2], *cols[2])))
    relations = relations_from_rows(
        [{**r, "direction": policy, "representation": rep} for r in final_rows], tda,
        ["n_params", "val_loss"], n_boot=2000, n_perm=5000, seed=seed,
    )  # fmt: skip
    info = {"experiment": f"character-level GPT, preset {preset}", "sizes": list(ckpt_dirs),
            "training seeds per size": train_seeds,
            "checkpoints analyzed": len(rows), "direction policy": policy,
            "spans": ", ".join(s for s in columns if s) or "one",
            "torch threads": torch.get_num_threads(),
            "wall seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    cfg = {k: with_policy(c, policy).to_dict() for k, c in configs.items()}
    cfg["representations"] = [rep]
    table = ["model", "train_seed", "step", "val_loss", *scale_cols,
             *(cols[0] for cols in columns.values()), "top_eigenvalue", "bottom_eigenvalue",
             "trace"]  # fmt: skip
    paths["report"] = write_report(
        out_dir / "report.html", title=f"Loss landscape topology over training ({preset})",
        config=cfg, analyses=[], figures={}, rows=rows, relations=relations,
        relation_figures={}, info=info,
        extra_sections=[("Dynamics", hypotheses_section(figures, hypotheses, note))],
        table_columns=table,
    )  # fmt: skip
    return paths


def _span_tags(rows: list[dict[str, Any]], label: str, rep: str) -> list[str]:
    """The span tags of a sweep's columns ``<label>.<rep>@<tag>.<metric>``, smallest span
    first; ``[""]`` without a sweep."""
    from saddles.landscape.scales import span_from_tag

    prefix = f"{label}.{rep}@"
    tags = {k[len(prefix) :].split(".", 1)[0] for r in rows for k in r if k.startswith(prefix)}
    return sorted(tags, key=span_from_tag) or [""]


def _span_label(tag: str) -> str:
    """A span tag as the number it stands for (``0p01`` -> ``0.01``); "" for none."""
    from saddles.landscape.scales import span_from_tag

    return f"{span_from_tag(tag):g}" if tag else ""


#: Metrics of each size's scale-sweep figure.
SPAN_METRICS = ("n_saddles", "n_saddles_above_noise", "average_persistence", "noise_floor")


def _mean_over_runs(rows: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    """One row per size x step: each metric's mean over training runs and its SD
    (``<metric>_sd``, NaN for one run), for curves with error bars over training seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["size"], r["step"]), []).append(r)
    out = []
    for (size, step), own in groups.items():
        row: dict[str, Any] = {"size": size, "step": step}
        for m in metrics:
            v = np.array([float(r[m]) for r in own if _finite(r.get(m))])
            row[m] = float(v.mean()) if len(v) else np.nan
            row[f"{m}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else np.nan
        out.append(row)
    return out


def _finite(v: Any) -> bool:
    """A number (not a bool) that is neither NaN nor inf."""
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    return bool(ok and np.isfinite(v))
