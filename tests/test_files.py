"""saddles.files: atomic writes, always-valid JSON, CSV rows, YAML errors that name the file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from saddles.files import atomic_savez, read_yaml, write_csv, write_json


def test_json_is_valid_with_nan_and_numpy_values(tmp_path):
    path = write_json(tmp_path / "h.json", {"a": float("nan"), "b": np.float32(2.5),
                                            "c": np.arange(3), "d": [float("inf")]})  # fmt: skip
    assert json.loads(path.read_text(), parse_constant=pytest.fail) == {
        "a": None, "b": 2.5, "c": [0, 1, 2], "d": [None]
    }  # fmt: skip
    assert not list(tmp_path.glob(".*.tmp"))


def test_csv_and_npz_round_trip(tmp_path):
    rows = [{"a": 1, "b": [1, 2]}, {"a": 2, "c": "x"}]
    with open(write_csv(tmp_path / "r.csv", rows)) as f:
        back = list(csv.DictReader(f))
    assert back == [{"a": "1", "b": "[1, 2]", "c": ""}, {"a": "2", "b": "", "c": "x"}]
    with np.load(atomic_savez(tmp_path / "a.npz", {"x": np.eye(2)})) as z:
        assert np.array_equal(z["x"], np.eye(2))


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        read_yaml(bad)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match="mapping"):
        read_yaml(tmp_path / "list.yaml")
    with pytest.raises(ValueError, match="folder"):
        read_yaml(tmp_path)
