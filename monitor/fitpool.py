"""Fits off the cycle: Prophet fits for new series run in a bounded pool of worker processes.

The cycle submits a fit and goes on scoring the series that are ready; each later cycle collects the
fits that finished. Workers start from a fork server, not by forking the monitor (a process with an
HTTP thread and thousands of series), and import Prophet once each. Streaming detectors do not come
here: warming one on an hour of history costs tens of microseconds, less than sending it to a worker.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Hashable
from concurrent.futures import Future, ProcessPoolExecutor, wait

import numpy as np

from monitor.detectors.prophet import ProphetParams
from monitor.prophet_profile import Profile, fit_profile


class FitPool:
    """``submit`` fits; ``collect`` the finished ones as ``(tag, Profile or the exception)``."""

    def __init__(self, workers: int):
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None  # started by the first fit: EMA never needs it
        self._running: dict[Future[Profile], Hashable] = {}

    @property
    def pending(self) -> int:
        """Fits submitted and not collected yet (queued or running)."""
        return len(self._running)

    def submit(self, tag: Hashable, ts: np.ndarray, vs: np.ndarray, params: ProphetParams) -> None:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver")
            )
        self._running[self._executor.submit(fit_profile, ts, vs, params)] = tag

    def wait(self) -> None:
        """Block until every submitted fit has finished (``collect`` then returns them all)."""
        if self._running:
            wait(list(self._running))

    def collect(self) -> list[tuple[Hashable, Profile | BaseException]]:
        done = [f for f in self._running if f.done()]
        out: list[tuple[Hashable, Profile | BaseException]] = []
        for f in done:
            tag = self._running.pop(f)
            exc = f.exception()
            out.append((tag, exc if exc is not None else f.result()))
        return out

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._running.clear()
