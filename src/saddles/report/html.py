"""The HTML shell every page is written in, and the pieces its sections are built from.

:func:`page` is the one skeleton of the analysis report, the dynamics page and the compare
page: head and style (:data:`CSS`), title, an optional table of facts, the sections, and a
footer naming the saddles version that wrote it. A section is (heading, HTML body); bodies are
built from :func:`table` (rows in a scrolling box), :func:`figures` (PNGs embedded as data
URIs, full size on click), :func:`kv_table`, :func:`fmt` and :func:`escape`. A page style or
figure convention therefore changes here and nowhere else. Built with the standard library's
``html`` escaping only; never imports torch, numpy or other saddles modules.
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


def page(
    title: str,
    sections: list[tuple[str, str]],
    *,
    heading: str | None = None,
    facts: dict[str, Any] | None = None,
    intro: str = "",
) -> str:
    """A whole HTML page: ``title`` in the head (``heading`` on the page, default the title),
    ``intro`` HTML (the summary sentence), a table of ``facts`` (e.g. the checkpoints of a
    run), each (heading, body) of ``sections`` as a :func:`section`, and the footer."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{escape(heading or title)}</h1>"]  # fmt: skip
    if intro:  # the summary sentence first, then the facts
        parts.append(intro)
    if facts:
        parts.append(kv_table(facts))
    parts.extend(section(name, body) for name, body in sections)
    parts.append(f"<footer class='note'>written by saddles {escape(version('saddles'))}</footer>")
    parts.append("</body></html>")
    return "\n".join(parts)


def section(name: str, body: str) -> str:
    """A titled part of a page, addressable as ``#<name>``."""
    return f"<section id='{escape(name.lower())}'><h2>{escape(name)}</h2>{body}</section>"


def figures(figs: dict[str, Path], wide: bool = False) -> str:
    """PNG files embedded as data URIs with their captions (``wide``: full page width)."""
    items = []
    cls = " class='wide'" if wide else ""
    for caption, path in figs.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        items.append(f"<figure{cls}><img tabindex='0' src='data:image/png;base64,{data}' "
                     f"alt='{escape(caption)}' title='click: full size'>"
                     f"<figcaption>{escape(caption)}</figcaption></figure>")  # fmt: skip
    return f"<div class='figs'>{''.join(items)}</div>" if items else ""


def table(rows: list[dict[str, Any]], columns: list[str], simplified: str = "", hits=None) -> str:
    """A table in its own scrolling box; ``hits[i]`` highlights row i; ``simplified`` names
    the simplification in the headers of ``_simplified`` columns."""
    if not rows:
        return "<p class='note'>(none)</p>"
    head = "".join(f"<th>{escape(_header(c, simplified))}</th>" for c in columns)
    body = []
    for i, r in enumerate(rows):
        cells = []
        for c in columns:
            v = r.get(c, "")
            cls = " class='t'" if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{escape(fmt(v))}</td>")
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


def kv_table(values: dict[str, Any]) -> str:
    """A two-column table of names and values."""
    rows = "".join(
        f"<tr><td class='t'>{escape(str(k))}</td><td>{escape(fmt(v))}</td></tr>"
        for k, v in values.items()
    )
    return f"<table>{rows}</table>"


def fmt(v: Any) -> str:
    """A value as a table shows it: floats to 4 significant digits, NaN as ``nan``, and a
    float below 1e-300 in size (round-off of a zero, e.g. 2.23e-308) as ``0``."""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return "0" if abs(v) < 1e-300 else f"{v:.4g}"
    return str(v)


def escape(text: str) -> str:
    """``text`` safe inside HTML elements and quoted attributes."""
    return html.escape(text, quote=True)


def version(package: str) -> str:
    """An installed package's version, or "not installed"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def figures_and_table(figs: dict[str, Path], rows: list[dict[str, Any]], columns: list[str]) -> str:
    """HTML of embedded figures followed by a table of ``rows``: the usual body of a section
    (see ``extra_sections`` of :func:`saddles.report.analysis.write_report`)."""
    return figures(figs) + table(rows, columns)
