"""Render an exported ``.vti`` landscape to a PNG with VTK's offscreen renderer.

The image's ``loss`` becomes a height field (``vtkWarpScalar`` of the image's surface, scaled
so that the loss range spans half the domain's width), coloured by the loss; the critical
points of ``<name>-critical.vtp`` beside it, when present, are drawn as spheres (minima blue,
saddles red, the essential maximum yellow). It is a check that an exported file opens and
looks right outside saddles, as it would in ParaView.

Usage:
    python benchmarks/render_vti.py IN.vti OUT.png
    python benchmarks/render_vti.py --demo OUT.png   # exports Himmelblau's function first

Needs the ``vtk`` package (``pip install 'saddles[export]'``); no screen (EGL or OSMesa).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def render(vti: Path, png: Path, size: tuple[int, int] = (900, 700)) -> Path:
    """Draw ``vti`` (and its ``-critical.vtp``) into ``png``; returns the path."""
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL backend)
    from vtkmodules.vtkCommonColor import vtkNamedColors
    from vtkmodules.vtkFiltersCore import vtkGlyph3D
    from vtkmodules.vtkFiltersGeneral import vtkWarpScalar
    from vtkmodules.vtkFiltersGeometry import vtkImageDataGeometryFilter
    from vtkmodules.vtkFiltersSources import vtkSphereSource
    from vtkmodules.vtkIOImage import vtkPNGWriter
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader, vtkXMLPolyDataReader
    from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
    from vtkmodules.vtkRenderingCore import (
        vtkActor,
        vtkPolyDataMapper,
        vtkRenderer,
        vtkRenderWindow,
        vtkWindowToImageFilter,
    )

    reader = vtkXMLImageDataReader()
    reader.SetFileName(str(vti))
    reader.Update()
    image = reader.GetOutput()
    image.GetPointData().SetActiveScalars("loss")
    lo, hi = image.GetPointData().GetArray("loss").GetRange()
    x0, x1, y0, y1, _, _ = image.GetBounds()
    scale = 0.5 * max(x1 - x0, y1 - y0) / (hi - lo or 1.0)

    surface = vtkImageDataGeometryFilter()
    surface.SetInputData(image)
    warp = vtkWarpScalar()
    warp.SetInputConnection(surface.GetOutputPort())
    warp.SetScaleFactor(scale)
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(warp.GetOutputPort())
    mapper.SetScalarRange(lo, hi)
    lut = mapper.GetLookupTable()
    lut.SetHueRange(0.667, 0.0)  # blue (low) to red (high)
    actor = vtkActor()
    actor.SetMapper(mapper)

    renderer = vtkRenderer()
    renderer.AddActor(actor)
    bar = vtkScalarBarActor()
    bar.SetLookupTable(lut)
    bar.SetTitle("loss")
    bar.SetNumberOfLabels(5)
    bar.SetMaximumWidthInPixels(90)
    bar.SetPosition(0.88, 0.1)
    bar.SetWidth(0.1)
    for text in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
        text.SetColor(0.1, 0.1, 0.1)
        text.ShadowOff()
        text.ItalicOff()
    renderer.AddViewProp(bar)

    critical = vti.with_name(vti.stem + "-critical.vtp")
    if critical.exists():
        points = vtkXMLPolyDataReader()
        points.SetFileName(str(critical))
        points.Update()
        cloud = points.GetOutput()
        cloud.GetPointData().SetActiveScalars("critical_type")
        lifted = vtkWarpScalar()  # raise each point to its loss, like the surface
        lifted.SetInputData(cloud)
        lifted.SetInputArrayToProcess(0, 0, 0, 0, "value")
        lifted.SetScaleFactor(scale)
        sphere = vtkSphereSource()
        sphere.SetRadius(0.012 * max(x1 - x0, y1 - y0))
        glyphs = vtkGlyph3D()
        glyphs.SetInputConnection(lifted.GetOutputPort())
        glyphs.SetSourceConnection(sphere.GetOutputPort())
        glyphs.SetScaleModeToDataScalingOff()
        glyphs.SetColorModeToColorByScalar()
        glyph_mapper = vtkPolyDataMapper()
        glyph_mapper.SetInputConnection(glyphs.GetOutputPort())
        glyph_mapper.SetScalarRange(0, 2)
        glyph_mapper.GetLookupTable().SetHueRange(0.6, 0.15)  # minimum, saddle, maximum
        glyph_actor = vtkActor()
        glyph_actor.SetMapper(glyph_mapper)
        renderer.AddActor(glyph_actor)

    renderer.SetBackground(vtkNamedColors().GetColor3d("White"))
    width = max(x1 - x0, y1 - y0)
    cx, cy, cz = (x0 + x1) / 2, (y0 + y1) / 2, 0.25 * width
    camera = renderer.GetActiveCamera()  # from the front (-y), above, looking at the middle
    camera.SetFocalPoint(cx, cy, cz)
    camera.SetPosition(cx + 0.8 * width, cy - 2.2 * width, cz + 1.9 * width)
    camera.SetViewUp(0, 0, 1)
    renderer.ResetCameraClippingRange()

    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.AddRenderer(renderer)
    window.SetSize(*size)
    window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    png.parent.mkdir(parents=True, exist_ok=True)
    writer = vtkPNGWriter()
    writer.SetFileName(str(png))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    return png


def demo_vti(folder: Path) -> Path:
    """Himmelblau's function on a 121 x 121 grid of [-5, 5]^2, exported with saddles."""
    import numpy as np

    from saddles.analytic import himmelblau
    from saddles.report.export import export_arrays

    axis = np.linspace(-5, 5, 121)
    a0, a1 = np.meshgrid(axis, axis, indexing="ij")  # field[i, j] at (x = a1, y = a0)
    field = np.log1p(himmelblau(a1, a0))
    coords = np.stack([a0.ravel(), a1.ravel()], axis=1)
    paths = export_arrays(folder, "himmelblau", field, coords=coords, shape=field.shape,
                          threshold=0.05, relative=True)  # fmt: skip
    return paths[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vti", nargs="?", type=Path, help="an exported .vti")
    parser.add_argument("png", type=Path, help="the PNG to write")
    parser.add_argument("--demo", action="store_true", help="render Himmelblau's function")
    args = parser.parse_args()
    if args.demo:
        with tempfile.TemporaryDirectory() as tmp:
            print(render(demo_vti(Path(tmp)), args.png))
    elif args.vti is None:
        parser.error("give IN.vti, or --demo")
    else:
        print(render(args.vti, args.png))


if __name__ == "__main__":
    main()
