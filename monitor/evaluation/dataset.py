"""Reading a data set in the Numenta Anomaly Benchmark layout: CSV files and a labels JSON of windows.

Layout: ``DATA_DIR/<category>/<file>.csv`` with the header ``timestamp,value`` and a labels JSON mapping
``"<category>/<file>.csv"`` to a list of ``[start, end]`` windows (timestamps ``YYYY-MM-DD HH:MM:SS`` with
optional fractional seconds, no zone: read as UTC). Rows are kept in file order and indexed by position,
because NAB's timestamps repeat and even step back in places. A window covers the rows from the first
row whose timestamp equals its start (or, failing an exact match, the first row at or after it) to the
first row at or after that whose timestamp equals its end (or the last row at or before it), inclusive,
as NAB's own scorer locates them. Any problem is a ``DataError`` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamwatch.errors import DataError
from streamwatch.files import read_text


@dataclass(frozen=True)
class LabelledFile:
    key: str  # "<category>/<file>.csv", as in the labels JSON
    timestamps_raw: list[str]  # as written, for the results CSV
    values_raw: list[str]
    ts: np.ndarray  # epoch seconds (float)
    values: np.ndarray
    windows: list[tuple[int, int]]  # inclusive row ranges

    @property
    def category(self) -> str:
        return self.key.rsplit("/", 1)[0] if "/" in self.key else ""

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def label(self) -> np.ndarray:
        out = np.zeros(len(self.values), dtype=np.int8)
        for s, e in self.windows:
            out[s : e + 1] = 1
        return out


def parse_time(text: str, where: str) -> float:
    try:
        t = np.datetime64(text.strip().replace(" ", "T"), "us")
    except ValueError:
        t = np.datetime64("NaT")
    # numpy reads "NaT" and "" as not-a-time, whose integer is the int64 minimum: refuse it here.
    if np.isnat(t):
        raise DataError(f"{where}: not a timestamp like 2014-04-01 00:00:00: {text!r}")
    return float(t.astype(np.int64)) / 1e6


def read_labels(path: Path) -> dict[str, list[tuple[float, float]]]:
    text = _strip_bom(read_text(path, "labels file", DataError))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: labels must be an object mapping 'category/file.csv' to windows")
    out: dict[str, list[tuple[float, float]]] = {}
    for key, windows in doc.items():
        where = f"{path}: {key}"
        if not isinstance(windows, list):
            raise DataError(f"{where}: windows must be a list of [start, end] pairs")
        pairs = []
        for w in windows:
            if not (isinstance(w, list) and len(w) == 2 and all(isinstance(v, str) for v in w)):
                raise DataError(f"{where}: each window must be [start, end] timestamps, got {w!r}")
            start, end = parse_time(w[0], where), parse_time(w[1], where)
            if end < start:
                raise DataError(f"{where}: window ends before it starts: {w!r}")
            pairs.append((start, end))
        out[key] = pairs
    return out


def read_csv(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Rows of a ``timestamp,value`` CSV in file order (a missing final newline is fine)."""
    # newline="" semantics: csv splits the rows itself, so quoted fields may hold line breaks.
    text = _strip_bom(read_text(path, "data file", DataError))
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or [c.strip() for c in rows[0]] != ["timestamp", "value"]:
        raise DataError(f"{path}: line 1: expected the header 'timestamp,value'")
    body = [r for r in rows[1:] if r]  # a blank last line is not a row
    if not body:
        raise DataError(f"{path}: no data rows")
    stamps, raw_values = [], []
    for i, r in enumerate(body, start=2):
        if len(r) != 2:
            raise DataError(f"{path}: line {i}: expected 2 columns (timestamp,value), got {len(r)}")
        stamps.append(r[0].strip())
        raw_values.append(r[1].strip())
    ts = _parse_stamps(stamps)
    if ts is None:
        bad = next(i for i, s in enumerate(stamps) if not _is_time(s))
        raise DataError(f"{path}: line {bad + 2}: not a timestamp: {stamps[bad]!r}")
    values = np.empty(len(raw_values))
    for i, v in enumerate(raw_values):
        try:
            values[i] = float(v)
        except ValueError:
            raise DataError(f"{path}: line {i + 2}: value is not a number: {v!r}") from None
        if values[i] != values[i] or abs(values[i]) == float("inf"):
            raise DataError(f"{path}: line {i + 2}: value must be finite, got {v!r}")
    return stamps, raw_values, ts.astype(np.int64) / 1e6, values


def _parse_stamps(stamps: list[str]) -> np.ndarray | None:
    """All timestamps as datetime64[us], or None if any is not one."""
    try:
        ts = np.array([s.replace(" ", "T") for s in stamps], dtype="datetime64[us]")
    except ValueError:
        return None
    # NaT (what numpy makes of "NaT" and "") would become the int64 minimum, year -290,308, and crash later.
    return None if np.isnat(ts).any() else ts


def _is_time(s: str) -> bool:
    try:
        return not np.isnat(np.datetime64(s.replace(" ", "T"), "us"))
    except ValueError:
        return False


def _strip_bom(text: str) -> str:
    """Text as ``utf-8-sig`` reads it: editors on Windows start UTF-8 files with a byte-order mark."""
    return text.removeprefix("\ufeff")


def window_rows(ts: np.ndarray, start: float, end: float) -> tuple[int, int] | None:
    """Inclusive row range of a window, by position (see the module docstring); None if it holds no row."""
    exact = np.flatnonzero(ts == start)
    if exact.size:
        s = int(exact[0])
    else:
        after = np.flatnonzero(ts >= start)
        if not after.size:
            return None
        s = int(after[0])
    tail = ts[s:]
    exact = np.flatnonzero(tail == end)
    if exact.size:
        e = s + int(exact[0])
    else:
        before = np.flatnonzero(tail <= end)
        if not before.size:
            return None
        e = s + int(before[-1])
    return s, e


def load(data_dir: Path, labels_path: Path) -> list[LabelledFile]:
    """Every file the labels name, read from ``data_dir``, with its windows as row ranges."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such data directory")
    labels = read_labels(labels_path)
    if not labels:
        raise DataError(f"{labels_path}: names no files")
    files = []
    for key in sorted(labels):
        path = data_dir / key
        if not path.is_file():
            raise DataError(f"{labels_path}: names {key}, but {path} does not exist")
        stamps, raw_values, ts, values = read_csv(path)
        windows = []
        for start, end in labels[key]:
            rows = window_rows(ts, start, end)
            if rows is not None:
                windows.append(rows)
        files.append(LabelledFile(key, stamps, raw_values, ts, values, windows))
    return files


def rows_of(labels_path: Path, files: list[LabelledFile]) -> dict[str, list[tuple[int, int]]]:
    """Another windows JSON over the same files (``simulator.labelled``'s prolonged anomalies), as
    inclusive row ranges per file; a file it does not name has none."""
    labels = read_labels(labels_path)
    out: dict[str, list[tuple[int, int]]] = {}
    for f in files:
        rows = (window_rows(f.ts, start, end) for start, end in labels.get(f.key, []))
        out[f.key] = [r for r in rows if r is not None]
    return out
