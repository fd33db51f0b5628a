"""The experiment's hypotheses H1-H4, as numbers with CIs, and their report section.

The questions asked of a multi-size run (one row per checkpoint and size, from
:func:`saddles.runs.series.analyze_checkpoints`):

- H1: do saddles fall during training, and does their rate of fall relate to the final loss
  across sizes (Spearman trends in log step, with bootstrap CIs);
- H2: is average persistence non-monotone in time (slope changes of a piecewise-linear fit in
  log step);
- H3: does an early metric follow a power law in size, and does it improve leave-one-size-out
  prediction of the final loss;
- H4: do kD metrics predict better than 2D ones.

These are the experiment's pre-stated questions: the entries that are tests (a Spearman
correlation with a permutation p) form one primary family, Holm-adjusted on its own
(``p_holm``), and each gets the sentence its numbers allow (``verdict``:
:func:`saddles.runs.relate.verdict`, e.g. "untestable: the smallest permutation p these 3
runs allow is 0.333"). With few sizes the rest are descriptions: nothing here declares a
hypothesis true or false.

Owns the hypotheses only: imports numpy, :mod:`saddles.runs.relate` (the statistics) and
:mod:`saddles.report.html` (its HTML pieces); no torch of its own, nothing of the model,
training or experiment modules of this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from saddles.report.html import escape, figures_and_table


def hypothesis_table(
    rows: list[dict[str, Any]],
    metric: str,
    persistence_metric: str,
    *,
    size_key: str = "n_params",
    early_step: int | None = None,
    kd_metrics: list[str] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Numbers, with CIs where they exist, for the notes' hypotheses on a multi-size run.

    ``rows``: the dynamics rows of every size (``size_key`` tells the sizes apart);
    ``metric``: a saddle-count column (H1, H3); ``persistence_metric``: an average persistence
    column (H2). ``early_step``: the step whose metrics are used to predict (default: the
    second-smallest step present in every size). ``kd_metrics``: kD columns compared with
    ``metric`` in H4. Each entry is ``{hypothesis, quantity, value, ci_low, ci_high, n, p,
    p_holm, verdict, note}``: ``p`` a permutation p where the entry is a test (NaN
    otherwise), ``p_holm`` Holm over those tests (the primary family), ``verdict`` the
    sentence of :func:`saddles.runs.relate.verdict` for a test, "" for a description.
    """
    from saddles.runs.relate import change_points, correlate, fit_power_law, loo_errors, trend

    sizes = sorted({r[size_key] for r in rows})
    by_size = {
        s: sorted([r for r in rows if r[size_key] == s], key=lambda r: r["step"]) for s in sizes
    }
    out: list[dict[str, Any]] = []

    def add(h, quantity, value, ci=(np.nan, np.nan), n=np.nan, note="", p=np.nan, p_min=np.nan):
        out.append(
            {
                "hypothesis": h,
                "quantity": quantity,
                "value": float(value),
                "ci_low": float(ci[0]),
                "ci_high": float(ci[1]),
                "n": n,
                "p": float(p),
                "p_min": float(p_min),
                "note": note,
            }
        )

    final_loss = {s: _last(by_size[s], "val_loss") for s in sizes}
    slopes = {}
    for s in sizes:
        steps = [max(r["step"], 1) for r in by_size[s]]
        t = trend(steps, [r.get(metric, np.nan) for r in by_size[s]], seed=seed)
        slopes[s] = t.slope_per_log_step
        add("H1", f"Spearman({metric}, step), size {s}", t.spearman, t.spearman_ci, t.n,
            t.note, t.p, t.p_min)  # fmt: skip
        add(
            "H1",
            f"slope of {metric} per e-fold of steps, size {s}",
            t.slope_per_log_step,
            t.slope_ci,
            t.n,
        )
    c = correlate([slopes[s] for s in sizes], [final_loss[s] for s in sizes], seed=seed)
    add(
        "H1",
        "Spearman(slope of saddles, final val loss) across sizes",
        c.spearman,
        c.spearman_ci,
        c.n,
        f"permutation p = {c.spearman_p:.3g}",
        c.spearman_p,
        c.p_min,
    )

    for s in sizes:
        xs = [np.log(max(r["step"], 1)) for r in by_size[s]]
        ys = [r.get(persistence_metric, np.nan) for r in by_size[s]]
        ok = np.isfinite(ys)
        if ok.sum() >= 4:
            cp = change_points(np.array(xs)[ok], np.array(ys)[ok])
            where = ", ".join(f"step {np.exp(b):.0f}" for b in cp.breaks) or "none"
            add(
                "H2",
                f"{persistence_metric}: slope changes, size {s}",
                len(cp.breaks),
                n=int(ok.sum()),
                note=f"non-monotone fit: {not cp.monotone}; breaks: {where}",
            )

    common = set.intersection(*[{r["step"] for r in by_size[s]} for s in sizes]) if sizes else set()
    steps_sorted = sorted(common)
    if early_step is None and len(steps_sorted) >= 2:
        early_step = steps_sorted[1]
    if early_step is not None and early_step not in common:
        raise ValueError(
            f"early_step {early_step} is not a checkpoint of every size; steps present in all "
            f"sizes: {steps_sorted}"
        )
    if early_step is not None and len(sizes) >= 3:
        early = {s: next(r for r in by_size[s] if r["step"] == early_step) for s in sizes}
        n_par = np.array([float(s) for s in sizes])
        early_metric = np.array([early[s].get(metric, np.nan) for s in sizes], dtype=float)
        if np.isfinite(early_metric).all() and (early_metric > 0).all() and len(sizes) >= 3:
            try:
                fit = fit_power_law(n_par, early_metric, offset=False, n_boot=500, seed=seed)
                # metric = a N^b with b = -alpha: report b and its CI.
                add(
                    "H3",
                    f"power-law exponent of {metric} at step {early_step} in size",
                    -fit.alpha,
                    (-fit.alpha_ci[1], -fit.alpha_ci[0]),
                    len(sizes),
                    f"residual RMS {np.sqrt(np.mean(fit.residuals**2)):.3g}",
                )
            except (RuntimeError, ValueError) as exc:
                add("H3", "power-law fit of the early metric", np.nan, note=str(exc))
        target = np.array([final_loss[s] for s in sizes], dtype=float)
        early_loss = np.array([early[s].get("val_loss", np.nan) for s in sizes], dtype=float)
        if len(sizes) >= 3 and np.isfinite(target).all():
            for label, feat in (
                ("early val loss alone", early_loss[:, None]),
                (f"early val loss + {metric}", np.column_stack([early_loss, early_metric])),
            ):
                if np.isfinite(feat).all() and len(sizes) >= feat.shape[1] + 2:
                    err = loo_errors(feat, target)
                    add(
                        "H3",
                        f"leave-one-size-out |error| of final val loss: {label}",
                        err.mean(),
                        n=len(sizes),
                    )
            for col in kd_metrics or []:
                feat = np.array([early[s].get(col, np.nan) for s in sizes], dtype=float)
                base = early_metric
                if np.isfinite(feat).all() and np.isfinite(base).all() and len(sizes) >= 3:
                    add(
                        "H4",
                        f"leave-one-size-out |error|: {col} vs {metric}",
                        loo_errors(feat, target).mean() - loo_errors(base, target).mean(),
                        n=len(sizes),
                        note="negative: the kD metric predicts better",
                    )
    out += missing_ingredients(rows, metric, persistence_metric)
    _mark_family(out)
    return out


#: The ``quantity`` of an entry that says why hypotheses cannot be asked of these runs.
MISSING = "what is missing"


def missing_ingredients(
    rows: list[dict[str, Any]], metric: str, persistence_metric: str
) -> list[dict[str, Any]]:
    """Entries naming what the runs lack for a hypothesis, where a metric it needs never
    changes: H1 and H3 ask how saddles move with steps and sizes, which a saddle count that is
    the same at every checkpoint of every size (one basin everywhere, at the span sampled)
    cannot answer; H2 likewise for a constant persistence. Empty where every metric moves."""
    out = []
    asks = ((metric, "H1, H3", "saddles"), (persistence_metric, "H2", "persistence"))
    for column, which, what in asks:
        values = {float(r[column]) for r in rows if _finite(r.get(column))}
        if len(values) != 1:
            continue
        spans = sorted({str(r["sweep_span"]) for r in rows if r.get("sweep_span")})
        where = f"spans {', '.join(spans)}" if spans else "the span sampled"
        note = (f"{column} is the same at every checkpoint of every size, at {where}: no "
                f"{what} to follow. Missing: a feature above the noise floor; sample a span "
                "sweep (span: auto) or the plane of the top and most negative Hessian "
                "eigenvectors (hessian_which: top_bottom)")  # fmt: skip
        out.append({"hypothesis": which, "quantity": MISSING, "value": values.pop(),
                    "ci_low": np.nan, "ci_high": np.nan, "n": len(rows), "p": np.nan,
                    "p_min": np.nan, "note": note})  # fmt: skip
    return out


def _finite(value: Any) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _mark_family(entries: list[dict[str, Any]]) -> None:
    """Holm over the entries that are tests (a finite ``p``), the primary family; each gets
    ``p_holm`` and ``verdict`` (NaN and "" for descriptions)."""
    from saddles.runs.relate import adjust_pvalues, verdict

    adjusted = adjust_pvalues(np.array([e["p"] for e in entries], dtype=float))
    size = int(np.isfinite([e["p"] for e in entries]).sum())
    for e, q in zip(entries, adjusted, strict=True):
        e["p_holm"] = float(q)
        if not np.isfinite(e["p"]):
            e["verdict"] = ""
            continue
        as_relation = {"spearman": e["value"], "spearman_ci_low": e["ci_low"],
                       "spearman_ci_high": e["ci_high"], "spearman_p_holm": e["p_holm"],
                       "p_min": e["p_min"], "n": e["n"], "note": e["note"]}  # fmt: skip
        e["verdict"] = verdict(as_relation, size)


def _last(rows: list[dict[str, Any]], key: str) -> float:
    for r in reversed(rows):
        v = r.get(key)
        if v is not None and np.isfinite(float(v)):
            return float(v)
    return float("nan")


def hypotheses_section(
    figures: dict[str, Path], hypotheses: list[dict[str, Any]], scaling_note: str
) -> str:
    """HTML body of the report's dynamics section (the page shell adds its heading):
    metric-vs-step curves per size, the scaling plot with its fit, and the hypothesis table
    (numbers with CIs; the tests among them Holm-adjusted as one family and worded)."""
    missing = [h for h in hypotheses if h.get("quantity") == MISSING]
    hypotheses = [h for h in hypotheses if h.get("quantity") != MISSING]
    several = len({h.get("train_seed") for h in hypotheses}) > 1
    cols = [*(["train_seed"] * several), "hypothesis", "quantity", "value", "ci_low",
            "ci_high", "n", "p", "p_holm", "verdict", "note"]  # fmt: skip
    return (
        "<p class='note'>Each metric against the training step, one line per model size, "
        "from the same checkpoints, data order and evaluation batch. H1: do saddles fall "
        "during training, and does their rate of fall relate to the final loss across sizes; "
        "H2: is average persistence non-monotone in time (slope changes of a piecewise-linear "
        "fit in log step); H3: does an early metric follow a power law in size, and does it "
        "improve leave-one-size-out prediction of the final loss; H4: do kD metrics predict "
        "better than 2D ones. The entries with a p are the pre-stated tests, Holm-adjusted "
        "together (p_holm) and worded by what their intervals and run counts allow; the "
        "rest are descriptions, not tests.</p>"
        + "".join(
            dict.fromkeys(
                f"<p><b>{escape(h['hypothesis'])} cannot be asked of these "
                f"runs:</b> {escape(h['note'])}.</p>"
                for h in missing
            )
        )
        + f"<p>{escape(scaling_note)}</p>"
        + figures_and_table(figures, hypotheses, cols)
    )
