"""The incident detector's saved state: one JSON file beside the incident log, replaced atomically.

It holds what a restart needs to continue instead of starting over: the open incident, the per-series
scores and the last counter values with the time they were read. Written when it changed: after every
cycle that read Prometheus (the reading time is part of it, so a restart spreads what the counters
gained while it was down over the real gap), never while the detector is blind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from incident.log import dumps
from streamwatch.atomic import atomic_write_text
from streamwatch.errors import DataError

VERSION = 1


def state_path_for(log_path: str | os.PathLike[str]) -> Path:
    """Where the state of the detector writing ``log_path`` lives: ``<log>.state.json``."""
    p = Path(log_path)
    return p.with_name(f"{p.name}.state.json")


class StateFile:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._written: str | None = None  # what the file holds, to skip writes that change nothing

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none yet; an unreadable or foreign file: ``DataError``."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read incident state: {exc.strerror}") from None
        try:
            doc = json.loads(text, parse_constant=_refuse)  # NaN or Infinity: not a file we wrote
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise DataError(
                f"{self.path}: not an incident state file (version {VERSION}); move it away to start afresh"
            )
        self._written = text
        return doc

    def save(self, doc: dict[str, Any]) -> bool:
        """Replace the file with ``doc`` if it changed; True when written. ``OSError`` when it cannot be."""
        text = dumps({"version": VERSION, **doc})
        if text == self._written:
            return False
        atomic_write_text(self.path, text)
        self._written = text
        return True


def _refuse(token: str) -> Any:
    raise ValueError(f"{token} is not a number in JSON")
