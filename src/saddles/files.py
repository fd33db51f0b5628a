"""File helpers shared by every stage that writes results: atomic writes, JSON that is always
valid, CSV of rows, and YAML configurations read with errors that name the file.

A result file is written to a temporary name in the same folder and renamed over the target,
so an interrupted run never leaves a half-written file behind. Never imports torch.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` through a temporary file (flushed to disk) and an atomic rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def to_jsonable(obj: Any, nonfinite: str = "null") -> Any:
    """Numpy scalars and arrays, tuples and dict keys turned into what ``json`` writes.

    Non-finite floats become ``None`` (``nonfinite="null"``, valid JSON) or their text
    (``"string"``: ``"nan"``, ``"inf"``, which keeps them distinct in configuration hashes);
    other objects become their ``str``.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, nonfinite) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), nonfinite)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if nonfinite == "null" else str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows (dicts) as CSV with the union of their keys as columns (lists as JSON)."""
    path = Path(path)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
            )
    tmp.replace(path)
    return path


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON, atomically; NaN and inf become ``null`` (valid JSON, which
    ``json.dumps`` alone does not guarantee), numpy values their Python equivalents."""
    text = json.dumps(to_jsonable(obj, nonfinite="null"), indent=indent, allow_nan=False)
    return atomic_write_text(path, text)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping a YAML file holds; errors name the file (and, for syntax, line and column)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such configuration file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a YAML configuration file")
    try:
        with path.open(encoding="utf-8") as stream:  # the stream's name goes into syntax errors
            data = yaml.safe_load(stream) or {}
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not a text (UTF-8) YAML file: {exc}") from exc
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise ValueError(f"{path} is not valid YAML: {message}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def parse_bytes(value: int | float | str) -> int:
    """Read a memory size: a number of bytes or a string such as ``"512MB"`` or ``"2 GiB"``
    (torch-free, so configurations and options are checked before a model is loaded)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"max_memory must be positive, not {value}")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", str(value))
    if not match:
        raise ValueError(f"cannot read a memory size from {value!r}; write e.g. '2GB' or '512MiB'")
    number, unit, binary = float(match[1]), match[2].upper(), match[3]
    base = 1024 if binary else 1000
    power = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit]
    if number <= 0:
        raise ValueError(f"max_memory must be positive, not {value!r}")
    return int(number * base**power)
