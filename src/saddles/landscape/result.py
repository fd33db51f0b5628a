"""The result of sampling: :class:`Landscape`, loss values on points, and its file format.

A landscape is numpy arrays plus provenance. It hands itself to the topology core through
:mod:`saddles.topology.representations` (imported inside the methods, so reading and writing
landscapes never loads the topology kernels). This module never imports torch.

File format (``save``/``load``): ``<base>.npz`` holds ``coords`` (n, k), ``loss``, optionally
``loss_stderr`` and ``tokens`` (:data:`OPTIONAL_ARRAYS`), and ``metric__<name>`` (for a grid
in the grid's shape, so ``saddles topology <base>.npz`` reads the field directly);
``<base>.json`` holds the format name and version, the shape, the metric names and ``info``.
Both are written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saddles.files import atomic_savez, atomic_write_text, to_jsonable

LANDSCAPE_FORMAT = "saddles.landscape"
LANDSCAPE_VERSION = 1
#: Per-point arrays a landscape may hold beside its values (files without them still load).
OPTIONAL_ARRAYS = ("loss_stderr", "tokens")


@dataclass
class Landscape:
    """Loss values on points of a parameter subspace, and how they were obtained.

    Attributes:
        coords: ``(n, k)`` float64 coordinates, one row per point (C order for a grid).
        loss: ``(n,)`` float64 loss values; NaN/inf where the loss diverged.
        metrics: extra per-point values (e.g. ``"accuracy"``), each ``(n,)`` float64.
        shape: the grid's shape, or ``None`` for scattered points.
        info: provenance: directions (seed, normalization...), coordinates, model size, data
            size, engine and why it was chosen, device, dtype, timings, ``center_loss``,
            ``n_nonfinite``; for an adaptive landscape ``info["adaptive"]`` (evaluations,
            estimated error, bottleneck bound, rounds).
        loss_stderr: ``(n,)`` standard error of each loss value over the evaluation examples
            (:mod:`saddles.io.data`), or ``None`` where the loss does not report it (and in
            files written before it existed).
        tokens: ``(n,)`` tokens each point was evaluated on, with ``eval_tokens="auto"``
            (:mod:`saddles.landscape.tokens`); ``None`` otherwise.
        measured: for an adaptive landscape, ``(n,)`` bool: which points were evaluated;
            ``None`` when every point was.
        cells: for an adaptive landscape, ``(m, 2 k)`` int: its leaf cells as grid indices
            ``(lo..., hi...)``.
    """

    coords: np.ndarray
    loss: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    shape: tuple[int, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    loss_stderr: np.ndarray | None = None
    tokens: np.ndarray | None = None
    measured: np.ndarray | None = None
    cells: np.ndarray | None = None

    def __repr__(self) -> str:
        where = f"grid {'x'.join(map(str, self.shape))}" if self.shape else "scattered"
        if self.is_adaptive:
            where += f", adaptive: {int(self.measured.sum())} evaluated"
        finite = self.loss[np.isfinite(self.loss)]
        span = f", loss {finite.min():.4g}..{finite.max():.4g}" if finite.size else ""
        extra = f", metrics {sorted(self.metrics)}" if self.metrics else ""
        return f"Landscape({self.n_points} points in {self.dims}-D, {where}{span}{extra})"

    @property
    def n_points(self) -> int:
        return int(self.coords.shape[0])

    @property
    def dims(self) -> int:
        return int(self.coords.shape[1])

    @property
    def is_grid(self) -> bool:
        return self.shape is not None

    @property
    def n_nonfinite(self) -> int:
        """Number of evaluated points whose loss is NaN or inf."""
        bad = ~np.isfinite(self.loss)
        return int((bad & self.measured).sum() if self.is_adaptive else bad.sum())

    @property
    def is_adaptive(self) -> bool:
        """Whether only some points were evaluated (:mod:`saddles.landscape.adaptive`)."""
        return self.measured is not None

    def filled(self, name: str = "loss") -> np.ndarray:
        """The values the metrics use: :meth:`values`, and on an adaptive landscape the
        interpolant of its refinement where no point was evaluated
        (:func:`saddles.landscape.adaptive.fill`)."""
        values = self.values(name)
        if not self.is_adaptive:
            return values
        from saddles.landscape.adaptive import fill

        return fill(np.where(self.measured, values, np.nan), self.shape, self.cells)

    def refinement(self):
        """An adaptive landscape's :class:`~saddles.landscape.adaptive.Refinement`."""
        from saddles.landscape.adaptive import Refinement

        if not self.is_adaptive:
            raise ValueError("this landscape was not refined adaptively; every point is measured")
        return Refinement(self.shape, np.where(self.measured, self.loss, np.nan),
                          self.measured.copy(), self.cells.copy(), self.filled(),
                          dict(self.info.get("adaptive", {})))  # fmt: skip

    def values(self, name: str = "loss") -> np.ndarray:
        """The loss (default) or a metric, one value per point."""
        if name == "loss":
            return self.loss
        if name not in self.metrics:
            raise KeyError(f"no values named {name!r}; have 'loss' and {sorted(self.metrics)}")
        return self.metrics[name]

    def grid(self, name: str = "loss") -> np.ndarray:
        """Values reshaped to the grid (``field[i, j]`` is at ``(axis0[i], axis1[j])``)."""
        if self.shape is None:
            raise ValueError("this landscape was sampled at scattered points, not on a grid")
        return self.values(name).reshape(self.shape)

    def to_graph(
        self,
        connectivity: str = "full",
        k: int | None = None,
        method: str = "auto",
        mode: str = "union",
        name: str = "loss",
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(values, edges)`` for the topology core: one value per point and an edge list.

        The graph of the representation that ``connectivity`` (``"full"``, ``"faces"`` or
        ``"freudenthal"`` on a grid) and ``method`` name, from
        :func:`saddles.topology.representation_edges`, the one path to graphs: scattered
        points get kNN with ``k = 4 x dimension`` by default, as in Xie et al. 2024. Non-finite
        values are kept;
        ``merge_tree(..., nan_policy="max")`` treats them as larger than every finite value.
        """
        from saddles.topology import representation_edges, representation_name

        values = np.asarray(self.filled(name), dtype=np.float64)
        rep = representation_name(connectivity, grid=self.is_grid, method=method, dims=self.dims)
        edges = representation_edges(rep, coords=self.coords, shape=self.shape, k=k, mode=mode)
        return values, edges

    def topology(
        self,
        connectivity: str = "full",
        k: int | None = None,
        method: str = "auto",
        mode: str = "union",
        threshold: float | None = None,
        relative: bool = False,
        nan_policy: str = "max",
        name: str = "loss",
    ) -> tuple[Any, dict[str, float | int]]:
        """Merge tree and metrics of the landscape in one call: ``(tree, metrics)``.

        Builds the graph as :meth:`to_graph`, runs ``merge_tree`` and ``compute_metrics``
        (``threshold``/``relative`` add persistence-simplified metrics). Diverged (NaN/inf)
        points are swept last (``nan_policy="max"``); pass ``"raise"`` to reject them.
        """
        from saddles.topology import compute_metrics, representation_name, representation_tree

        rep = representation_name(connectivity, grid=self.is_grid, method=method, dims=self.dims)
        tree = representation_tree(rep, self.filled(name), coords=self.coords, shape=self.shape,
                                   k=k, mode=mode, nan_policy=nan_policy)  # fmt: skip
        return tree, compute_metrics(tree, threshold=threshold, relative=relative)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (shape, metric names, info).

        Returns the ``.npz`` path; see the module docstring for the format.
        """
        base = strip_suffix(Path(path))
        base.parent.mkdir(parents=True, exist_ok=True)
        shape = self.shape if self.shape is not None else (self.n_points,)
        arrays = {"coords": self.coords, "loss": self.loss.reshape(shape)}
        arrays.update({f"metric__{k}": v.reshape(shape) for k, v in self.metrics.items()})
        for name in OPTIONAL_ARRAYS:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name).reshape(shape)
        if self.is_adaptive:
            arrays.update(measured=self.measured.reshape(shape), cells=self.cells)
        npz = base.with_name(base.name + ".npz")
        atomic_savez(npz, arrays)
        meta = {
            "format": LANDSCAPE_FORMAT,
            "version": LANDSCAPE_VERSION,
            "shape": list(self.shape) if self.shape is not None else None,
            "metrics": sorted(self.metrics),
            "info": self.info,
        }
        atomic_write_text(base.with_name(base.name + ".json"), dumps(meta))
        return npz

    @classmethod
    def load(cls, path: str | os.PathLike) -> Landscape:
        """Read a landscape written by :meth:`save` (``path`` with or without ``.npz``), or
        the finished landscape of a run directory (``evaluate(..., run_dir=path)``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "landscape"
        base = strip_suffix(path)
        npz, side = base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")
        for p in (npz, side):
            if not p.exists():
                raise FileNotFoundError(f"landscape file {p} does not exist")
        meta = json.loads(side.read_text())
        if meta.get("format") != LANDSCAPE_FORMAT:
            raise ValueError(f"{side} is not a saddles landscape sidecar")
        if meta.get("version", 0) > LANDSCAPE_VERSION:
            raise ValueError(
                f"{side} has format version {meta['version']}; this saddles reads up to "
                f"{LANDSCAPE_VERSION}"
            )
        with np.load(npz, allow_pickle=False) as z:
            coords, loss = z["coords"], z["loss"].reshape(-1)
            metrics = {name: z[f"metric__{name}"].reshape(-1) for name in meta["metrics"]}
            extra = {k: z[k].reshape(-1) for k in OPTIONAL_ARRAYS if k in z.files}
            measured = z["measured"].reshape(-1) if "measured" in z.files else None
            cells = z["cells"] if "cells" in z.files else None
        shape = tuple(meta["shape"]) if meta["shape"] is not None else None
        return cls(coords, loss, metrics, shape, meta.get("info", {}), **extra,
                   measured=measured, cells=cells)  # fmt: skip


def strip_suffix(path: Path) -> Path:
    """``a/b.npz`` and ``a/b.json`` -> ``a/b``; other paths unchanged."""
    return path.with_suffix("") if path.suffix in (".npz", ".json") else path


def dumps(obj: Any) -> str:
    """JSON for sidecars and run configurations: sorted keys, non-finite floats as text."""
    return json.dumps(to_jsonable(obj, nonfinite="string"), indent=1, sort_keys=True)
