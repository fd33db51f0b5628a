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
:mod:`saddles.report.html` (its HTML pieces), :mod:`saddles.runs.rows` (reading a row's numbers);
no torch of its own, nothing of the model,
training or experiment modules of this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from saddles.report.html import escape, figures_and_table
from saddles.runs.rows import as_number


def hypothesis_table(
    rows: list[dict[str, Any]],
    metric: str,
    persistence_metric: str,
    *,
    size_key: str = "n_params",
    run_key: str = "train_seed",
    early_step: int | None = None,
    kd_metrics: list[str] | None = None,
    seed: int = 0,
    family: bool = True,
    where: str | None = None,
) -> list[dict[str, Any]]:
    """Numbers, with intervals where they exist, for the notes' hypotheses on a multi-size
    run, pooled over the training runs of each size.

    ``rows``: the dynamics rows of every size (``size_key`` tells the sizes apart, ``run_key``
    the training runs of one size; rows without it are one run); ``metric``: a saddle-count
    column (H1, H3); ``persistence_metric``: an average persistence column (H2).
    ``early_step``: the step whose metrics are used to predict (default: the second-smallest
    step present in every run). ``kd_metrics``: kD columns compared with ``metric`` in H4.
    ``where``: the span these columns were sampled at, for :func:`missing_ingredients`.

    Pooling: H1's trend per size takes every checkpoint of every training run of that size
    (n = runs x checkpoints; its permutation p shuffles values within each run, so a run's
    own level is no trend); its across-size test relates each size's runs' slopes to the
    size's mean final loss (n = sizes, the interval widened by the spread over runs:
    :func:`saddles.runs.relate.correlate_ensemble`; 4 sizes allow no p below 0.083); H2 fits
    the mean over runs at each step and counts the runs whose own fit turns; H3 and H4 fit
    every run and leave one size out at a time (all its runs together).

    Each entry is ``{hypothesis, quantity, value, ci_low, ci_high, n, p, p_min, note}`` and,
    with ``family`` (the default), ``p_holm`` and ``verdict``: Holm over the entries that are
    tests (a permutation p), the primary family, and the sentence of
    :func:`saddles.runs.relate.verdict` ("" for descriptions). Several tables (e.g. one per
    span, :func:`span_hypotheses`) are one family: pass ``family=False`` and mark them
    together.
    """
    from saddles.runs.relate import (
        change_points,
        correlate_ensemble,
        fit_power_law,
        loo_errors,
        trend,
    )

    sizes = sorted({r[size_key] for r in rows})
    runs: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        runs.setdefault((r[size_key], r.get(run_key, 0)), []).append(r)
    runs = {k: sorted(v, key=lambda r: r["step"]) for k, v in sorted(runs.items(), key=_key)}
    of_size = {s: [k for k in runs if k[0] == s] for s in sizes}
    several = any(len(v) > 1 for v in of_size.values())
    out: list[dict[str, Any]] = []

    def add(h, quantity, value, ci=(np.nan, np.nan), n=np.nan, note="", p=np.nan, p_min=np.nan):
        out.append({"hypothesis": h, "quantity": quantity, "value": float(value),
                    "ci_low": float(ci[0]), "ci_high": float(ci[1]), "n": n, "p": float(p),
                    "p_min": float(p_min), "note": note})  # fmt: skip

    def pooled(s: Any) -> str:
        k = len(of_size[s])
        return f"{k} training runs pooled" if k > 1 else ""

    final_loss = {k: _last(v, "val_loss") for k, v in runs.items()}
    slopes = {}
    for k, own in runs.items():
        t = trend([max(r["step"], 1) for r in own], [r.get(metric, np.nan) for r in own],
                  seed=seed)  # fmt: skip
        slopes[k] = t.slope_per_log_step
    for s in sizes:
        own = [r for k in of_size[s] for r in runs[k]]
        t = trend([max(r["step"], 1) for r in own], [r.get(metric, np.nan) for r in own],
                  seed=seed)  # fmt: skip
        p, p_min, notes = t.p, t.p_min, [pooled(s), t.note]
        if len(of_size[s]) > 1 and np.isfinite(t.spearman):
            p, p_min = within_runs_p([runs[k] for k in of_size[s]], metric, t.spearman, seed)
            notes.append("p from permutations within each run; the interval treats the "
                         "checkpoints as independent")  # fmt: skip
        add("H1", f"Spearman({metric}, step), size {s}", t.spearman, t.spearman_ci, t.n,
            "; ".join(x for x in notes if x), p, p_min)  # fmt: skip
        add("H1", f"slope of {metric} per e-fold of steps, size {s}", t.slope_per_log_step,
            t.slope_ci, t.n, pooled(s))  # fmt: skip
    # Across sizes, the size is the unit: its runs' slopes against its mean final loss (the
    # runs of one size share most of both, so counting them apart would overstate n).
    c = correlate_ensemble(
        [np.mean([final_loss[k] for k in of_size[s]]) for s in sizes],
        [[slopes[k] for k in of_size[s]] for s in sizes], seed=seed,
    )  # fmt: skip
    add("H1", "Spearman(slope of saddles, final val loss) across sizes", c.estimate, c.ci,
        c.n_models, f"permutation p = {c.p:.3g} over sizes"
        + (f"; interval widened by the spread over {c.n_seeds_max} training runs"
           if c.n_seeds_max > 1 else "") + (f"; {c.note}" if c.note else ""),
        c.p, c.p_min)  # fmt: skip

    for s in sizes:
        steps = sorted(set.intersection(*[{r["step"] for r in runs[k]} for k in of_size[s]]))
        at = [[_value(r, persistence_metric) for k in of_size[s] for r in runs[k]
               if r["step"] == t] for t in steps]  # fmt: skip
        mean = np.array([np.mean(v) for v in at])
        xs = np.log(np.maximum(np.array(steps, dtype=float), 1))
        ok = np.isfinite(mean)
        if ok.sum() < 4:
            continue
        cp = change_points(xs[ok], mean[ok])
        breaks = ", ".join(f"step {np.exp(b):.0f}" for b in cp.breaks) or "none"
        note = f"non-monotone fit: {not cp.monotone}; breaks: {breaks}"
        if len(of_size[s]) > 1:
            turning = 0
            for k in of_size[s]:
                x = np.log(np.maximum([r["step"] for r in runs[k]], 1))
                y = np.array([_value(r, persistence_metric) for r in runs[k]], dtype=float)
                fine = np.isfinite(y)
                turning += fine.sum() >= 4 and not change_points(x[fine], y[fine]).monotone
            note += f"; mean over {len(of_size[s])} training runs, {turning} of them turn alone"
        add("H2", f"{persistence_metric}: slope changes, size {s}", len(cp.breaks),
            n=int(ok.sum()), note=note)  # fmt: skip

    common = set.intersection(*[{r["step"] for r in v} for v in runs.values()]) if runs else set()
    steps_sorted = sorted(common)
    if early_step is None and len(steps_sorted) >= 2:
        early_step = steps_sorted[1]
    if early_step is not None and early_step not in common:
        raise ValueError(
            f"early_step {early_step} is not a checkpoint of every size; steps present in all "
            f"sizes: {steps_sorted}"
        )
    if early_step is not None and len(sizes) >= 3:
        keys = list(runs)
        early = {k: next(r for r in v if r["step"] == early_step) for k, v in runs.items()}
        n_par = np.array([float(k[0]) for k in keys])
        groups = [str(k[0]) for k in keys]
        early_metric = np.array([_value(early[k], metric) for k in keys])
        if np.isfinite(early_metric).all() and (early_metric > 0).all():
            try:
                fit = fit_power_law(n_par, early_metric, offset=False, n_boot=500, seed=seed)
                # metric = a N^b with b = -alpha: report b and its CI.
                add("H3", f"power-law exponent of {metric} at step {early_step} in size",
                    -fit.alpha, (-fit.alpha_ci[1], -fit.alpha_ci[0]), len(keys),
                    f"residual RMS {np.sqrt(np.mean(fit.residuals**2)):.3g}"
                    + (f"; {len(keys)} runs of {len(sizes)} sizes" if several else ""))  # fmt: skip
            except (RuntimeError, ValueError) as exc:
                add("H3", "power-law fit of the early metric", np.nan, note=str(exc))
        else:
            add("H3", f"power-law exponent of {metric} at step {early_step} in size", np.nan,
                n=len(keys), note=f"no fit: {metric} is not positive at step {early_step} "
                "in every run")  # fmt: skip
        target = np.array([final_loss[k] for k in keys], dtype=float)
        early_loss = np.array([_value(early[k], "val_loss") for k in keys])
        how = "leave-one-size-out |error| of final val loss"
        if np.isfinite(target).all():
            for label, feat in (
                ("early val loss alone", early_loss[:, None]),
                (f"early val loss + {metric}", np.column_stack([early_loss, early_metric])),
            ):
                if np.isfinite(feat).all() and len(sizes) >= feat.shape[1] + 2:
                    err = loo_errors(feat, target, groups=groups)
                    add("H3", f"{how}: {label}", err.mean(), n=len(keys))
            for col in kd_metrics or []:
                feat = np.array([_value(early[k], col) for k in keys])
                if np.isfinite(feat).all() and np.isfinite(early_metric).all():
                    add("H4", f"{how}: {col} vs {metric}",
                        loo_errors(feat, target, groups=groups).mean()
                        - loo_errors(early_metric, target, groups=groups).mean(),
                        n=len(keys), note="negative: the kD metric predicts better")  # fmt: skip
    out += missing_ingredients(rows, metric, persistence_metric, where)
    if family:
        mark_family(out)
    return out


def within_runs_p(
    runs: list[list[dict[str, Any]]], metric: str, observed: float, seed: int = 0,
    n_perm: int = 2000,
) -> tuple[float, float]:  # fmt: skip
    """Two-sided permutation p of the pooled Spearman rho ``observed`` of ``metric`` against log
    step over several runs, the values shuffled within each run (a stratified permutation:
    exact under "no trend within any run", whatever each run's level); returns ``(p,
    smallest p possible)``. Points with a non-finite value are left out."""
    from scipy.stats import spearmanr

    x, y, label = [], [], []
    for i, own in enumerate(runs):
        for r in own:
            v = _value(r, metric)
            if np.isfinite(v):
                x.append(np.log(max(r["step"], 1)))
                y.append(v)
                label.append(i)
    y, label = np.array(y), np.array(label)
    members = [np.flatnonzero(label == i) for i in range(len(runs))]
    rng = np.random.default_rng([seed, 0x57524E])
    hits = 0
    for _ in range(n_perm):
        shuffled = y.copy()
        for idx in members:
            shuffled[idx] = y[rng.permutation(idx)]
        hits += abs(spearmanr(x, shuffled)[0]) >= abs(observed) - 1e-12
    return (hits + 1) / (n_perm + 1), 1 / (n_perm + 1)


def span_hypotheses(
    rows: list[dict[str, Any]],
    columns: dict[str, tuple[str, str, list[str]]],
    **kw: Any,
) -> list[dict[str, Any]]:
    """:func:`hypothesis_table` at each span of a sweep, one Holm family over all of them.

    ``columns``: ``{span: (metric, persistence_metric, kd_metrics)}`` (span "" for an
    analysis without a sweep); each entry gets its ``span``. Where the saddle count is the
    same at every checkpoint of every size at a span, that span's H1 and H3 entries are
    replaced by the one entry that says so (:func:`missing_ingredients`): testing a constant
    would only spend the family's alpha."""
    out = []
    for span, (metric, persistence, kd) in columns.items():
        table = hypothesis_table(
            rows,
            metric,
            persistence,
            kd_metrics=kd,
            family=False,
            where=f"span {span}" if span != "" else None,
            **kw,
        )
        blind = {w for e in table if e["quantity"] == MISSING
                 for w in e["hypothesis"].split(", ")}  # fmt: skip
        out += [{"span": span, **e} for e in table
                if e["quantity"] == MISSING or e["hypothesis"] not in blind]  # fmt: skip
    mark_family(out)
    return out


#: The ``quantity`` of an entry that says why hypotheses cannot be asked of these runs.
MISSING = "what is missing"


def missing_ingredients(
    rows: list[dict[str, Any]], metric: str, persistence_metric: str, where: str | None = None
) -> list[dict[str, Any]]:
    """Entries naming what the runs lack for a hypothesis, where a metric it needs never
    changes: H1 and H3 ask how saddles move with steps and sizes, which a saddle count that is
    the same at every checkpoint of every size (one basin everywhere, or no feature above the
    noise floor, at the span sampled) cannot answer; H2 likewise for a constant persistence.
    ``where``: the span, for the note (default: the rows' ``sweep_span`` values, or "the span
    sampled"). Empty where every metric moves."""
    out = []
    asks = ((metric, "H1, H3", "saddles"), (persistence_metric, "H2", "persistence"))
    unswept = ("sample a span sweep (span: auto) or the plane of the top and most negative "
               "Hessian eigenvectors (hessian_which: top_bottom)")  # fmt: skip
    swept = (
        "at this span the features are below the floor (other spans of the sweep may "
        "show some); a larger evaluation batch lowers the batch floor, the top/bottom "
        "Hessian plane (hessian_which: top_bottom) cuts saddles random planes miss"
    )
    if where is None:
        spans = sorted({str(r["sweep_span"]) for r in rows if r.get("sweep_span")})
        where = f"spans {', '.join(spans)}" if spans else "the span sampled"
    for column, which, what in asks:
        values = {float(r[column]) for r in rows if _finite(r.get(column))}
        if len(values) != 1:
            continue
        value = values.pop()
        note = (f"{column} is {value:g} at every checkpoint of every size, at {where}: no "
                f"{what} to follow. Missing: a feature above the noise floor; "
                + (swept if where.startswith("span ") else unswept))  # fmt: skip
        out.append({"hypothesis": which, "quantity": MISSING, "value": value,
                    "ci_low": np.nan, "ci_high": np.nan, "n": len(rows), "p": np.nan,
                    "p_min": np.nan, "note": note})  # fmt: skip
    return out


def _finite(value: Any) -> bool:
    return bool(np.isfinite(as_number(value)))


def mark_family(entries: list[dict[str, Any]]) -> None:
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
                       "p_min": e["p_min"], "n": e["n"], "note": e["note"],
                       "unit": "sizes" if "across sizes" in e["quantity"] else "points",
                       }  # fmt: skip
        e["verdict"] = verdict(as_relation, size)


def _key(item: tuple) -> tuple:
    """Runs ordered by size, then run label (labels of mixed types compared as text)."""
    (size, run), _ = item
    return (size, str(run))


def _value(row: dict[str, Any], key: str) -> float:
    """The row's ``key`` as a float (NaN when missing or not a number)."""
    return as_number(row.get(key))


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
    swept = any(h.get("span", "") != "" for h in hypotheses + missing)
    cols = [*(["span"] * swept), "hypothesis", "quantity", "value", "ci_low", "ci_high", "n",
            "p", "p_holm", "verdict", "note"]  # fmt: skip
    return (
        "<p class='note'>Each metric against the training step, one line per model size, "
        "from the same checkpoints, data order and evaluation batch. H1: do saddles fall "
        "during training, and does their rate of fall relate to the final loss across sizes; "
        "H2: is average persistence non-monotone in time (slope changes of a piecewise-linear "
        "fit in log step); H3: does an early metric follow a power law in size, and does it "
        "improve leave-one-size-out prediction of the final loss; H4: do kD metrics predict "
        "better than 2D ones. The entries with a p are the pre-stated tests, Holm-adjusted "
        "together (p_holm) and worded by what their intervals and run counts allow; the "
        "rest are descriptions, not tests. Where a size has several training runs, its "
        "numbers pool them (n counts runs x checkpoints, or runs).</p>"
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
