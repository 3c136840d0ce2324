"""The incident detector's saved state: one JSON file beside the incident log, replaced atomically.

It holds what a restart needs to continue instead of starting over: the open incident, the per-series
scores and the last counter values with the time they were read. Written when it changed: after every
cycle that read Prometheus (the reading time is part of it, so a restart spreads what the counters
gained while it was down over the real gap), never while the detector is blind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from incident.log import LogFormat, dumps
from streamwatch import strictjson
from streamwatch.atomic import atomic_write_text
from streamwatch.errors import DataError
from streamwatch.files import read_bytes

VERSION = 1
# A saved state is a few hundred bytes per series; 100,000 series (max_series' default) fit in far less.
MAX_STATE_BYTES = 512 * 2**20
# Saved times are epoch seconds: 0 to the year 5138; later ones break date formatting when replayed.
MAX_TS = 1e11
# Far above any score bounded counts can make (10 anomalies/s at a one-day half-life is about 1.2e6).
MAX_SCORE = 1e9
EVENT_KINDS = frozenset({"opened", "escalated", "de-escalated", "changed", "resolved"})


def state_path_for(log_path: str | os.PathLike[str]) -> Path:
    """Where the state of the detector writing ``log_path`` lives: ``<log>.state.json``."""
    p = Path(log_path)
    return p.with_name(f"{p.name}.state.json")


class StateFile:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._written: str | None = None  # what the file holds, to skip writes that change nothing

    def load(self, log_format: LogFormat = "json") -> dict[str, Any] | None:
        """The saved state, or None when there is none yet; an unreadable, foreign or damaged file:
        ``DataError``. Every entry is checked (``check_state``) before anything is replayed from it."""
        if not os.path.lexists(self.path):
            return None
        raw = read_bytes(self.path, "incident state file", DataError, MAX_STATE_BYTES)
        try:
            # Strict: NaN, Infinity, 1e999, bytes that are not UTF-8, 100k brackets: not a file we wrote.
            doc = strictjson.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise DataError(
                f"{self.path}: not an incident state file (version {VERSION}); move it away to start afresh"
            )
        try:
            check_state(doc, log_format)
        except ValueError as exc:
            raise DataError(
                f"{self.path}: damaged incident state ({exc}); move it away to start afresh"
            ) from None
        self._written = raw.decode("utf-8")
        return doc

    def save(self, doc: dict[str, Any]) -> bool:
        """Replace the file with ``doc`` if it changed; True when written. ``OSError`` when it cannot be."""
        text = dumps({"version": VERSION, **doc})
        if text == self._written:
            return False
        atomic_write_text(self.path, text)
        self._written = text
        return True


# --- checking a saved state entry by entry ---------------------------------------------------------------
# Each check raises ValueError naming the entry ("tracker.series[3][1].value must be ..."), which load()
# turns into one line. They check exactly what from_dict and the replay rely on: types, finite numbers
# in range, known severities and event kinds, and pending log lines the log could have written.


def _number(v: Any, where: str, low: float = 0.0, high: float = MAX_TS) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not low <= v <= high:
        raise ValueError(f"{where} must be a number from {low:g} to {high:g}, got {_short(v)}")
    return float(v)


def _opt_number(v: Any, where: str, high: float = MAX_TS) -> None:
    if v is not None:
        _number(v, where, high=high)


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{where} must be a string, got {_short(v)}")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise ValueError(f"{where} must be a list, got {_short(v)}")
    return v


def _dict(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError(f"{where} must be an object, got {_short(v)}")
    return v


def _each(v: Any, where: str, check: Callable[[Any, str], Any]) -> None:
    for i, item in enumerate(_list(v, where)):
        check(item, f"{where}[{i}]")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _score(v: Any, where: str) -> None:
    d = _dict(v, where)
    _number(d.get("value"), f"{where}.value", high=MAX_SCORE)
    _opt_number(d.get("updated_at"), f"{where}.updated_at")


def _series_key(v: Any, where: str) -> None:
    try:
        metric, labels = strictjson.loads(_text(v, where))
    except (ValueError, TypeError):
        raise ValueError(f"{where} is not a series key") from None
    _text(metric, f"{where} metric")
    for i, pair in enumerate(_list(labels, f"{where} labels")):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ValueError(f"{where} labels[{i}] must be a [name, value] pair of strings")


def _series_row(v: Any, where: str) -> None:
    row = _list(v, where)
    if len(row) != 4:
        raise ValueError(f"{where} must be [key, score, last_seen, in_trouble]")
    _series_key(row[0], f"{where}[0]")
    _score(row[1], f"{where}[1]")
    _number(row[2], f"{where}[2]")
    if not isinstance(row[3], bool):
        raise ValueError(f"{where}[3] must be true or false")


def _severity(v: Any, where: str) -> None:
    if isinstance(v, bool) or v not in (1, 2):
        raise ValueError(f"{where} must be 1 or 2, got {_short(v)}")


def _series_doc(v: Any, where: str) -> None:
    d = _dict(v, where)
    _text(d.get("metric"), f"{where}.metric")
    for k, val in _dict(d.get("labels"), f"{where}.labels").items():
        _text(val, f"{where}.labels.{k}")
    _number(d.get("score"), f"{where}.score", high=MAX_SCORE)


def _incident(v: Any, where: str) -> None:
    d = _dict(v, where)
    _text(d.get("incident_id"), f"{where}.incident_id")
    _number(d.get("started_at"), f"{where}.started_at")
    _opt_number(d.get("ended_at"), f"{where}.ended_at")
    _severity(d.get("severity"), f"{where}.severity")
    _severity(d.get("peak_severity"), f"{where}.peak_severity")
    _each(d.get("metrics"), f"{where}.metrics", _text)
    _each(d.get("all_metrics", []), f"{where}.all_metrics", _text)
    _each(d.get("series", []), f"{where}.series", _series_doc)
    _number(d.get("series_in_trouble", 0), f"{where}.series_in_trouble", high=1e9)


def check_log_line(line: Any, where: str, log_format: LogFormat) -> None:
    """A pending incident-log line as the detector formats one: one line of printable text, and in the
    JSON format an incident event object. A forged entry would otherwise be replayed into the log."""
    text = _text(line, where)
    if not text or any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ValueError(f"{where} must be one line of printable text")
    if log_format == "json":
        try:
            doc = strictjson.loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("event") not in EVENT_KINDS or "incident_id" not in doc:
            raise ValueError(f"{where} is not an incident event line")


def check_state(doc: dict[str, Any], log_format: LogFormat = "json") -> None:
    """``ValueError`` naming the first entry of a saved state that the detector could not have written."""
    tracker = _dict(doc.get("tracker"), "tracker")
    _opt_number(tracker.get("last_ts"), "tracker.last_ts")
    if "series" in tracker:
        _each(tracker["series"], "tracker.series", _series_row)
    else:  # saved with one score per metric, before scores were per series
        for metric, score in _dict(tracker.get("scores"), "tracker.scores").items():
            _score(score, f"tracker.scores.{metric}")
        _each(tracker.get("in_trouble"), "tracker.in_trouble", _text)
    if tracker.get("current") is not None:
        _incident(tracker["current"], "tracker.current")
    _each(tracker.get("recent"), "tracker.recent", _incident)
    deltas = _dict(doc.get("deltas"), "deltas")
    for key, value in _dict(deltas.get("last"), "deltas.last").items():
        _number(value, f"deltas.last.{_short(key)}", high=1.7976931348623157e308)
    if not isinstance(deltas.get("baselined"), bool):
        raise ValueError("deltas.baselined must be true or false")
    _each(doc.get("unwritten"), "unwritten", lambda line, where: check_log_line(line, where, log_format))
