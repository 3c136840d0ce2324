"""Running a command-line entry point as a user would, and checking its one-line errors."""

from __future__ import annotations

import subprocess
import sys

from harness import ROOT


def run_python(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python *argv`` from the repository root, output captured as text."""
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], *needles: str, prog: str | None = None
) -> str:
    """Exit 2, no traceback, a single stderr line (``<prog>: error: ...``) holding every needle."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    if prog is not None:
        assert lines[0].startswith(f"{prog}: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
