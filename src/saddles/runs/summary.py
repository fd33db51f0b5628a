"""Across direction seeds and across models: seed summaries and relations.

A topology metric from one random plane is one sample. :func:`seed_summary` turns the rows of
:meth:`saddles.runs.analyze.Analysis.rows` (one per direction seed x direction kind x
representation) into one row per model x direction kind x representation with, per metric,
``<metric>_mean``, ``_median``, ``_ci_low`` and ``_ci_high`` (a 95% percentile bootstrap over
the seeds, :func:`saddles.runs.relate.bootstrap_ci`; NaN where one seed or equal values give
no interval). :func:`relations` (:func:`saddles.runs.relate.relations_from_rows`, the one
relations table of the package) correlates every TDA metric with every model-level quantity,
per direction kind and representation, with Fisher-z intervals (over seed ensembles widened
by the seed spread); every p-value is also given Holm-adjusted within its family
(``spearman_p_holm``: the experiment's pre-stated primary relations, or the exploratory
rest), ``significant`` marks the relations whose adjusted p is below 0.05 and ``verdict``
words each one (:mod:`saddles.runs.relate.verdicts`).
:func:`summary_tables` writes the three tables (:func:`saddles.report.summary.summarize`
adds the figures and the page). The metrics come from :mod:`saddles.runs.registry`. Never
imports torch, never imports :mod:`saddles.report`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saddles.files import write_csv
from saddles.runs.registry import metrics_for
from saddles.runs.relate import ALPHA, Claim, mark_significant  # noqa: F401 (ALPHA re-exported)
from saddles.runs.relate import relations_from_rows as relations

#: Metrics the relations table correlates (the registry's ``relate`` view): TDA metrics
#: against model and Hessian metrics; raw and scale-free (``_relative``: divided by the
#: landscape's value range).
TDA_METRICS = metrics_for("relate", exclude_stage="hessian")
CURVATURE_METRICS = metrics_for("relate", stage="hessian")
GROUP = ("model", "direction", "sweep_span", "representation")  # sweep_span: in sweeps only
#: The column naming a row's training run (one trained model of a configuration): rows of one
#: ``model`` with several values are summarized hierarchically.
TRAIN_SEED = "train_seed"


def seed_summary(rows: list[dict[str, Any]], n_boot: int = 2000) -> list[dict[str, Any]]:
    """One row per model x direction kind x representation, each numeric metric summarized
    over the direction seeds (see the module docstring); ``n_seeds`` counts them.

    Where a model was trained more than once (rows with several ``train_seed`` values, each a
    separate training run of one configuration), the mean, median and interval are over
    both levels: :func:`saddles.runs.relate.hierarchical_bootstrap` (training runs, then
    direction seeds within each), and ``<metric>_share_training`` is the share of one
    measurement's variance that comes from the training run (random-effects ANOVA; the rest
    is the direction seeds'); ``n_train_seeds`` counts the runs, ``interval`` says which
    levels the interval covers."""
    from saddles.runs.relate import bootstrap_ci, hierarchical_bootstrap

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in GROUP), []).append(r)
    out = []
    for key, members in groups.items():
        row: dict[str, Any] = {k: v for k, v in zip(GROUP, key, strict=True)
                               if v is not None or k != "sweep_span"}  # fmt: skip
        runs = list(dict.fromkeys(m.get(TRAIN_SEED) for m in members))
        nested = len(runs) > 1
        row["n_seeds"] = min(sum(m.get(TRAIN_SEED) == s for m in members) for s in runs)
        row["n_train_seeds"] = len(runs)
        row["interval"] = ("training seeds, then direction seeds" if nested
                           else "direction seeds")  # fmt: skip
        skip = {*GROUP, "direction_seed", TRAIN_SEED}
        names = [k for k in members[0] if k not in skip]
        for name in names:
            values = [_number(m.get(name)) for m in members]
            if all(math.isnan(v) for v in values) and not _is_number(members[0].get(name)):
                continue  # a text column
            if nested:
                h = hierarchical_bootstrap(
                    [[_number(m.get(name)) for m in members if m.get(TRAIN_SEED) == s]
                     for s in runs], n_boot=n_boot, seed=0)  # fmt: skip
                row[f"{name}_mean"], ci = h.estimate, h.ci
                row[f"{name}_share_training"] = h.share_training
            else:
                b = bootstrap_ci(np.array(values), np.mean, n_boot=n_boot, seed=0)
                row[f"{name}_mean"], ci = b.estimate, b.ci
            finite = [v for v in values if math.isfinite(v)]
            row[f"{name}_median"] = float(np.median(finite)) if finite else math.nan
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci
        out.append(row)
    return out


def summary_tables(
    analyses: list,
    out_dir: str | Path,
    *,
    x_key: str,
    y_metrics: list[str],
    claims: Sequence[Claim] = (),
) -> dict[str, Any]:
    """Across models: the combined ``metrics.csv`` (one row per seed), ``summary.csv`` (over
    seeds) and ``relations.csv`` (every TDA metric against ``x_key``, ``y_metrics`` and the
    Hessian metrics), written to ``out_dir``; returns the rows and the paths (the page that
    shows them is :func:`saddles.report.summary.summarize`'s).

    ``claims``: the experiment's pre-stated relations (:class:`saddles.runs.relate.Claim`).
    They form the primary family, corrected by Holm on their own, in the first
    representation of the configuration and every direction kind; a claim whose metric is not
    a TDA metric (the error or a Hessian number against beta) adds its one relation to the
    table, from the first direction kind's rows (it does not depend on the directions).
    Everything else is exploratory (``family`` column)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for a in analyses for r in a.rows()]
    summary = seed_summary(rows)
    numeric_x = all(_is_number(r.get(x_key)) for r in rows)
    ys = [*([x_key] if numeric_x else []), *y_metrics, *CURVATURE_METRICS]
    spans = list(dict.fromkeys(r.get("sweep_span") for r in rows))  # a span sweep: per span
    rels = []
    for span in spans:
        at = [m for m in rows if m.get("sweep_span") == span]
        found = relations(at, TDA_METRICS, ys)
        first_kind = at[0]["direction"] if at else None
        for c in claims:
            if c.metric not in TDA_METRICS:  # a per-model number: once, not per direction kind
                found += relations([r for r in at if r["direction"] == first_kind], [c.metric],
                                   [c.against])  # fmt: skip
        rels += [{**({} if span is None else {"sweep_span": span}), **r} for r in found]
    rep = analyses[0].config.representations[0] if analyses else None
    mark_significant(rels, primary=[(c.metric, c.against) for c in claims],
                     primary_representation=rep)  # fmt: skip
    paths = {"metrics": write_csv(out_dir / "metrics.csv", rows),
             "summary": write_csv(out_dir / "summary.csv", summary),
             "relations": write_csv(out_dir / "relations.csv", rels)}  # fmt: skip
    return {"rows": rows, "summary": summary, "relations": rels, "paths": paths}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _number(v: Any) -> float:
    return float(v) if _is_number(v) else math.nan
