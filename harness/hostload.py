"""The host's CPU as the node exporter sees it, measured from /proc, and CPU-bound processes to load it.

For the tests that need the CPUs to themselves (`@pytest.mark.quiet_cpu`): they measure how busy the
machine already is and skip, saying so, rather than pass or fail on what other processes did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs: busy is what the node_exporter preset's cpu_busy counts (not
    idle, iowait or steal)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0.0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, busy + idle + iowait + steal


def cpu_busy(seconds: float = 3.0) -> float:
    """The fraction of the host's CPU time spent working over the next ``seconds``."""
    b0, t0 = _cpu_times()
    time.sleep(seconds)  # a measurement over a window, not a wait for a condition
    b1, t1 = _cpu_times()
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


@dataclass(frozen=True)
class HostLoad:
    """How loaded the host is: the 1, 5, 15-minute load averages, the CPU count and the busy fraction."""

    loadavg: tuple[float, float, float]
    cores: int
    busy: float

    @classmethod
    def measure(cls, seconds: float = 3.0) -> HostLoad:
        return cls(os.getloadavg(), os.cpu_count() or 1, cpu_busy(seconds))

    def text(self) -> str:
        one, five, fifteen = self.loadavg
        return (
            f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {self.cores} cores, "
            f"CPU busy {self.busy:.0%} over 3 s"
        )


@contextlib.contextmanager
def cpu_burners(count: int, seconds: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` CPU-bound processes (a shell's empty loop) for at most ``seconds``; each is ended by its
    own ``timeout`` even if the caller dies, and stopped on leaving the block."""
    procs = [
        subprocess.Popen(
            ["timeout", f"{seconds:g}", "sh", "-c", "while :; do :; done"], start_new_session=True
        )
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
