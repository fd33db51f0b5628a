"""saddles.report.plots builds figures with the object API and leaves the user's backend alone."""

from __future__ import annotations

import subprocess
import sys


def test_importing_plots_keeps_the_users_backend():
    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import saddles.report.plots, saddles.report.analysis; "
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
