"""Landscapes and their critical points as VTK XML files, for ParaView and TTK.

Numpy arrays in, files out; never imports torch. What is written, by landscape:

- a grid in 1 to 3 dimensions: ``<name>.vti`` (``vtkImageData``), the loss and each metric as
  point data; origin and spacing from the grid's coordinates (unit spacing from 0 for a bare
  field). **x is numpy's last axis**, VTK's and TTK's image convention: ``f[i, j]`` is at
  ``x = axis1[j], y = axis0[i]``, so the point order of the file is the array's C order;
- scattered points in 1 to 3 dimensions: ``<name>.vtu`` (``vtkUnstructuredGrid``): the points
  at their coordinates (x = the first coordinate), the representation's graph (kNN,
  Delaunay, Gabriel, from :func:`saddles.topology.representation_edges`) as line cells;
- more than 3 dimensions (grid or scattered): ``<name>.vtu`` of vertex cells, a point cloud
  placed at its first three coordinates;
- always: the critical points, ``<name>-critical.vtp`` (``vtkPolyData`` of vertices, placed
  like the landscape's points) and ``<name>-critical.csv``: two rows per persistence pair of
  TTK's diagram (:func:`saddles.topology.persistence_pairs`), its minimum and its saddle (or
  for an essential class, the component maximum TTK pairs it with), with ``pair_id``,
  ``persistence``, the value, the vertex id and the coordinates.

Every file also carries the full coordinates as a point-data array ``coords`` (``(n, k)``).

The writer is the ``vtk`` package (Kitware's wheel, the ``saddles[export]`` extra), imported
when a file is written. It was chosen over ``meshio`` (a 170 kB pure-Python wheel) for
completeness: meshio writes ``.vtu`` but has no ``vtkImageData`` (``.vti``) or ``.vtp``
writer and no renderer, while vtk has every XML writer and reader (the tests read each file
back with them) and offscreen rendering (``benchmarks/render_vti.py``). It weighs far more
(a 140 MB wheel, about 570 MB installed), which is why it is an optional extra.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

#: ``critical_type`` codes of the critical-point files.
CRITICAL_TYPES = {0: "minimum", 1: "saddle", 2: "maximum"}


def export_landscape(
    landscape: Any, out_dir: str | os.PathLike, name: str = "landscape", **options: Any
) -> list[Path]:
    """:func:`export_arrays` for a :class:`~saddles.landscape.Landscape` (or anything with
    ``loss``, ``coords``, ``metrics`` and ``shape``). An adaptive landscape exports its filled
    field (the one its metrics use) and a ``measured`` array (1 where evaluated); the loss's
    standard error and the tokens per point, where the landscape has them, go with the metrics
    as point data."""
    loss, metrics = landscape.loss, landscape.metrics
    if getattr(landscape, "is_adaptive", False):
        loss = landscape.filled()
        metrics = {name: landscape.filled(name) for name in metrics}
        metrics["measured"] = landscape.measured.astype(np.float64)
    extra = {k: getattr(landscape, k, None) for k in ("loss_stderr", "tokens")}
    metrics = {**metrics, **{k: v for k, v in extra.items() if v is not None}}
    return export_arrays(
        out_dir, name, loss, coords=landscape.coords, shape=landscape.shape,
        metrics=metrics, **options,
    )  # fmt: skip


def export_arrays(
    out_dir: str | os.PathLike,
    name: str,
    loss: np.ndarray,
    *,
    coords: np.ndarray | None = None,
    shape: tuple[int, ...] | None = None,
    metrics: dict[str, np.ndarray] | None = None,
    representation: str | None = None,
    k: int | None = None,
    threshold: float | None = None,
    relative: bool = False,
) -> list[Path]:
    """Write a landscape and its critical points into ``out_dir``; return the paths.

    ``loss`` holds one value per point (any shape; flattened in C order). A grid has a
    ``shape`` (and optionally its ``(n, k)`` ``coords`` in C order, as ``Landscape`` stores
    them; without coords a bare field, its shape by default, sits at its grid indices);
    scattered points have ``coords`` and no shape. ``representation`` (default
    ``grid-full`` on a grid, ``knn`` on points) and ``k`` choose the graph of the merge tree
    and of a scattered ``.vtu``; ``threshold`` (``relative``: a fraction of the value range)
    keeps only the critical points of pairs at least that persistent.
    """
    from saddles.topology import persistence_pairs, representation_tree, simplify
    from saddles.topology.representations import GRID_REPRESENTATIONS, representation_edges

    loss = np.asarray(loss, dtype=np.float64)
    if shape is None and coords is None:  # a bare field: a grid of its own shape
        shape = loss.shape
    loss = loss.reshape(-1)
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) != loss.size:
            raise ValueError(f"{loss.size} values do not fill a grid of shape {shape}")
    if coords is not None:
        coords = np.asarray(coords, dtype=np.float64)
        if coords.ndim == 1:
            coords = coords[:, None]
        if len(coords) != loss.size:
            raise ValueError(f"{loss.size} values but {len(coords)} coordinates")
    arrays = {"loss": loss}
    for key, value in (metrics or {}).items():
        arrays[key] = np.asarray(value, dtype=np.float64).reshape(-1)
    if coords is None:  # a bare field: grid indices as coordinates
        coords = np.stack(np.unravel_index(np.arange(loss.size), shape), axis=1).astype(float)
    dims = coords.shape[1]
    representation = representation or ("grid-full" if shape is not None else "knn")
    grid = representation in GRID_REPRESENTATIONS
    if grid and shape is None:
        raise ValueError(f"{representation} needs a grid; these are scattered points")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if file_suffix(shape, dims) == ".vti":
        origin, spacing = grid_geometry(coords, shape)
        paths.append(write_image(out_dir / f"{name}.vti", arrays, shape, origin, spacing,
                                 coords=coords))  # fmt: skip
        positions = image_positions(coords)
    elif dims <= 3:
        edges = representation_edges(representation, coords=coords, shape=shape, k=k)
        positions = point_positions(coords)
        paths.append(write_graph(out_dir / f"{name}.vtu", positions, edges, arrays, coords))
    else:
        positions = point_positions(coords)
        paths.append(write_graph(out_dir / f"{name}.vtu", positions, None, arrays, coords))

    tree = representation_tree(representation, loss, coords=None if grid else coords,
                               shape=shape if grid else None, k=k)  # fmt: skip
    if threshold is not None:
        tree = simplify(tree, threshold, relative=relative)
    pairs = persistence_pairs(tree, coords=coords)
    paths.extend(write_critical_points(out_dir / f"{name}-critical", pairs, positions))
    return paths


def file_suffix(shape: tuple[int, ...] | None, dims: int) -> str:
    """The landscape file :func:`export_arrays` writes: ``.vti`` for a grid in 1 to 3
    dimensions, ``.vtu`` for scattered points or more dimensions (see the module docstring)."""
    return ".vti" if shape is not None and len(shape) <= 3 else ".vtu"


def grid_geometry(coords: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(origin, spacing)`` of a regular grid in VTK's axis order (x = numpy's last axis),
    padded to 3 entries; ``coords`` is ``(n, k)`` in C order. A grid whose axes are not evenly
    spaced, or whose points are not the product of its axes, is an error."""
    k = len(shape)
    coords = np.asarray(coords, dtype=np.float64).reshape(*shape, k)
    origin, spacing = np.zeros(3), np.ones(3)
    for d in range(k):
        index = (0,) * d + (slice(None),) + (0,) * (k - d - 1)
        axis = coords[index][:, d]
        step = (axis[-1] - axis[0]) / (len(axis) - 1) if len(axis) > 1 else 1.0
        expected = axis[0] + step * np.arange(len(axis))
        tol = 1e-9 * max(1.0, float(np.abs(axis).max()))
        shaped = expected.reshape((1,) * d + (-1,) + (1,) * (k - d - 1))
        if not np.allclose(axis, expected, rtol=1e-6, atol=tol) or not np.allclose(
            coords[..., d], shaped, rtol=1e-6, atol=tol
        ):
            raise ValueError(f"axis {d} of the grid is not evenly spaced; .vti needs a "
                             "regular grid")  # fmt: skip
        if step == 0:
            raise ValueError(f"axis {d} of the grid has zero spacing")
        origin[k - 1 - d], spacing[k - 1 - d] = axis[0], step
    return origin, spacing


def image_positions(coords: np.ndarray) -> np.ndarray:
    """Where grid points sit in a ``.vti``: ``(n, 3)``, x = the last coordinate."""
    return _pad3(np.asarray(coords, dtype=np.float64)[:, ::-1])


def point_positions(coords: np.ndarray) -> np.ndarray:
    """Where scattered points sit: ``(n, 3)``, their first three coordinates (zero-padded)."""
    return _pad3(np.asarray(coords, dtype=np.float64))


def write_image(
    path: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    shape: tuple[int, ...],
    origin: np.ndarray,
    spacing: np.ndarray,
    coords: np.ndarray | None = None,
) -> Path:
    """A ``.vti`` of arrays on a grid of ``shape`` (1 to 3 dimensions, numpy order; x is the
    last axis); ``origin`` and ``spacing`` are in VTK's (x, y, z) order."""
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkIOXML import vtkXMLImageDataWriter

    if not 1 <= len(shape) <= 3:
        raise ValueError(f".vti holds 1- to 3-D grids, not {len(shape)}-D")
    image = vtkImageData()
    image.SetDimensions(*(list(shape[::-1]) + [1] * (3 - len(shape))))
    image.SetOrigin(*map(float, origin))
    image.SetSpacing(*map(float, spacing))
    _add_point_data(image, arrays, coords)
    axes = [f"{'xyz'[d]} = axis {len(shape) - 1 - d}" for d in range(len(shape))]
    _add_field_strings(image, "axes", axes)
    return _write(vtkXMLImageDataWriter(), image, path)


def write_graph(
    path: str | os.PathLike,
    positions: np.ndarray,
    edges: np.ndarray | None,
    arrays: dict[str, np.ndarray],
    coords: np.ndarray | None = None,
) -> Path:
    """A ``.vtu`` of points at ``positions`` (``(n, 3)``) with ``edges`` (``(m, 2)``) as line
    cells, or, with ``edges=None``, one vertex cell per point (a point cloud)."""
    from vtkmodules.util.vtkConstants import VTK_LINE, VTK_VERTEX
    from vtkmodules.vtkCommonDataModel import vtkUnstructuredGrid
    from vtkmodules.vtkIOXML import vtkXMLUnstructuredGridWriter

    grid = vtkUnstructuredGrid()
    grid.SetPoints(_points(positions))
    if edges is None:
        grid.SetCells(VTK_VERTEX, _cells(np.arange(len(positions))[:, None]))
    else:
        grid.SetCells(VTK_LINE, _cells(np.asarray(edges, dtype=np.int64).reshape(-1, 2)))
    _add_point_data(grid, arrays, coords)
    return _write(vtkXMLUnstructuredGridWriter(), grid, path)


def write_critical_points(
    base: str | os.PathLike, pairs: dict[str, np.ndarray], positions: np.ndarray
) -> list[Path]:
    """``<base>.vtp`` (vertices) and ``<base>.csv``: each pair's two ends (see the module
    docstring); ``positions`` (``(n, 3)``) places every vertex of the landscape."""
    from vtkmodules.vtkCommonDataModel import vtkPolyData
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

    table = critical_points_table(pairs)
    base = Path(base)
    poly = vtkPolyData()
    vertex = table["vertex"]
    poly.SetPoints(_points(positions[vertex] if len(vertex) else np.zeros((0, 3))))
    poly.SetVerts(_cells(np.arange(len(vertex))[:, None]))
    _add_point_data(poly, {k: v for k, v in table.items() if k != "coords"}, table["coords"])
    vtp = _write(vtkXMLPolyDataWriter(), poly, base.with_name(base.name + ".vtp"))

    csv_path = base.with_name(base.name + ".csv")
    k = table["coords"].shape[1]
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["pair_id", "type", "critical_type", "vertex", "value", "persistence",
                         "essential", *(f"coord_{d}" for d in range(k))])  # fmt: skip
        for i in range(len(vertex)):
            code = int(table["critical_type"][i])
            writer.writerow([int(table["pair_id"][i]), CRITICAL_TYPES[code], code,
                             int(vertex[i]), repr(float(table["value"][i])),
                             repr(float(table["persistence"][i])), int(table["essential"][i]),
                             *(repr(float(c)) for c in table["coords"][i])])  # fmt: skip
    return [vtp, csv_path]


def critical_points_table(pairs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two rows per pair, ``(minimum, saddle-or-maximum)``, as columns ``pair_id``,
    ``critical_type`` (:data:`CRITICAL_TYPES`), ``vertex``, ``value``, ``persistence``,
    ``essential`` and ``coords``."""
    p = len(pairs["pair_id"])
    births = pairs.get("birth_coords", np.zeros((p, 0)))
    deaths = pairs.get("death_coords", np.zeros((p, 0)))
    return {
        "pair_id": np.repeat(pairs["pair_id"], 2),
        "critical_type": _interleave(np.zeros(p, np.int64), np.where(pairs["essential"], 2, 1)),
        "vertex": _interleave(pairs["birth_vertex"], pairs["death_vertex"]),
        "value": _interleave(pairs["birth"], pairs["death"]),
        "persistence": np.repeat(pairs["persistence"], 2),
        "essential": np.repeat(pairs["essential"].astype(np.int64), 2),
        "coords": _interleave(births, deaths).astype(np.float64),
    }


# --- internals ---------------------------------------------------------------------------


def _interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows ``a[0], b[0], a[1], b[1], ...``."""
    return np.stack([a, b], axis=1).reshape(2 * len(a), *a.shape[1:])


def _pad3(xyz: np.ndarray) -> np.ndarray:
    out = np.zeros((len(xyz), 3))
    k = min(3, xyz.shape[1])
    out[:, :k] = xyz[:, :k]
    return out


def _points(positions: np.ndarray):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import vtkPoints

    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(positions, dtype=np.float64), deep=True))
    return points


def _cells(connectivity: np.ndarray):
    """A ``vtkCellArray`` of cells with the same number of points, one row each."""
    from vtkmodules.util.numpy_support import numpy_to_vtkIdTypeArray
    from vtkmodules.vtkCommonDataModel import vtkCellArray

    n, width = connectivity.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    flat = connectivity.astype(np.int64).ravel()
    cells = vtkCellArray()
    cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_to_vtkIdTypeArray(flat, deep=True))  # fmt: skip
    return cells


def _add_point_data(dataset, arrays: dict[str, np.ndarray], coords: np.ndarray | None) -> None:
    from vtkmodules.util.numpy_support import numpy_to_vtk

    data = dataset.GetPointData()
    named = dict(arrays)
    if coords is not None:
        named["coords"] = np.asarray(coords, dtype=np.float64)
    for key, value in named.items():
        value = np.ascontiguousarray(value)
        array = numpy_to_vtk(value if value.ndim > 1 else value.reshape(-1), deep=True)
        array.SetName(key)
        data.AddArray(array)
    if "loss" in arrays:
        data.SetActiveScalars("loss")


def _add_field_strings(dataset, name: str, values: list[str]) -> None:
    from vtkmodules.vtkCommonCore import vtkStringArray

    array = vtkStringArray()
    array.SetName(name)
    for v in values:
        array.InsertNextValue(v)
    dataset.GetFieldData().AddArray(array)


def _write(writer, dataset, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.SetFileName(str(path))
    writer.SetInputData(dataset)
    writer.SetDataModeToAppended()
    writer.EncodeAppendedDataOff()
    writer.SetCompressorTypeToZLib()
    if writer.Write() != 1:
        raise OSError(f"vtk could not write {path}")
    return path
