"""How torch's idle CPU threads wait: asleep, so that a busy machine still gives a fair share.

Torch's CPU kernels run in OpenMP parallel regions that end at a barrier; libgomp's default makes
the threads that arrive first spin there before they sleep (``OMP_WAIT_POLICY``, GNU libgomp
manual), and when another process holds a core, the late thread waits for cores the spinners
burn. With ``OMP_WAIT_POLICY=PASSIVE`` they sleep at once. ``benchmarks/threads.py`` on this
project's 2-core machine, with other work running: two torch threads took 7.2 s under the default
and 0.66 s passive for the same forwards and HVPs; with one and two more busy processes the
passive run slowed 1.4x and 2.1x (fair shares: 1.5x and 2x), the default one 2x and 3.7x from its
already slow start. One thread was 1.0-1.2 s either way.

:func:`passive_waits` makes passive the default of every process that imports saddles before
torch (an explicit ``OMP_WAIT_POLICY`` wins; Ray workers inherit the driver's environment).
Imports nothing: ``import saddles`` stays light.
"""

from __future__ import annotations

import os
import sys


def passive_waits() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set, or torch (whose OpenMP runtime reads
    it once, when loaded) is already imported; True if this call set it."""
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
