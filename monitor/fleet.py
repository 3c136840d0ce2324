"""Every series of one query, each with its own detector: the pure core of the many-series monitor.

A series is a value keyed by its full label set (``Series.key``, the sorted label pairs). The first time
a key is read it is *admitted* (unless ``max_series`` are watched already: then it is refused and
counted, and the operator is told once per query) and waits for its model; the shell trains it from
Prometheus' history and ``install``s the detector; from then on every new point after what it was
trained on is scored exactly once, in time order, by that series' detector alone. A key with no new
point for ``stale_after`` seconds is dropped with its state, so it disappears from the exposition.

No HTTP and no clock here: the shell passes the query results and ``now``. Which series this process
watches at all is one predicate, ``accept`` (sharding plugs in there).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from monitor.config import RESERVED_LABELS, QueryConfig
from monitor.detectors.base import SeriesDetector
from streamwatch.series import Series

log = logging.getLogger(__name__)

LabelKey = tuple[tuple[str, str], ...]
Accept = Callable[[Mapping[str, str]], bool]


def exported_labels(query: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The input series' labels without ``__name__``, plus ``metric``; a clash becomes ``exported_<name>``."""
    out = {("exported_" + k if k in RESERVED_LABELS else k): v for k, v in labels.items() if k != "__name__"}
    out["metric"] = query
    return out


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_text(labels: Mapping[str, str]) -> str:
    """``a="1",b="2"`` in name order: formatted once per series, reused by every scrape."""
    return ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))


@dataclass(slots=True)
class SeriesState:
    labels: Mapping[str, str]  # the input series' own labels
    text: str  # its exported labels, formatted
    last_seen: float  # the cycle time it last brought a new point
    trained_until: float = -math.inf  # points at or before this are history, never scored
    detector: SeriesDetector | None = None  # None while its model is being made
    samples: int = 0
    anomalies: int = 0
    cycle_anomalies: int = 0
    score: float = 0.0
    actual: float = math.nan
    expected: float = math.nan
    lower: float = math.nan
    upper: float = math.nan


@dataclass
class CycleReport:
    """What one cycle did to one query's series."""

    scored: int = 0
    anomalies: int = 0
    admitted: list[LabelKey] = field(default_factory=list)
    refused: int = 0
    dropped: int = 0
    nonfinite: int = 0


class QueryFleet:
    """The series of one query. Public: ``observe``, ``install``, ``fail``, ``drop_stale``, ``read_from``."""

    def __init__(self, query: QueryConfig, accept: Accept | None = None):
        self.query = query
        self.accept = accept
        self.series: dict[LabelKey, SeriesState] = {}
        self.refused: dict[LabelKey, float] = {}  # key -> last seen, so each is counted once
        self.refused_total = 0
        self.refusal_logged = False
        self.dropped_total = 0
        # Exported label sets in use: two inputs that differ only in __name__ would export one child twice.
        self.texts: set[str] = set()
        self.duplicates_logged = False

    @property
    def ready(self) -> int:
        return sum(1 for s in self.series.values() if s.detector is not None)

    def waiting(self) -> list[LabelKey]:
        """Admitted series without a model yet (the shell trains them)."""
        return [k for k, s in self.series.items() if s.detector is None]

    def read_from(self, fallback: float, active_since: float) -> float:
        """Where the next read must start: the oldest newest point among ready series still reporting.

        Series silent since before ``active_since`` (the last cycle that read Prometheus) do not hold the
        read window open while they wait to go stale; ``fallback`` is used when there are none.
        """
        marks = [
            s.trained_until
            for s in self.series.values()
            if s.detector is not None and s.last_seen >= active_since and math.isfinite(s.trained_until)
        ]
        return min(marks) if marks else fallback

    def observe(self, batches: Iterable[Series], now: float) -> CycleReport:
        """Admit new series, then score every ready series' points newer than what it has seen."""
        report = CycleReport()
        for s in self.series.values():
            s.cycle_anomalies = 0
        for batch in batches:
            key = batch.key
            state = self.series.get(key)
            if state is None:
                state = self._admit(batch, now, report)
                if state is None:
                    continue
            keep = batch.timestamps > state.trained_until
            if not np.any(keep):
                continue
            state.last_seen = now
            if state.detector is None:
                continue  # its model is being made; it will score from the end of its training data
            self._score(state, batch.timestamps[keep], batch.values[keep], report)
        return report

    def _admit(self, batch: Series, now: float, report: CycleReport) -> SeriesState | None:
        key = batch.key
        if self.accept is not None and not self.accept(batch.labels):
            return None
        if len(self.series) >= self.query.max_series:
            if key not in self.refused:
                self.refused_total += 1
                report.refused += 1
            self.refused[key] = now
            if not self.refusal_logged:
                log.warning(
                    "query %s: %d series watched (max_series); refusing new ones "
                    "(counted in streamwatch_monitor_series_refused_total)",
                    self.query.name,
                    self.query.max_series,
                )
                self.refusal_logged = True
            return None
        self.refused.pop(key, None)
        text = label_text(exported_labels(self.query.name, batch.labels))
        if text in self.texts:
            if not self.duplicates_logged:
                log.warning(
                    "query %s: several series differ only in their metric name (%s); one is watched "
                    "(give each metric name its own query)",
                    self.query.name,
                    batch.labels.get("__name__", ""),
                )
                self.duplicates_logged = True
            return None
        self.texts.add(text)
        state = SeriesState(batch.labels, text, now)
        self.series[key] = state
        report.admitted.append(key)
        return state

    def _score(self, state: SeriesState, ts: np.ndarray, xs: np.ndarray, report: CycleReport) -> None:
        """As the positional runner scores: NaN (an exporter's NaN, 0/0 in a ratio) is left out; +/-Inf
        is an anomaly with an infinite score that no detector learns."""
        assert state.detector is not None
        state.trained_until = float(ts[-1])
        finite = np.isfinite(xs)
        infinite = int(np.count_nonzero(np.isinf(xs)))
        report.nonfinite += int(xs.size - np.count_nonzero(finite))
        state.score = math.inf if infinite else 0.0
        flagged = infinite
        if finite.any():
            ts, xs = ts[finite], xs[finite]
            scores = state.detector.update_many(xs, ts)
            flagged += int(np.count_nonzero(scores.score > 1.0))
            known = scores.score[~np.isnan(scores.score)]
            if known.size:
                state.score = max(state.score, float(known.max()))
            state.actual = float(xs[-1])
            state.expected = float(scores.expected[-1])
            state.lower = float(scores.lower[-1])
            state.upper = float(scores.upper[-1])
        n = int(np.count_nonzero(finite)) + infinite
        state.samples += n
        state.anomalies += flagged
        state.cycle_anomalies = flagged
        report.scored += n
        report.anomalies += flagged

    def install(self, key: LabelKey, detector: SeriesDetector, trained_until: float) -> bool:
        """Give a waiting series its model; False when it was dropped meanwhile."""
        state = self.series.get(key)
        if state is None:
            return False
        state.detector = detector
        state.trained_until = max(state.trained_until, trained_until)
        return True

    def restore(
        self,
        labels: Mapping[str, str],
        detector: SeriesDetector,
        trained_until: float,
        last_seen: float,
        now: float,
        samples: int = 0,
        anomalies: int = 0,
    ) -> bool:
        """Watch a series again with the detector it had before a restart (``monitor.snapshot``).

        It passes the same ``accept`` and ``max_series`` checks as a new series, scores from the point
        after ``trained_until``, and goes stale from ``last_seen`` as if the process had never stopped
        (one already stale by ``now`` is not restored). False when it is not this process' to watch.
        """
        key: LabelKey = tuple(sorted(labels.items()))
        if key in self.series or (self.accept is not None and not self.accept(labels)):
            return False
        if last_seen < now - self.query.stale_after:
            return False
        if len(self.series) >= self.query.max_series:
            return False
        text = label_text(exported_labels(self.query.name, labels))
        self.series[key] = SeriesState(
            dict(labels), text, last_seen, trained_until, detector, samples=samples, anomalies=anomalies
        )
        return True

    def fail(self, key: LabelKey) -> None:
        """A series whose model could not be made is forgotten; it is admitted afresh when read again."""
        state = self.series.pop(key, None)
        if state is not None:
            self.texts.discard(state.text)

    def drop_stale(self, now: float) -> list[LabelKey]:
        """Forget series (and refusals) with no new point for ``stale_after`` seconds."""
        horizon = now - self.query.stale_after
        gone = [k for k, s in self.series.items() if s.last_seen < horizon]
        for k in gone:
            self.texts.discard(self.series.pop(k).text)
        self.refused = {k: t for k, t in self.refused.items() if t >= horizon}
        self.dropped_total += len(gone)
        return gone
