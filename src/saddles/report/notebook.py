"""How an :class:`~saddles.runs.analyze.Analysis` shows itself in a notebook: its metrics table
and the first 2-D landscape's contour with its critical points, as one HTML fragment.

Never imports torch; matplotlib through its object API only (no pyplot state, no backend
switch), so a notebook keeps its own backend.
"""

from __future__ import annotations

import numpy as np

from saddles.report.analysis import TABLE_COLUMNS
from saddles.report.html import escape, table
from saddles.runs.registry import metrics_for


def analysis_html(analysis) -> str:
    """The analysis's repr, its rows (the report's columns and the notebook view's metrics)
    and its first 2-D contour."""
    rows = analysis.rows()
    wanted = [*TABLE_COLUMNS, *metrics_for("notebook")]
    columns = [c for c in wanted if any(c in r for r in rows)]
    image = contour_png(analysis)
    img = f"<img src='data:image/png;base64,{image}' style='max-width:420px'/>" if image else ""
    return f"<div><b>{escape(repr(analysis))}</b>{table(rows, columns)}{img}</div>"


def contour_png(analysis) -> str | None:
    """A base64 PNG of the first 2-D landscape's contour, drawn with matplotlib's object API
    (``Figure`` and its Agg canvas: no pyplot state, no backend switch); None without one."""
    import base64
    import io

    from matplotlib.figure import Figure

    from saddles.topology import simplify

    for kind, land in analysis.landscapes.items():
        if land.shape is None or len(land.shape) != 2:
            continue
        field = land.grid()
        grid = land.coords.reshape(*land.shape, 2)
        fig = Figure(figsize=(4.5, 3.6))
        ax = fig.add_subplot()
        cs = ax.contourf(grid[..., 0], grid[..., 1], np.where(np.isfinite(field), field, np.nan),
                         levels=30, cmap="viridis")  # fmt: skip
        fig.colorbar(cs, ax=ax, label="loss")
        tree = analysis.trees.get(kind, {}).get(analysis.config.representations[0])
        if tree is not None:  # the critical points write_figures marks
            threshold = analysis.config.threshold
            tree = simplify(tree, threshold, relative=True) if threshold else tree
            for verts, style in ((tree.minima, dict(marker="o", color="white")),
                                 (tree.saddles, dict(marker="X", color="red"))):  # fmt: skip
                pts = land.coords[verts]
                ax.scatter(pts[:, 0], pts[:, 1], s=30, edgecolor="k", linewidths=0.6, **style)
        ax.set(xlabel="direction 1", ylabel="direction 2", title=f"{analysis.name}, {kind}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        return base64.b64encode(buf.getvalue()).decode("ascii")
    return None


def _escape(text: str) -> str:
    import html

    return html.escape(text)
