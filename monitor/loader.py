"""Training data from a file: Prometheus API JSON (matrix or vector) or CSV ``timestamp,value``.

Every rejection is a ``DataError`` naming the file and the problem, so the CLI prints one line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from streamwatch.errors import DataError
from streamwatch.files import read_text
from streamwatch.promapi import FormatError, parse_response
from streamwatch.series import Series, label_text

DEFAULT_MIN_POINTS = 20
# Sized so the fit fits in memory: Prophet's fit peaked at 0.3 GiB for 100,000 points, 0.7 GiB for
# 300,000 and 2.0 GiB for 1,000,000 (max RSS, /usr/bin/time; docs/monitor.md). The old 5,000,000 was
# accepted and the process reached 8 GiB.
DEFAULT_MAX_POINTS = 1_000_000
MAX_TRAIN_POINTS = 2_000_000  # the most max_train_points may allow (about 4 GiB at the fit)
# A sample takes about 30 bytes in Prometheus' JSON and 25 in CSV; 100 leaves room for indentation and
# long labels. A file larger than max_points * this cannot hold an acceptable series: reading stops
# there (checked while reading, so /dev/zero or a growing file cannot get past it either).
MAX_BYTES_PER_POINT = 100
# Each point of Prometheus' JSON is one [t, "v"] pair (one bracket, two commas); labels add a few. More
# brackets or commas than this cannot be an acceptable series, and are refused before the parser turns
# every one of them into a Python object (5,000,001 points were refused only after 2.2 GiB).
JSON_SLACK_TOKENS = 10_000
# Epoch seconds stay below 1e11 until the year 5138, and epoch milliseconds are above it since 1973: a
# larger timestamp is milliseconds, which would make every period and interval 1000 times too long.
MAX_EPOCH_SECONDS = 1e11


def load_training(
    path: str | os.PathLike[str], min_points: int = DEFAULT_MIN_POINTS, max_points: int = DEFAULT_MAX_POINTS
) -> Series:
    """Read one series from ``path``; the format follows the content (JSON object or CSV lines).

    At most ``max_points`` samples (``max_train_points``); identical duplicates are merged, but one
    timestamp with two different values is refused: which one is the truth cannot be guessed.
    """
    p = Path(path)
    _check_size(p, max_points)
    hint = "raise max_train_points to allow a larger one"
    limit = max_points * MAX_BYTES_PER_POINT
    text = read_text(p, "training file", DataError, max_bytes=limit, hint=hint)
    if p.suffix.lower() == ".csv" or (text.lstrip()[:1] not in ("{", "[")):
        series = _parse_csv(p, text, max_points)
    else:
        _check_tokens(p, text, max_points)
        series = _parse_json(p, text)
        if len(series):  # sorted by the parser: the newest tells seconds from milliseconds
            _check_seconds(float(series.timestamps[-1]), str(p))
    finite = np.isfinite(series.values)
    # NaN samples carry no information for a fit; dropping them is what Prometheus' own functions do.
    series = Series(series.labels, series.timestamps[finite], series.values[finite])
    _check_conflicts(p, series)
    _, unique = np.unique(series.timestamps, return_index=True)
    series = Series(series.labels, series.timestamps[unique], series.values[unique])
    if len(series) > max_points:
        raise DataError(
            f"{p}: too many points to train on ({len(series)}, at most {max_points}: max_train_points)"
        )
    if len(series) < min_points:
        raise DataError(f"{p}: too few points to train on ({len(series)}, need at least {min_points})")
    return series


def _check_size(p: Path, max_points: int) -> None:
    try:
        size = p.stat().st_size
    except OSError:
        return  # read_text names what is wrong with the path
    limit = max_points * MAX_BYTES_PER_POINT
    if size > limit:
        raise DataError(
            f"{p}: training file is {size:,} bytes, more than {max_points} points can take "
            f"({limit:,} bytes at {MAX_BYTES_PER_POINT} a point; raise max_train_points to allow it)"
        )


def _check_tokens(p: Path, text: str, max_points: int) -> None:
    """Refuse JSON holding more values than ``max_points`` points can, before parsing it."""
    brackets, commas = text.count("["), text.count(",")
    if brackets > max_points + JSON_SLACK_TOKENS or commas > 2 * max_points + JSON_SLACK_TOKENS:
        raise DataError(
            f"{p}: holds more than {max_points:,} points (max_train_points), or is not a series "
            f"({brackets:,} arrays, {commas:,} values)"
        )


def _check_conflicts(p: Path, series: Series) -> None:
    """Refuse a timestamp that carries two different values (the series is sorted by time)."""
    ts, vs = series.timestamps, series.values
    clash = np.flatnonzero((ts[1:] == ts[:-1]) & (vs[1:] != vs[:-1]))
    if clash.size:
        i = int(clash[0])
        raise DataError(
            f"{p}: timestamp {ts[i]:.3f} has two different values ({vs[i]:g} and {vs[i + 1]:g}); "
            f"{clash.size} such conflict{'s' if clash.size > 1 else ''} in all"
        )


def _parse_json(p: Path, text: str) -> Series:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        # Some of json's messages end in "at" already ("Invalid control character at").
        raise DataError(f"{p}: not valid JSON ({exc.msg.removesuffix(' at')} at line {exc.lineno})") from None
    except RecursionError:
        # json's parser recurses once per bracket: 100,000 nested brackets exhaust the stack.
        raise DataError(f"{p}: not valid JSON for training data (nested too deeply)") from None
    try:
        found = parse_response(doc)
    except FormatError as exc:
        raise DataError(f"{p}: {exc}") from None
    if not found:
        raise DataError(f"{p}: the response holds no series (an empty result)")
    if len(found) > 1:
        names = ", ".join(_describe(s) for s in found[:3])
        raise DataError(f"{p}: holds {len(found)} series ({names}); train on exactly one")
    return found[0]


def _describe(s: Series) -> str:
    return f"{s.name or ''}{{{label_text(s.key, drop=('__name__',))}}}"


def _parse_csv(p: Path, text: str, max_points: int = DEFAULT_MAX_POINTS) -> Series:
    ts: list[float] = []
    vs: list[float] = []
    rows = csv.reader(io.StringIO(text))
    seen_row = False
    for lineno, row in enumerate(rows, start=1):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 2:
            raise DataError(f"{p}: line {lineno}: expected 2 columns timestamp,value, got {len(row)}")
        raw_t, raw_v = row[0].strip(), row[1].strip()
        first_row, seen_row = not seen_row, True
        if first_row and not _is_number(raw_v):
            continue  # a header line such as "timestamp,value": only the first row may be one
        t = _parse_time(raw_t)
        if t is None:
            raise DataError(f"{p}: line {lineno}: timestamp {raw_t!r} is neither epoch seconds nor ISO 8601")
        _check_seconds(t, f"{p}: line {lineno}")
        try:
            v = float(raw_v)
        except ValueError:
            raise DataError(f"{p}: line {lineno}: value {raw_v!r} is not a number") from None
        ts.append(t)
        vs.append(v)
        if len(ts) > max_points:  # stop here: every row read costs memory
            raise DataError(f"{p}: too many points to train on (more than {max_points}: max_train_points)")
    if not ts:
        raise DataError(f"{p}: no samples (expected CSV lines timestamp,value)")
    t_arr = np.array(ts, dtype=np.float64)
    order = np.argsort(t_arr, kind="stable")
    return Series({}, t_arr[order], np.array(vs, dtype=np.float64)[order])


def _check_seconds(t: float, where: str) -> None:
    if not math.isfinite(t):
        raise DataError(f"{where}: timestamp {t} is not a finite number")
    if t > MAX_EPOCH_SECONDS:
        raise DataError(
            f"{where}: timestamp {t:.0f} looks like milliseconds since the epoch; expected seconds "
            "(divide by 1000)"
        )


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _parse_time(s: str) -> float | None:
    if _is_number(s):
        return float(s)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # Prometheus works in UTC, so a bare time is read as UTC
    return dt.timestamp()
