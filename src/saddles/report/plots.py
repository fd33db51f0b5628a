"""Figures, one function per figure; each returns a matplotlib Figure and can save it.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), which needs no
backend and no global state: nothing here changes a notebook's backend, and figures render on
machines without a screen. This module never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from saddles.topology.mergetree import MergeTree


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (parents created), close it, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def persistence_diagram_figure(tree: MergeTree, title: str = "") -> Figure:
    """Birth against death for every pair; essential classes drawn at the component's max
    (TTK's convention) with a distinct marker."""
    finite = tree.diagram()
    ess = np.stack([tree.values[tree.essential[:, 0]], tree.values[tree.essential[:, 1]]], axis=1)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    lo, hi = float(tree.values.min()), float(tree.values.max())
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1)
    if len(finite):
        ax.scatter(finite[:, 0], finite[:, 1], s=12, alpha=0.7, label=f"{len(finite)} pairs")
    ax.scatter(ess[:, 0], ess[:, 1], s=40, marker="^", color="C3",
               label=f"{len(ess)} essential (death = max)")  # fmt: skip
    ax.set(xlabel="birth (minimum value)", ylabel="death (saddle value)",
           xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad))  # fmt: skip
    ax.set_title(title or "0-dimensional persistence diagram")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def merge_tree_layout(tree: MergeTree) -> tuple[dict[int, float], dict[int, list[int]]]:
    """x position of each node (leaves in depth-first order, a parent at its children's mean)
    and the children of each node. Children are visited lowest minimum first."""
    children: dict[int, list[int]] = {int(v): [] for v in tree.nodes}
    for v, p in zip(tree.nodes.tolist(), tree.parent.tolist(), strict=True):
        if p >= 0:
            children[p].append(v)
    lowest = {}  # value of the lowest minimum below each node, for a stable drawing order
    for v in tree.nodes[np.argsort(tree.values[tree.nodes], kind="stable")].tolist():
        lowest[v] = min([lowest[c] for c in children[v]], default=tree.values[v])
    x: dict[int, float] = {}
    next_leaf = 0
    roots = [int(v) for v, p in zip(tree.nodes, tree.parent, strict=True) if p < 0]
    for root in sorted(roots, key=lambda r: lowest[r]):
        stack = [(root, False)]
        while stack:  # iterative post-order, so deep trees do not hit the recursion limit
            v, done = stack.pop()
            kids = sorted(children[v], key=lambda c: lowest[c])
            if done or not kids:
                if kids:
                    x[v] = float(np.mean([x[c] for c in kids]))
                else:
                    x[v] = float(next_leaf)
                    next_leaf += 1
                continue
            stack.append((v, True))
            stack.extend((c, False) for c in reversed(kids))
    return x, children


def merge_tree_figure(tree: MergeTree, title: str = "", marks: str = "") -> Figure:
    """The merge tree drawn as a tree: y is the value, x the branch order; minima and saddles
    marked. Simplify large trees first (``saddles.topology.simplify``)."""
    x, children = merge_tree_layout(tree)
    y = tree.values
    segments = []
    for v, kids in children.items():
        for c in kids:
            segments.append([(x[c], y[c]), (x[c], y[v]), (x[v], y[v])])
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    ax.add_collection(LineCollection(segments, colors="0.25", linewidths=1))
    mins, sads = tree.minima, tree.saddles
    ax.scatter([x[int(v)] for v in mins], y[mins], s=18, color="C0", zorder=3,
               label=_mark_label(len(mins), "minima", marks))  # fmt: skip
    if len(sads):
        ax.scatter([x[int(v)] for v in sads], y[sads], s=18, color="C3", zorder=3,
                   label=_mark_label(len(sads), "saddles", marks))  # fmt: skip
    ax.autoscale()
    ax.set(xticks=[], ylabel="loss", title=title or "merge tree of sublevel sets")
    ax.legend(fontsize=8)
    return fig


def field_figure(
    field: np.ndarray,
    tree: MergeTree | None = None,
    extent: tuple[float, float, float, float] | None = None,
    title: str = "",
    log: bool = False,
    indexing: str = "xy",
    marks: str = "",
) -> Figure:
    """A 2D field as filled contours, with the tree's minima (dots) and saddles (crosses).

    ``marks`` says which tree is marked (e.g. "simplified at 1% of the range"); the legend
    repeats it beside the counts, so that a legend never reads as the raw counts.

    ``indexing="xy"``: ``field[row, col]`` is at (x = col, y = row), as an image;
    ``"ij"``: ``field[i, j]`` is at (x = i, y = j), as a landscape grid (direction 1 first).
    ``extent`` = (x0, x1, y0, y1); ``log`` shows log10 of the shifted field, which reveals
    structure near the minimum (the merge tree needs no such trick: it is invariant to
    monotone transforms).
    """
    field, shape, xs, ys = _image_grid(field, extent, indexing, "field_figure")
    if log:
        field = np.log10(field - np.nanmin(field) + 1e-12 * (1 + abs(np.nanmax(field))))
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    cs = ax.contourf(xs, ys, field, levels=30, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="log10(loss - min)" if log else "loss")
    if tree is not None:
        style = {
            "minima": dict(marker="o", color="white"),
            "saddles": dict(marker="X", color="red"),
        }
        for label, count, r, c in _critical_points(tree, shape, indexing):
            ax.scatter(xs[c], ys[r], s=30, linewidths=0.6, zorder=3, edgecolor="k",
                       label=_mark_label(count, label, marks), **style[label])  # fmt: skip
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    ax.set(xlabel="direction 1", ylabel="direction 2", title=title or "loss landscape")
    ax.set_aspect("auto")
    return fig


def surface_figure(
    field: np.ndarray,
    tree: MergeTree | None = None,
    extent: tuple[float, float, float, float] | None = None,
    title: str = "",
    indexing: str = "xy",
    marks: str = "",
) -> Figure:
    """A 2D field as a 3D surface, with the tree's minima and saddles marked on it
    (``indexing`` and ``marks`` as in :func:`field_figure`)."""
    field, shape, xs, ys = _image_grid(field, extent, indexing, "surface_figure")
    X, Y = np.meshgrid(xs, ys)
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(projection="3d")
    shown = np.where(np.isfinite(field), field, np.nanmax(field[np.isfinite(field)]))
    ax.plot_surface(X, Y, shown, cmap="viridis", linewidth=0, antialiased=True, alpha=0.85)
    if tree is not None:
        color = {"minima": "white", "saddles": "red"}
        for label, count, r, c in _critical_points(tree, shape, indexing):
            ax.scatter(xs[c], ys[r], shown[r, c], color=color[label], edgecolor="k", s=25,
                       depthshade=False, label=_mark_label(count, label, marks))  # fmt: skip
        ax.legend(fontsize=8, loc="upper left")
    ax.set(xlabel="direction 1", ylabel="direction 2", zlabel="loss")
    ax.set_title(title or "loss surface")
    return fig


#: Font sizes of the panel grids (:func:`relation_figure`, :func:`span_figure`), in points:
#: read at the page's width, where a grid is shown whole (``figures(..., wide=True)``).
GRID_FONTS = {"title": 12, "label": 11, "tick": 10, "suptitle": 13}
#: Inches per panel of a grid, and panels per grid row: the figure grows with the panels, so
#: each keeps its size (and its labels their size) however many metrics there are.
PANEL_SIZE = (4.2, 3.4)
GRID_COLUMNS = 3


def panel_grid(n: int, columns: int = GRID_COLUMNS) -> tuple[Figure, np.ndarray]:
    """A figure of ``n`` panels, ``columns`` to a row, each :data:`PANEL_SIZE` inches: the
    figure grows with the rows and columns; unused panels hidden."""
    cols = max(1, min(n, columns))
    nrows = max(1, int(np.ceil(n / cols)))
    fig = Figure(figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * nrows + 0.4))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes


def _readable(ax, title: str, xlabel: str, ylabel: str = "") -> None:
    """A grid panel's labels at :data:`GRID_FONTS`; tick labels of a categorical axis with
    long or many names rotated (the caller rotates them: see :func:`relation_figure`)."""
    ax.set_title(title, fontsize=GRID_FONTS["title"])
    ax.set_xlabel(xlabel, fontsize=GRID_FONTS["label"])
    ax.set_ylabel(ylabel, fontsize=GRID_FONTS["label"])
    ax.tick_params(labelsize=GRID_FONTS["tick"])
    ax.grid(alpha=0.3)


def relation_figure(
    rows: list[dict],
    x_key: str,
    metrics: list[str],
    title: str = "",
    categorical: bool = False,
) -> Figure:
    """Each metric against ``x_key`` (one panel each, titled by the metric): the mean over
    rows sharing an x value, with error bars of one standard deviation (over seeds) and the
    individual values as dots. The figure grows with the number of metrics
    (:func:`panel_grid`); fonts are :data:`GRID_FONTS`; categorical tick labels are rotated
    when they are many or long."""
    n = len(metrics)
    fig, axes = panel_grid(n)
    xs_all = [r.get(x_key) for r in rows]
    levels = list(dict.fromkeys(xs_all))
    if not categorical:
        levels = sorted(levels)
    pos = {v: (i if categorical else float(v)) for i, v in enumerate(levels)}
    names = [str(v) for v in levels]
    rotate = categorical and (len(levels) > 4 or max(map(len, names), default=0) > 6)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        ys = [[_as_float(r.get(metric)) for r in rows if r.get(x_key) == v] for v in levels]
        mean = [np.nanmean(y) if np.isfinite(y).any() else np.nan for y in map(np.array, ys)]
        std = [np.nanstd(y) if np.isfinite(y).any() else np.nan for y in map(np.array, ys)]
        px = [pos[v] for v in levels]
        ax.errorbar(px, mean, yerr=std, marker="o", capsize=3, lw=1.2)
        for v, y in zip(levels, ys, strict=True):
            ax.scatter([pos[v]] * len(y), y, s=8, color="0.5", zorder=3)
        _readable(ax, metric, x_key)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
        ax.yaxis.get_offset_text().set_fontsize(GRID_FONTS["tick"])
        if categorical:
            ax.set_xticks(range(len(levels)), names, rotation=35 if rotate else 0,
                          ha="right" if rotate else "center")  # fmt: skip
    fig.suptitle(title, fontsize=GRID_FONTS["suptitle"])
    fig.tight_layout()
    return fig


def span_figure(
    points: list[dict],
    metrics: list[str],
    line_key: str,
    title: str = "",
    line_label: str = "",
) -> Figure:
    """Each metric against the span of a sweep (log axis; one panel each), one line per
    ``line_key`` value (a checkpoint's step, a compared configuration) with error bars from
    ``<metric>_low`` to ``<metric>_high`` where finite (an interval over seeds).

    Numeric line values (steps) are coloured in their order along viridis, so the colours
    read as time; others take the colour cycle. Sized and lettered as :func:`relation_figure`.
    """
    fig, axes = panel_grid(len(metrics))
    lines = list(dict.fromkeys(p[line_key] for p in points))
    numeric = all(np.isfinite(_as_float(v)) for v in lines)
    if numeric:
        lines = sorted(lines, key=_as_float)
    cmap = matplotlib.colormaps["viridis"]
    colours = {v: (cmap(i / max(len(lines) - 1, 1)) if numeric else f"C{i % 10}")
               for i, v in enumerate(lines)}  # fmt: skip
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        for v in lines:
            sub = sorted((p for p in points if p[line_key] == v), key=lambda p: p["span"])
            xs = np.array([p["span"] for p in sub], dtype=float)
            ys = np.array([_as_float(p.get(metric)) for p in sub])
            lo = np.array([_as_float(p.get(f"{metric}_low")) for p in sub])
            hi = np.array([_as_float(p.get(f"{metric}_high")) for p in sub])
            err = np.vstack([np.where(np.isfinite(lo), ys - lo, 0),
                             np.where(np.isfinite(hi), hi - ys, 0)]).clip(min=0)  # fmt: skip
            label = f"{line_label} {v}".strip()
            ax.errorbar(xs, ys, yerr=np.nan_to_num(err), marker="o", ms=3, capsize=2, lw=1.2,
                        color=colours[v], label=label)  # fmt: skip
        ax.set_xscale("log")
        _readable(ax, metric, "span (log)")
    first = axes.ravel()[0]
    first.legend(fontsize=GRID_FONTS["tick"] - 1, ncol=1 + len(lines) // 8)
    fig.suptitle(title, fontsize=GRID_FONTS["suptitle"])
    fig.tight_layout()
    return fig


def ensemble_figure(
    summary: list[dict],
    x_key: str,
    metrics: list[str],
    representation: str,
    title: str = "",
    categorical: bool = False,
) -> Figure:
    """The headline figure: each metric against ``x_key``, one line per direction kind, at
    the seed mean with its 95% bootstrap interval over direction seeds (rows of
    :func:`saddles.runs.summary.seed_summary`), full width, one panel per metric."""
    rows = [r for r in summary if r.get("representation") == representation]
    n = len(metrics)
    fig = Figure(figsize=(3.6 * n, 3.4))
    axes = fig.subplots(1, n, squeeze=False)[0]
    levels = list(dict.fromkeys(r.get(f"{x_key}_mean", r.get("model")) for r in rows))
    if not categorical:
        levels = sorted(levels, key=_as_float)
    pos = {v: (i if categorical else _as_float(v)) for i, v in enumerate(levels)}
    kinds = list(dict.fromkeys(r["direction"] for r in rows))
    for ax, metric in zip(axes, metrics, strict=True):
        for k, kind in enumerate(kinds):
            sub = [r for r in rows if r["direction"] == kind]
            px = [pos[r.get(f"{x_key}_mean", r.get("model"))] for r in sub]
            mean = np.array([_as_float(r.get(f"{metric}_mean")) for r in sub])
            lo = np.array([_as_float(r.get(f"{metric}_ci_low")) for r in sub])
            hi = np.array([_as_float(r.get(f"{metric}_ci_high")) for r in sub])
            err = np.vstack([np.where(np.isfinite(lo), mean - lo, 0),
                             np.where(np.isfinite(hi), hi - mean, 0)]).clip(min=0)  # fmt: skip
            seeds = max((int(r.get("n_seeds", 1)) for r in sub), default=1)
            offset = (k - (len(kinds) - 1) / 2) * (0.08 if categorical else 0.0)
            label = f"{kind} ({seeds} seed{'s' * (seeds > 1)})"
            runs = max((int(r.get("n_train_seeds", 1)) for r in sub), default=1)
            if runs > 1:  # the interval is over training runs, then direction seeds
                label = f"{kind} ({runs} training runs x {seeds} seed{'s' * (seeds > 1)})"
            ax.errorbar(np.array(px, dtype=float) + offset, mean, yerr=err, marker="o",
                        capsize=3, lw=1.2, label=label)  # fmt: skip
        ax.set(xlabel=x_key, title=metric)
        ax.title.set_fontsize(10)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
        if categorical:
            ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def curve_figure(
    xs: np.ndarray, values: np.ndarray, tree: MergeTree | None = None, title: str = "",
    xlabel: str = "direction 1", marks: str = "",
) -> Figure:  # fmt: skip
    """A 1-D landscape (a line or an interpolation) as a curve, with the tree's minima and
    saddles marked (``marks`` as in :func:`field_figure`)."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    ax.plot(xs, values, color="C0", lw=1.4)
    if tree is not None:
        styles = (("minima", tree.minima, dict(marker="o", color="white")),
                  ("saddles", tree.saddles, dict(marker="X", color="red")))  # fmt: skip
        for label, verts, style in styles:
            if len(verts):
                ax.scatter(xs[verts], values[verts], s=30, edgecolor="k", zorder=3,
                           label=_mark_label(len(verts), label, marks), **style)  # fmt: skip
        ax.legend(fontsize=8)
    ax.set(xlabel=xlabel, ylabel="loss", title=title or "loss along the line")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    ax.grid(alpha=0.3)
    return fig


def distance_matrix_figure(matrix: np.ndarray, names: list[str], title: str = "") -> Figure:
    """A symmetric matrix of distances between named items (runs, checkpoints) as a heat map
    with the values written in the cells. Distances are never negative: the colour scale
    starts at 0 (and runs to 1 when every distance is 0), and a value below 1e-300 or 1e-12
    of the largest (round-off of a zero) is written and coloured as 0."""
    m = np.asarray(matrix, dtype=float).copy()
    m[np.abs(m) < 1e-300] = 0.0  # subnormal: a zero's round-off
    top = float(np.nanmax(m)) if np.isfinite(m).any() else 0.0
    m[np.abs(m) <= 1e-12 * top] = 0.0
    size = 1.2 + 0.55 * len(names)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="magma_r", vmin=0.0, vmax=top if top > 0 else 1.0)
    fig.colorbar(im, ax=ax, label="distance" + ("" if top > 0 else " (all 0)"))
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if len(names) <= 12:
        for i in range(len(names)):
            for j in range(len(names)):
                text = "0" if m[i, j] == 0 else f"{m[i, j]:.3g}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if top > 0 and m[i, j] > 0.6 * top else "black")  # fmt: skip
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def tokens_figure(
    coords: np.ndarray, tokens: np.ndarray, stderr: np.ndarray | None, title: str = ""
) -> Figure:
    """Where ``eval_tokens="auto"`` spent its tokens: each point coloured by the tokens it was
    evaluated on (log 2 scale: the prefixes double) and, beside it, by the standard error its
    loss reached. The first two coordinates; a 1-D landscape as curves."""
    panels = [("tokens", np.asarray(tokens, dtype=float), "viridis")]
    if stderr is not None:
        panels.append(("standard error of the loss", np.asarray(stderr, dtype=float), "magma"))
    fig = Figure(figsize=(4.6 * len(panels), 3.9))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (label, values, cmap) in zip(axes, panels, strict=True):
        if coords.shape[1] == 1:
            ax.step(coords[:, 0], values, where="mid")
            ax.set(
                xlabel="direction 1", ylabel=label, yscale="log" if label == "tokens" else "linear"
            )
        else:
            c = np.log2(values) if label == "tokens" else values
            sc = ax.scatter(coords[:, 0], coords[:, 1], c=c, cmap=cmap, s=18, marker="s")
            fig.colorbar(sc, ax=ax, label="log2 tokens" if label == "tokens" else label)
            ax.set(xlabel="direction 1", ylabel="direction 2", aspect="equal")
        ax.set_title(label, fontsize=9)
    fig.suptitle(title or "tokens per point (eval_tokens auto)", fontsize=10)
    fig.tight_layout()
    return fig


def spans_decades(values: np.ndarray, decades: float = 3.0) -> bool:
    """Whether positive values span more than ``decades`` orders of magnitude above their
    minimum (then a log colour scale shows the structure near the minimum)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return False
    rise = v.max() - v.min()
    floor = np.quantile(v - v.min(), 0.05)
    return bool(rise > 0 and floor > 0 and rise / floor > 10**decades)


def _mark_label(count: int, label: str, marks: str) -> str:
    return f"{count} {label}" + (f" ({marks})" if marks else "")


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _image_grid(field, extent, indexing: str, who: str):
    """``(image, shape, xs, ys)``: a 2D field as an image (rows = y) and its axis values;
    ``shape`` is the field's own shape, for mapping vertex ids (see ``field_figure``)."""
    field = np.asarray(field, dtype=float)
    if field.ndim != 2:
        raise ValueError(f"{who} draws 2-D fields, not shape {field.shape}")
    if indexing not in ("xy", "ij"):
        raise ValueError(f"indexing must be 'xy' or 'ij', not {indexing!r}")
    image = field.T if indexing == "ij" else field
    ny, nx = image.shape
    x0, x1, y0, y1 = extent if extent is not None else (0, nx - 1, 0, ny - 1)
    return image, field.shape, np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)


def _critical_points(tree: MergeTree, shape, indexing: str):
    """``(label, count, rows, cols)`` of the tree's minima and saddles in image coordinates."""
    for label, verts in (("minima", tree.minima), ("saddles", tree.saddles)):
        if len(verts):
            a, b = np.unravel_index(verts, shape)
            r, c = (b, a) if indexing == "ij" else (a, b)
            yield label, len(verts), r, c


def dynamics_figure(
    rows: list[dict], metric: str, group_key: str = "size", title: str = "",
    err_key: str | None = None,
) -> Figure:  # fmt: skip
    """A metric against training step, one line per ``group_key`` value, with error bars of
    ``err_key`` where rows have it (e.g. the SD over direction seeds).

    The step axis is logarithmic; where a step 0 is present it is symmetric-log instead
    (linear between 0 and 1, logarithmic above; matplotlib's ``symlog``), so the initial
    checkpoint is drawn at 0 rather than moved to 1 or dropped, and the label says so."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    groups = list(dict.fromkeys(r[group_key] for r in rows))
    for g in groups:
        sub = sorted((r for r in rows if r[group_key] == g), key=lambda r: r["step"])
        steps = [r["step"] for r in sub]
        ys = [_as_float(r.get(metric)) for r in sub]
        err = [_as_float(r.get(err_key)) for r in sub] if err_key else None
        if err is not None and np.isfinite(err).any():
            ax.errorbar(steps, ys, yerr=np.nan_to_num(err), marker="o", ms=3, capsize=2,
                        label=str(g))  # fmt: skip
        else:
            ax.plot(steps, ys, marker="o", ms=3, label=str(g))
    has_zero = any(r["step"] <= 0 for r in rows)
    if has_zero:
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)
    else:
        ax.set_xscale("log")
    xlabel = "training step" + (" (symlog: linear below 1, step 0 at 0)" if has_zero else "")
    ax.set(xlabel=xlabel, ylabel=metric, title=title or f"{metric} during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=group_key)
    return fig


def scaling_figure(n_params, losses, fit=None, title: str = "") -> Figure:
    """Final loss against parameter count (log-log) with a fitted power law L = a N^-alpha + c."""
    n = np.asarray(n_params, dtype=float)
    y = np.asarray(losses, dtype=float)
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    ax.scatter(n, y, zorder=3, label="final validation loss")
    if fit is not None:
        grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 100)
        ax.plot(grid, fit.predict(grid), color="C3",
                label=f"{fit.a:.3g} N^-{fit.alpha:.3g} + {fit.c:.3g}")  # fmt: skip
    ax.set_xscale("log")
    ax.set(xlabel="parameters N", ylabel="validation loss", title=title or "loss against size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
