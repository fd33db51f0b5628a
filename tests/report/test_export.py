"""saddles.report.export and `saddles export`: every file read back with vtk's own XML readers."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOXML import (
    vtkXMLImageDataReader,
    vtkXMLPolyDataReader,
    vtkXMLUnstructuredGridReader,
)

from saddles.cli import app
from saddles.report.export import export_arrays, grid_geometry
from saddles.topology import merge_tree_grid, persistence_pairs, representation_edges

runner = CliRunner()


def read(path):
    reader = {".vti": vtkXMLImageDataReader, ".vtu": vtkXMLUnstructuredGridReader,
              ".vtp": vtkXMLPolyDataReader}[path.suffix]()  # fmt: skip
    reader.SetFileName(str(path))
    reader.Update()
    return reader.GetOutput()


def point_array(data, name):
    return vtk_to_numpy(data.GetPointData().GetArray(name))


def asymmetric_grid():
    """f[i, j] on axis0 = 4 values in [-1, 1] and axis1 = 7 values in [0, 3]."""
    axis0, axis1 = np.linspace(-1, 1, 4), np.linspace(0, 3, 7)
    a0, a1 = np.meshgrid(axis0, axis1, indexing="ij")
    field = (a1 - 1.2) ** 2 + np.sin(3 * a0) + 0.1 * a0 * a1
    return field, np.stack([a0.ravel(), a1.ravel()], axis=1), axis0, axis1


def test_vti_round_trip_keeps_values_geometry_and_x_last(tmp_path):
    field, coords, axis0, axis1 = asymmetric_grid()
    paths = export_arrays(tmp_path, "g", field, coords=coords, shape=field.shape,
                          metrics={"accuracy": -field})  # fmt: skip
    assert [p.name for p in paths] == ["g.vti", "g-critical.vtp", "g-critical.csv"]
    image = read(paths[0])
    assert image.GetDimensions() == (7, 4, 1)  # x = numpy's last axis
    np.testing.assert_allclose(image.GetOrigin(), (0.0, -1.0, 0.0))
    np.testing.assert_allclose(image.GetSpacing(), (0.5, 2 / 3, 1.0))
    loss = point_array(image, "loss")
    np.testing.assert_array_equal(loss, field.ravel())  # C order is VTK's point order
    np.testing.assert_array_equal(point_array(image, "accuracy"), -field.ravel())
    for i, j in [(0, 6), (3, 1), (2, 4)]:  # the point at (x, y) = (axis1[j], axis0[i])
        pid = image.FindPoint(axis1[j], axis0[i], 0.0)
        assert loss[pid] == field[i, j]
        np.testing.assert_allclose(image.GetPoint(pid)[:2], (axis1[j], axis0[i]))
    np.testing.assert_array_equal(point_array(image, "coords"), coords)


def test_3d_vti_and_a_bare_field_at_grid_indices(tmp_path):
    field = np.random.default_rng(0).random((2, 3, 5))
    image = read(export_arrays(tmp_path, "f", field)[0])
    assert image.GetDimensions() == (5, 3, 2)
    np.testing.assert_allclose(image.GetOrigin(), 0)
    np.testing.assert_allclose(image.GetSpacing(), 1)
    np.testing.assert_array_equal(point_array(image, "loss"), field.ravel())
    assert image.GetPoint(image.FindPoint(4, 1, 0)) == (4.0, 1.0, 0.0)
    assert point_array(image, "loss")[image.FindPoint(4, 1, 0)] == field[0, 1, 4]


def test_uneven_grid_is_refused():
    coords = np.stack(np.meshgrid([0, 1, 3.0], [0, 1.0], indexing="ij"), -1).reshape(-1, 2)
    with pytest.raises(ValueError, match="not evenly spaced"):
        grid_geometry(coords, (3, 2))


def test_critical_points_vtp_and_csv_match_the_pairs(tmp_path):
    field, coords, _, _ = asymmetric_grid()
    _, vtp, table = export_arrays(tmp_path, "g", field, coords=coords, shape=field.shape)
    pairs = persistence_pairs(merge_tree_grid(field, "full"), coords=coords)
    points = read(vtp)
    n = len(pairs["pair_id"])
    assert points.GetNumberOfPoints() == points.GetNumberOfVerts() == 2 * n
    np.testing.assert_array_equal(point_array(points, "pair_id"), np.repeat(np.arange(n), 2))
    np.testing.assert_array_equal(point_array(points, "vertex")[::2], pairs["birth_vertex"])
    np.testing.assert_array_equal(point_array(points, "vertex")[1::2], pairs["death_vertex"])
    np.testing.assert_allclose(point_array(points, "persistence")[::2], pairs["persistence"])
    xyz = vtk_to_numpy(points.GetPoints().GetData())
    np.testing.assert_allclose(xyz[::2, :2], pairs["birth_coords"][:, ::-1])  # x = axis 1
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * n and rows[0]["type"] == "minimum"
    assert {r["type"] for r in rows[1::2]} <= {"saddle", "maximum"}
    np.testing.assert_allclose([float(r["value"]) for r in rows[::2]], pairs["birth"])
    np.testing.assert_allclose([float(r["coord_1"]) for r in rows[1::2]],
                               pairs["death_coords"][:, 1])  # fmt: skip


def test_scattered_vtu_has_the_graph_as_lines(tmp_path):
    pts = np.random.default_rng(2).uniform(-1, 1, size=(40, 2))
    loss = (pts**2).sum(1) + 0.3 * np.sin(5 * pts[:, 0])
    for rep in ("knn", "delaunay", "gabriel"):
        path = export_arrays(tmp_path, rep, loss, coords=pts, representation=rep)[0]
        grid = read(path)
        edges = representation_edges(rep, coords=pts)
        assert grid.GetNumberOfPoints() == 40 and grid.GetNumberOfCells() == len(edges)
        conn = vtk_to_numpy(grid.GetCells().GetConnectivityArray()).reshape(-1, 2)
        np.testing.assert_array_equal(conn, edges)
        assert {grid.GetCellType(i) for i in range(grid.GetNumberOfCells())} == {3}  # lines
        np.testing.assert_allclose(vtk_to_numpy(grid.GetPoints().GetData())[:, :2], pts)
        np.testing.assert_array_equal(point_array(grid, "loss"), loss)


def test_more_than_three_dimensions_is_a_point_cloud(tmp_path):
    pts = np.random.default_rng(3).normal(size=(30, 5))
    grid = read(export_arrays(tmp_path, "p", (pts**2).sum(1), coords=pts)[0])
    assert grid.GetNumberOfCells() == 30 and grid.GetCellType(0) == 1  # vertices
    np.testing.assert_array_equal(point_array(grid, "coords"), pts)
    np.testing.assert_allclose(vtk_to_numpy(grid.GetPoints().GetData()), pts[:, :3])


def saved_landscape(path, shape=(5, 6)):
    """A landscape file as Landscape.save writes it."""
    from saddles.landscape import Landscape
    from saddles.sampling import grid

    c = grid(list(shape), [(-1, 1), (0, 2)], dims=2)
    loss = np.cos(3 * c.points[:, 0]) + (c.points[:, 1] - 1) ** 2
    land = Landscape(c.points, loss, {"accuracy": 1 - loss}, tuple(shape), {})
    return land.save(path)


def test_cli_exports_files_run_directories_and_fields(tmp_path):
    npz = saved_landscape(tmp_path / "one")
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", str(npz), str(out), "--threshold", "0.1",
                                 "--relative"])  # fmt: skip
    assert result.exit_code == 0, result.output
    image = read(out / "one.vti")
    assert image.GetDimensions() == (6, 5, 1)
    np.testing.assert_allclose(image.GetOrigin()[:2], (0, -1))
    assert image.GetPointData().GetArray("accuracy") is not None
    # a pipeline run directory: one landscape per direction kind
    run = tmp_path / "run"
    for kind in ("random", "hessian"):
        saved_landscape(run / f"landscape-{kind}" / "landscape")
    result = runner.invoke(app, ["export", str(run), str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "landscape-random.vti").exists() and (
        out / "landscape-hessian-critical.vtp"
    ).exists()
    # a field as `saddles topology` reads it
    np.save(tmp_path / "field.npy", np.random.default_rng(0).random((4, 4, 4)))
    result = runner.invoke(app, ["export", str(tmp_path / "field.npy"), str(out)])
    assert result.exit_code == 0 and read(out / "field.vti").GetDimensions() == (4, 4, 4)
    result = runner.invoke(app, ["export", str(tmp_path / "missing"), str(out)])
    assert result.exit_code != 0 and "no such file" in result.output


def test_export_command_does_not_import_torch(tmp_path):
    npz = saved_landscape(tmp_path / "l")
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from saddles.cli import app\n"
        f"r = CliRunner().invoke(app, ['export', {str(npz)!r}, {str(tmp_path / 'o')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "l.json").read_text())["shape"] == [5, 6]


def test_an_out_ending_in_vti_or_vtu_is_the_file_itself(tmp_path):
    npz = saved_landscape(tmp_path / "one")
    result = runner.invoke(app, ["export", str(npz), str(tmp_path / "picture.vti")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "picture.vti").is_file()  # a file, not a folder named picture.vti
    assert read(tmp_path / "picture.vti").GetDimensions() == (6, 5, 1)
    assert (tmp_path / "picture-critical.vtp").is_file()
    assert (tmp_path / "picture-critical.csv").is_file()
    # a grid is not written as .vtu; the error names the suffix to use
    result = runner.invoke(app, ["export", str(npz), str(tmp_path / "cloud.vtu")])
    assert result.exit_code == 2 and "cloud.vti" in result.output
    assert not (tmp_path / "cloud.vtu").exists()
    # scattered points are a .vtu
    pts = np.random.default_rng(4).uniform(-1, 1, size=(30, 2))
    np.savez(tmp_path / "points.npz", loss=(pts**2).sum(1), coords=pts)
    result = runner.invoke(app, ["export", str(tmp_path / "points.npz"), str(tmp_path / "p.vtu")])
    assert result.exit_code == 0, result.output
    assert read(tmp_path / "p.vtu").GetNumberOfPoints() == 30
    # several landscapes need a folder
    run = tmp_path / "run"
    for kind in ("random", "hessian"):
        saved_landscape(run / f"landscape-{kind}" / "landscape")
    result = runner.invoke(app, ["export", str(run), str(tmp_path / "both.vti")])
    assert result.exit_code == 2 and "2 landscapes" in result.output


def test_export_reads_through_landscape_load_and_its_version_check(tmp_path):
    npz = saved_landscape(tmp_path / "new")
    side = tmp_path / "new.json"
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "version": meta["version"] + 1}))
    result = runner.invoke(app, ["export", str(npz), str(tmp_path / "o")])
    assert result.exit_code == 2 and "format version" in result.output
    assert not (tmp_path / "o").exists()
