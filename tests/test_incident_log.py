"""The incident log: JSON lines, fsynced appends, torn last lines, rotation, the text form."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT
from harness.incidents import lifecycle
from incident.log import IncidentLog, iter_events, read_events
from streamwatch.errors import DataError


def test_one_json_object_per_event(tmp_path: Path) -> None:
    path = tmp_path / "incidents.log"
    with IncidentLog(path) as log:
        for ev in lifecycle():
            log.write(ev)
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    docs = [json.loads(line) for line in lines]
    assert [d["event"] for d in docs] == ["opened", "escalated", "resolved"]
    assert docs[0]["severity"] == 2 and docs[1]["severity"] == 1 and docs[2]["duration_s"] == 120
    assert read_events(path) == docs


def test_appends_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "incidents.log"
    events = lifecycle()
    with IncidentLog(path) as log:
        log.write(events[0])
    with IncidentLog(path) as log:
        log.write(events[1])
    assert [d["event"] for d in read_events(path)] == ["opened", "escalated"]


def test_reader_skips_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "incidents.log"
    events = lifecycle()
    with IncidentLog(path) as log:
        log.write(events[0])
        log.write(events[1])
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 25])  # a crash cut the second line short
    assert [d["event"] for d in read_events(path)] == ["opened"]


def test_writer_after_crash_starts_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "incidents.log"
    events = lifecycle()
    with IncidentLog(path) as log:
        log.write(events[0])
        log.write(events[1])
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 25])
    with IncidentLog(path) as log:  # the restarted detector goes on writing
        log.write(events[2])
    assert [d["event"] for d in read_events(path)] == ["opened", "resolved"]


def test_corrupt_complete_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "incidents.log"
    path.write_text('{"event": "opened"}\nnot json at all\n{"event": "resolved"}\n')
    with pytest.raises(DataError, match=r"incidents.log:2"):
        list(iter_events(path))


def test_rotation_keeps_count_and_every_event(tmp_path: Path) -> None:
    path = tmp_path / "incidents.log"
    events = lifecycle() * 10  # 30 events, ~400 bytes each
    with IncidentLog(path, max_bytes=1000, backup_count=3) as log:
        for ev in events:
            log.write(ev)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["incidents.log", "incidents.log.1", "incidents.log.2", "incidents.log.3"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    kept = read_events(path, include_rotated=True)
    # The newest events survive in order; the oldest rotated out past the count.
    assert kept == [e.to_dict() for e in events[-len(kept) :]]
    assert 4 <= len(kept) < 30


def test_rotation_with_no_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "incidents.log"
    with IncidentLog(path, max_bytes=500, backup_count=0) as log:
        for ev in lifecycle() * 3:
            log.write(ev)
    assert [p.name for p in tmp_path.iterdir()] == ["incidents.log"]
    assert path.stat().st_size <= 500


def test_text_format_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "incidents.log"
    with IncidentLog(path, fmt="text") as log:
        for ev in lifecycle():
            log.write(ev)
    lines = path.read_text().splitlines()
    assert "Sev 2 incident opened: metrics=a" in lines[0]
    assert "escalated to Sev 1: metrics=a,b" in lines[1]
    assert "Sev 1 incident resolved (peak Sev 1)" in lines[2] and "duration=120s" in lines[2]
    assert not lines[0].startswith("{")


def test_a_line_cut_anywhere_is_torn_not_corrupt(tmp_path: Path) -> None:
    # Events now end in nested series objects ("...,"score":12.0}],...}"), so a cut can leave a line
    # ending in "}" or in half a number: each is still recognised as cut short, never as corruption.
    path = tmp_path / "incidents.log"
    for event in lifecycle():
        line = IncidentLog(tmp_path / "fmt.log").format(event)
        for cut in range(1, len(line) - 1):
            path.write_text(line[:-cut] + "\n" + line + "\n")
            assert [d["event"] for d in iter_events(path)] == [event.event], line[:-cut]


WRITE_UNDER_A_SIZE_LIMIT = """
import os, resource, sys
from incident.log import IncidentLog
from harness.incidents import lifecycle

opened, escalated, _ = lifecycle()
path = sys.argv[1]
log = IncidentLog(path)
log.write(opened)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
# Room for 40 more bytes: the next line is cut mid-write (EFBIG), as a full disk would cut it.
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 40, hard))
try:
    log.write(escalated)
except OSError as exc:
    print("failed", exc.errno, os.path.getsize(path))
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
log.write(escalated)  # the watcher's retry on its next cycle
print("retried")
"""


def test_a_write_cut_short_leaves_no_fragment_and_the_retry_is_whole(tmp_path: Path) -> None:
    # A real short write: a file size limit (RLIMIT_FSIZE) in a child process, so the limit stays there.
    path = tmp_path / "incidents.log"
    proc = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_A_SIZE_LIMIT, str(path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    failed, retried = proc.stdout.splitlines()
    opened, escalated, _ = lifecycle()
    first_line = len(json.dumps(opened.to_dict(), separators=(",", ":"))) + 1
    assert failed == f"failed {errno.EFBIG} {first_line}"  # cut back to the line before it
    assert retried == "retried"
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and [json.loads(line) for line in raw.splitlines()] == [
        opened.to_dict(),
        escalated.to_dict(),
    ]
