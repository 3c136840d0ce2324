"""Append-only logs: the incident log (one line per lifecycle event) and the alert log, both flushed and
fsynced line by line and rotated by size.

A failed write leaves nothing: the file is cut back to its size before the line. A crash can lose at
most the line being written; readers skip a torn last line, and the writer starts a fresh line after
one, so a torn line never swallows the next event.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Self

from incident.severity import IncidentEvent
from streamwatch import strictjson
from streamwatch.errors import DataError, UserError

LogFormat = Literal["json", "text"]


def dumps(doc: Any) -> str:
    """JSON as the incident detector writes it (log, state file, /state): compact, and always JSON.

    A non-finite number (bounded counts keep every score finite, so only a bug makes one) is written as
    null: no value can make a write path raise and stop the detector (a 1e308 counter jump once did).
    """
    try:
        return strictjson.dumps(doc)
    except ValueError:
        return strictjson.dumps(strictjson.finite(doc))


def check_rotation(max_bytes: int, backup_count: int) -> None:
    """The range checks for a config's rotation settings (``ValueError`` names the bad one)."""
    if max_bytes < 0:
        raise ValueError(f"log_max_bytes must be 0 (no rotation) or more, got {max_bytes}")
    if backup_count < 0:
        raise ValueError(f"log_backup_count must be 0 or more, got {backup_count}")


class AppendOnlyLog:
    """Appends text lines to ``path``, each flushed and fsynced, rotating at ``max_bytes``.

    Rotation renames ``log.(n-1)`` -> ``log.n`` ... ``log`` -> ``log.1`` like logging's
    RotatingFileHandler, but fsyncs the directory after the renames so a crash cannot lose a rotated file.
    ``max_bytes=0`` never rotates; ``backup_count=0`` with rotation truncates (keeps no history).
    """

    what = "log"

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 10_000_000, backup_count: int = 5):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self._open()
        except OSError as exc:
            raise UserError(f"{self.path}: cannot open {self.what}: {exc.strerror}") from None

    def _open(self) -> Any:
        fh = self.path.open("ab")
        # A crash mid-write leaves a line without its newline; end it so the next line stands alone.
        if fh.tell() > 0:
            with self.path.open("rb") as rd:
                rd.seek(-1, os.SEEK_END)
                if rd.read(1) != b"\n":
                    fh.write(b"\n")
                    self._sync(fh)
        return fh

    def append_line(self, line: str) -> None:
        """Append one line, or raise ``OSError`` (disk full, file gone) with the log ready for a retry."""
        data = (line + "\n").encode("utf-8")
        start: int | None = None
        try:
            if self._fh is None:
                self._fh = self._open()
            if self.max_bytes and self._fh.tell() > 0 and self._fh.tell() + len(data) > self.max_bytes:
                self._rotate()
            start = self._fh.tell()
            self._fh.write(data)
            self._sync(self._fh)
        except OSError:
            # Whole line or nothing: cut off what part of it reached the file (a full disk or a file size
            # limit can take half a line), drop what is still buffered, and reopen on the next append.
            # Should the cut fail too, _open still ends the fragment so the retried line stands alone.
            self._discard()
            if start is not None:
                with contextlib.suppress(OSError):
                    os.truncate(self.path, start)
            raise

    def recent_lines(self, tail_bytes: int = 65536) -> set[str]:
        """The complete lines among the last ``tail_bytes`` of the file (for "was this already written?")."""
        try:
            with self.path.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - tail_bytes))
                raw = fh.read()
        except OSError:
            return set()
        lines = raw.split(b"\n")
        lines.pop()  # after the last newline: empty, or an unterminated (torn) line
        if size > tail_bytes and lines:
            lines.pop(0)  # the first one is probably cut by the seek
        return {line.decode("utf-8", "replace") for line in lines}

    def _discard(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()  # closes the file even when the final flush fails
        self._fh = None

    def append_json(self, doc: dict[str, Any]) -> None:
        self.append_line(dumps(doc))

    @staticmethod
    def _sync(fh: Any) -> None:
        fh.flush()
        os.fsync(fh.fileno())

    def _rotate(self) -> None:
        self._fh.close()
        if self.backup_count > 0:
            for i in range(self.backup_count - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        self._fh = self.path.open("ab")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class IncidentLog(AppendOnlyLog):
    """The incident log: one JSON line (or one readable text line) per lifecycle event."""

    what = "incident log"

    def __init__(
        self,
        path: str | os.PathLike[str],
        fmt: LogFormat = "json",
        max_bytes: int = 10_000_000,
        backup_count: int = 5,
    ):
        self.fmt = fmt
        super().__init__(path, max_bytes, backup_count)

    def format(self, event: IncidentEvent) -> str:
        if self.fmt == "text":
            return event.one_line()
        return dumps(event.to_dict())

    def write(self, event: IncidentEvent) -> None:
        self.append_line(self.format(event))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The events of one JSON-lines log file, oldest first, skipping a torn (unterminated) last line.

    A complete line that is not a JSON object is corruption, not a crash artefact: ``DataError``.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot read incident log: {exc.strerror}") from None
    lines = raw.split(b"\n")
    torn = lines.pop()  # after the last newline: empty, or a line a crash cut short
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        torn = False
        try:
            doc = json.loads(line)
        except ValueError as exc:
            doc = None
            # Cut short, the parser runs out of text: it fails at the very end of the line
            text = line.decode("utf-8", "replace").rstrip()
            # (in a string, or in a number or literal the cut left half: "12.", "tru").
            scalar_start = len(text.rstrip("0123456789.+-eEtruflsan"))
            ended = getattr(exc, "pos", 0) >= scalar_start or str(exc).startswith("Unterminated string")
            torn = text.startswith("{") and ended
        if not isinstance(doc, dict):
            # The writer terminates a torn line on restart, so it can sit mid-file: skip it if it was the
            # line just before a restart (a JSON object cut short), report anything else.
            if torn:
                continue
            raise DataError(f"{p}:{number}: not a JSON incident event")
        yield doc
    del torn


def read_events(path: str | os.PathLike[str], include_rotated: bool = False) -> list[dict[str, Any]]:
    """All events of the log, oldest first; with ``include_rotated`` also those in ``log.N`` files."""
    p = Path(path)
    files = [p]
    if include_rotated:
        rotated = sorted(
            (f for f in p.parent.glob(f"{p.name}.*") if f.suffix[1:].isdigit()),
            key=lambda f: int(f.suffix[1:]),
        )
        files = [*reversed(rotated), p]
    return [doc for f in files if f.exists() for doc in iter_events(f)]
