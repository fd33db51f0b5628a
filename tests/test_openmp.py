"""saddles makes OpenMP's idle threads sleep (OMP_WAIT_POLICY=PASSIVE) unless told otherwise,
and only where it still takes effect: before torch's OpenMP runtime is loaded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import os, sys; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(
    "preset, first, want",
    [
        (None, "import saddles", "PASSIVE"),  # the default
        ("ACTIVE", "import saddles", "ACTIVE"),  # an explicit choice wins
        (None, "import torch; import saddles", "None"),  # too late to matter: left alone
    ],
)
def test_the_wait_policy_is_passive_unless_set_or_too_late(preset, first, want):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    out = subprocess.run([sys.executable, "-c", f"{first}; {SHOW}"], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == want
