"""Shared test fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def one_thread():
    """Small models run far faster on one thread than on two contended ones; the previous
    thread count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cluster():
    """One loopback Ray cluster of 2 CPUs per test module; its workers can import the test
    modules (this folder is put on their ``PYTHONPATH``)."""
    from saddles.executors.cluster import Cluster

    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [old_path])])
    temp = tempfile.mkdtemp(prefix="saddles-test-ray-")  # short: Ray puts sockets in it
    handle = Cluster(num_cpus=2, temp_dir=temp).connect()
    try:
        yield handle
    finally:
        handle.close()
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path
        shutil.rmtree(temp, ignore_errors=True)
