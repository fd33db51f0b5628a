"""The self-contained HTML report of an experiment: one file, images embedded, no scripts.

Sections, in order: configuration; one section per model (its quality and Hessian numbers, its
figures); the metrics table; the relations table (correlations with CIs and p-values) and the
relation plots; what ran, where, how long, with which package versions. An experiment adds
its own sections (``extra_sections``, e.g. the dynamics of the language-model experiment;
:func:`figures_and_table` builds their usual body). Built with the standard library's ``html``
escaping only; never imports torch.
"""

from __future__ import annotations

import base64
import html
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from saddles._files import atomic_write_text

SECTIONS = ("Configuration", "Models", "Metrics", "Relations", "Run")
PACKAGES = ("saddles", "numpy", "scipy", "torch", "numba", "matplotlib", "gudhi", "pynndescent")

#: Columns of the metrics table shown in the report (metrics.csv has all of them).
TABLE_COLUMNS = [
    "model", "direction", "representation", "n_minima", "n_saddles", "average_persistence",
    "average_finite_persistence", "persistence_entropy", "n_minima_simplified",
    "n_saddles_simplified", "hessian_top_eigenvalue", "hessian_trace",
]  # fmt: skip

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #aaa; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f0f0f0; } td.t { text-align: left; }
.figs { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; } figure img { max-width: 380px; border: 1px solid #ddd; }
figcaption { font-size: 0.8em; color: #555; max-width: 380px; }
pre { background: #f7f7f7; padding: 0.8em; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; }
"""


def write_report(
    path: str | Path,
    *,
    title: str,
    config: dict[str, Any],
    analyses: list,
    figures: dict[str, dict[str, Path]],
    rows: list[dict[str, Any]],
    relations: list[dict[str, Any]],
    relation_figures: dict[str, Path],
    info: dict[str, Any],
    extra_sections: list[tuple[str, str]] | None = None,
    table_columns: list[str] | None = None,
) -> Path:
    """Write the report; ``figures[model name]`` maps captions to PNG paths.

    ``extra_sections`` are (heading, HTML body) pairs inserted before the run section;
    ``table_columns`` chooses the metrics table's columns (default :data:`TABLE_COLUMNS`).
    """
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"]  # fmt: skip
    parts.append(_section("Configuration", f"<pre>{_e(yaml.safe_dump(config))}</pre>"))
    models = []
    for a in analyses:
        numbers = {**a.quality, **{k: v for k, v in a.hessian.items() if not isinstance(v, list)}}
        body = _kv_table(numbers)
        eig = a.hessian.get("top_eigenvalues")
        if eig:
            res = a.hessian.get("eigen_residuals", [])
            body += "<p class='note'>top Hessian eigenvalues: " + ", ".join(
                f"{v:.5g} (residual {r:.2g})" for v, r in zip(eig, res, strict=False)
            ) + "</p>"  # fmt: skip
        body += _figures(figures.get(a.name, {}))
        models.append(f"<h3>{_e(a.name)}</h3>{body}")
    if not models:
        models.append(
            "<p class='note'>No single-model sections in this report: every checkpoint's "
            "numbers are in the metrics table and the dynamics.</p>"
        )
    parts.append(_section("Models", "".join(models)))
    parts.append(_section(
        "Metrics",
        "<p class='note'>One row per model x direction kind x representation; "
        "<code>metrics.csv</code> holds every column. Persistence conventions: "
        "<code>average_persistence</code> follows TTK (each component's essential class paired "
        "with its maximum); <code>_finite</code> uses finite pairs only; "
        "<code>_simplified</code> after removing pairs below the configured threshold.</p>"
        + _table(rows, [c for c in table_columns or TABLE_COLUMNS if any(c in r for r in rows)]),
    ))  # fmt: skip
    rel_cols = ["direction", "representation", "x", "y", "n", "spearman", "spearman_ci_low",
                "spearman_ci_high", "spearman_p", "pearson", "pearson_ci_low",
                "pearson_ci_high", "pearson_p"]  # fmt: skip
    rep0 = config.get("representations", [None])[0]
    shown = [r for r in relations if r.get("representation") == rep0]
    parts.append(_section(
        "Relations",
        f"<p class='note'>Spearman's rho and Pearson's r over models, with percentile-bootstrap "
        f"95% intervals and two-sided permutation p-values (exact when there are few models). "
        f"Shown: representation <code>{_e(str(rep0))}</code>; <code>relations.csv</code> has "
        f"every representation. With a handful of models, intervals are wide: read them, not "
        f"only the point estimates.</p>"
        + _table(shown, rel_cols) + _figures(relation_figures),
    ))  # fmt: skip
    for heading, body in extra_sections or []:
        parts.append(_section(heading, body))
    run = {**info, "python": platform.python_version(), "platform": platform.platform()}
    run.update({f"version {p}": _version(p) for p in PACKAGES})
    parts.append(_section("Run", _kv_table(run)))
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, "\n".join(parts))


def _section(name: str, body: str) -> str:
    return f"<section id='{_e(name.lower())}'><h2>{_e(name)}</h2>{body}</section>"


def _figures(figs: dict[str, Path]) -> str:
    items = []
    for caption, path in figs.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        items.append(f"<figure><img src='data:image/png;base64,{data}' alt='{_e(caption)}'>"
                     f"<figcaption>{_e(caption)}</figcaption></figure>")  # fmt: skip
    return f"<div class='figs'>{''.join(items)}</div>" if items else ""


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p class='note'>(none)</p>"
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cls = " class='t'" if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{_e(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _kv_table(values: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td class='t'>{_e(str(k))}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in values.items()
    )
    return f"<table>{rows}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def figures_and_table(
    figures: dict[str, Path], rows: list[dict[str, Any]], columns: list[str]
) -> str:
    """HTML of embedded figures followed by a table of ``rows``: the usual body of an extra
    section (see ``extra_sections`` of :func:`write_report`)."""
    return _figures(figures) + _table(rows, columns)
