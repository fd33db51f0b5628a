"""The single-span run the scale tests compare against the code before span sweeps existed.

``python tests/runs/scales_reference.py OUT.json`` (with ``src`` of the commit to record on
the path) writes the run's configuration id, its folder's file names, ``metrics.csv`` and
``summary.csv``; ``tests/runs/data/single_span_reference.json`` was written so from the
commit before span sweeps (7101779).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch


class Bumpy(torch.nn.Module):
    """Six float64 weights whose loss has curvature of both signs (a few basins on most
    planes)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[0.3, -0.2, 0.1], [0.05, 0.4, -0.3]],
                                                 dtype=torch.float64))  # fmt: skip

    def forward(self, x):
        return x


def bumpy_loss(model, batch):
    w = model.w
    return 1.0 + (torch.cos(3.0 * w) * batch[0]).sum() * 0.1 + (w**2).sum()


def run(out_dir: Path) -> dict:
    from saddles.runs.analyze import AnalysisConfig, analyze

    torch.manual_seed(0)
    config = AnalysisConfig(resolution=9, representations=["grid-full", "knn"], hessian_top_k=2,
                            trace_matvecs=6, density_lanczos=6, noise_points=4,
                            direction_seeds=2, dtype="float64")  # fmt: skip
    data = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64).reshape(2, 3)
    analyze(Bumpy(), bumpy_loss, [(data, data)], config, run_dir=out_dir, progress=False)
    return {
        "short_id": config.short_id(),
        "files": sorted(p.name for p in out_dir.iterdir()),
        "metrics.csv": (out_dir / "metrics.csv").read_text(),
        "summary.csv": (out_dir / "summary.csv").read_text(),
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        record = run(Path(tmp))
    Path(sys.argv[1]).write_text(json.dumps(record, indent=1))
