"""The HTML pieces every page is built from: style, figures embedded as PNG, tables.

Built with the standard library's ``html`` escaping only; never imports torch.
"""

from __future__ import annotations

import base64
import html
import math
from importlib import metadata
from pathlib import Path
from typing import Any

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #aaa; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0; }
.scroll { overflow: auto; max-height: 520px; max-width: 100%; margin: 0.5em 0 1.5em;
          border: 1px solid #ddd; }
.scroll th { position: sticky; top: 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f0f0f0; } td.t { text-align: left; }
.figs { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; } figure img { max-width: 380px; border: 1px solid #ddd; cursor: zoom-in; }
figure.wide img { max-width: 100%; }
img:focus { position: fixed; inset: 0; margin: auto; max-width: 98vw; max-height: 98vh;
            z-index: 10; background: white; box-shadow: 0 0 0 100vmax rgba(0,0,0,.6);
            cursor: zoom-out; outline: none; }
tr.hit td { background: #e8f5e9; font-weight: 600; }
.result { font-size: 1.05em; line-height: 1.5; }
figcaption { font-size: 0.8em; color: #555; max-width: 380px; }
pre { background: #f7f7f7; padding: 0.8em; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; }
"""


def _section(name: str, body: str) -> str:
    return f"<section id='{_e(name.lower())}'><h2>{_e(name)}</h2>{body}</section>"


def _figures(figs: dict[str, Path], wide: bool = False) -> str:
    items = []
    cls = " class='wide'" if wide else ""
    for caption, path in figs.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        items.append(f"<figure{cls}><img tabindex='0' src='data:image/png;base64,{data}' "
                     f"alt='{_e(caption)}' title='click: full size'>"
                     f"<figcaption>{_e(caption)}</figcaption></figure>")  # fmt: skip
    return f"<div class='figs'>{''.join(items)}</div>" if items else ""


def _table(rows: list[dict[str, Any]], columns: list[str], simplified: str = "", hits=None) -> str:
    """A table in its own scrolling box; ``hits[i]`` highlights row i."""
    if not rows:
        return "<p class='note'>(none)</p>"
    head = "".join(f"<th>{_e(_header(c, simplified))}</th>" for c in columns)
    body = []
    for i, r in enumerate(rows):
        cells = []
        for c in columns:
            v = r.get(c, "")
            cls = " class='t'" if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{_e(_fmt(v))}</td>")
        hit = " class='hit'" if hits is not None and hits[i] else ""
        body.append(f"<tr{hit}>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def _header(column: str, simplified: str) -> str:
    """Column names say whether a count is raw or simplified."""
    if simplified and "_simplified" in column:
        return column.replace("_simplified", f" ({simplified})")
    if column.startswith("n_") and column.split("_mean")[0] in ("n_minima", "n_saddles"):
        return column + " (raw)"
    return column


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
