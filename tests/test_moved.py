"""saddles._moved: every module path of the 0.1 layout still imports, forwards its names to the
new home and warns once per access; nothing inside saddles uses the old paths."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from saddles._moved import MOVED

SRC = Path(__file__).resolve().parents[1] / "src" / "saddles"

#: One public name each old module had, and the module that holds it now.
SAMPLES = {
    "saddles.pipeline": ("AnalysisConfig", "saddles.runs.config"),
    "saddles.dynamics": ("dynamics_report", "saddles.report.dynamics"),
    "saddles.compare": ("write_comparison", "saddles.report.compare"),
    "saddles.summary": ("seed_summary", "saddles.runs.summary"),
    "saddles.relations": ("correlate", "saddles.runs.relate"),
    "saddles.figures": ("write_figures", "saddles.report.figures"),
    "saddles.plots": ("curve_figure", "saddles.report.plots"),
    "saddles.hessian_plots": ("plot_density", "saddles.report.hessian_plots"),
    "saddles.export": ("export_landscape", "saddles.report.export"),
    "saddles.data": ("as_batches", "saddles.io.data"),
    "saddles.models": ("load_model", "saddles.io.models"),
    "saddles.checkpoints": ("load_state_dict", "saddles.io.checkpoints"),
    "saddles.params": ("select", "saddles.io.params"),
}


def test_every_moved_module_has_a_sample():
    assert set(SAMPLES) == set(MOVED)


@pytest.mark.parametrize("old", sorted(SAMPLES))
def test_an_old_path_forwards_and_warns(old):
    name, home = SAMPLES[old]
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old}.{name} moved to {home}")):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_from_import_of_an_old_path_works():
    code = ("import warnings; warnings.simplefilter('error'); "
            "from saddles.pipeline import analyze")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "DeprecationWarning" in out.stderr
    code = "from saddles.pipeline import analyze; print(analyze.__module__)"
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "saddles.runs.analyze"


def test_nothing_inside_saddles_imports_an_old_path():
    old = "|".join(re.escape(m) for m in MOVED)
    pattern = re.compile(rf"^\s*(from ({old}) import|import ({old})\b)", re.M)
    short = "|".join(m.rsplit(".", 1)[1] for m in MOVED)
    bare = re.compile(rf"^\s*from saddles import ({short})\b", re.M)
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if pattern.search(p.read_text()) or bare.search(p.read_text())]  # fmt: skip
    assert offenders == []


def test_no_file_stands_at_an_old_path():
    for old in MOVED:
        assert not (SRC / (old.split(".", 1)[1] + ".py")).exists(), old
