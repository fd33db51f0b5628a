"""saddles.io.sources: a new model source is one registration; load_model, the run schema's
path resolution and the command line's random-initialization warning all follow it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from saddles.io import sources
from saddles.io.models import load_model
from saddles.runs.schema import resolve


def toy_loader(rest: str, dtype=None) -> torch.nn.Module:
    """A 'pretrained' model whose width is the spec's rest."""
    torch.manual_seed(0)
    net = torch.nn.Linear(int(rest), 1)
    return net if dtype is None else net.to(dtype)


def test_a_registered_source_loads_and_is_read_as_it_says(monkeypatch, capsys):
    monkeypatch.setattr(sources, "SOURCES", dict(sources.SOURCES))
    sources.register_source(sources.ModelSource("toy:", f"{__name__}:toy_loader", path=False))
    net = load_model("toy:3", dtype=torch.float64)
    assert net.in_features == 3 and net.weight.dtype == torch.float64
    assert resolve("toy:3", Path("/base")) == "toy:3"  # not a path: left as it is
    assert resolve("hf:run/step0", Path("/base")) == "hf:/base/run/step0"
    from saddles.cli._loading import warn_random_init

    warn_random_init("toy:3")
    warn_random_init("pkg.nets:make")
    err = capsys.readouterr().err
    assert "toy:3" not in err and "pkg.nets:make()'s random initialization" in err
    with pytest.raises(ValueError, match="already registered"):
        sources.register_source(sources.ModelSource("toy:", "elsewhere:load"))
    with pytest.raises(ValueError, match="ends with ':'"):
        sources.register_source(sources.ModelSource("toy", "elsewhere:load"))


def test_the_sources_module_needs_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, saddles.io.sources as s; assert 'torch' not in sys.modules; print(*s.SOURCES)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == ["hf:"], done.stderr
