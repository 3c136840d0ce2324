"""Clocks for every loop: the real one for services, a fake one so tests never sleep or flake."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; return True when a stop was requested meanwhile."""
        ...


class SystemClock:
    """Wall time, with a wait that a signal handler (or another thread) can cut short via ``stop()``."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def time(self) -> float:
        return time.time()

    def wait(self, seconds: float) -> bool:
        return self._stop.wait(max(0.0, seconds))

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


class FakeClock:
    """A clock that moves only when waited on or advanced: loops run at full speed in tests."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)
        self.stop_requested = False

    def time(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += max(0.0, seconds)
        return self.stop_requested

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def stop(self) -> None:
        self.stop_requested = True

    @property
    def stopped(self) -> bool:
        return self.stop_requested
