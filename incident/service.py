"""The shell: poll Prometheus, feed the tracker, write the log, export metrics, serve /metrics and /state."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from incident.blind import BlindSeries, Target
from incident.config import IncidentConfig
from incident.counts import CounterDeltas
from incident.exporter import IncidentMetrics
from incident.log import IncidentLog, dumps
from incident.severity import IncidentTracker, SeriesId, severity_label
from incident.state import StateFile
from streamwatch import healthz
from streamwatch.backoff import Backoff
from streamwatch.clock import Clock
from streamwatch.errors import DataError, UserError
from streamwatch.net import LISTEN_BACKLOG, listen_error, reply
from streamwatch.promapi import FormatError, PrometheusError
from streamwatch.series import Series
from streamwatch.serverlimits import BoundedThreads

log = logging.getLogger("incident")


class QueryClient(Protocol):
    def query(self, expr: str, at: float | None = None) -> list[Series]: ...


class IncidentWatcher:
    """The incident loop: ``cycle()`` reads Prometheus once and returns the delay until the next cycle."""

    def __init__(
        self,
        cfg: IncidentConfig,
        client: QueryClient,
        clock: Clock,
        incident_log: IncidentLog,
        metrics: IncidentMetrics | None = None,
        state_file: StateFile | None = None,
    ):
        self.cfg = cfg
        self.client = client
        self.clock = clock
        self.incident_log = incident_log
        self.metrics = metrics or IncidentMetrics(tuple(cfg.metrics))
        self.state_file = state_file
        self.state_failing = False  # say so once per streak of failed state writes
        # Lines of events the incident log has not taken yet, in order (a full disk, or a cycle in progress).
        self.unwritten: list[str] = []
        saved = state_file.load(cfg.log_format) if state_file else None
        if saved is None:
            self.tracker = IncidentTracker(
                tuple(cfg.metrics), cfg.rules(), cfg.recent_incidents, cfg.limits()
            )
            self.deltas: CounterDeltas[SeriesId] = CounterDeltas()  # series found in each reading
        else:
            self.tracker, self.deltas, pending = self._resume(saved)
            # Events saved as pending may have reached the log just before the restart: not twice.
            written = incident_log.recent_lines() if pending else set()
            self.unwritten = [line for line in pending if line not in written]
        self.backoff = Backoff(initial_s=cfg.interval, maximum_s=max(cfg.interval, cfg.backoff_max_s))
        self.prometheus_up: bool | None = None  # unknown until the first query
        # True from a failed read until the monitors have caught up after it: scores and incidents hold.
        self.holding = False
        self.back_at: float | None = None  # when Prometheus answered again after the failure
        self.log_failing = False  # say so once per streak of failed writes, not every cycle
        self.refusing = False  # say so once per streak of refused series, not every cycle
        self.nonfinite_streak: set[str] = set()  # metrics whose count was +Inf or NaN last cycle
        # Series gone from the reading (their monitor replica down) hold until it is back and caught up.
        self.blind = BlindSeries(cfg.catchup_max_s, cfg.forget_series_after_s)
        self.lock = threading.Lock()
        self.metrics.update_state(self.tracker, clock.time())

    def _resume(self, saved: dict[str, Any]) -> tuple[IncidentTracker, CounterDeltas[SeriesId], list[str]]:
        """Continue from the saved state: the open incident stays open, the counters' gains since the
        saved reading are the news of the first cycle (spread over the gap, as after an outage)."""
        assert self.state_file is not None
        try:
            tracker = IncidentTracker.from_dict(
                saved["tracker"], tuple(self.cfg.metrics), self.cfg.rules(), self.cfg.recent_incidents,
                self.cfg.limits(),
            )  # fmt: skip
            deltas: CounterDeltas[SeriesId] = CounterDeltas()
            if all(k.startswith("[") for k in saved["deltas"]["last"]):
                deltas = CounterDeltas.from_dict(
                    saved["deltas"], decode=SeriesId.from_key, keep=lambda sid: sid in tracker.series
                )
            # else: saved when counters were read per metric. Their totals cannot be split per series,
            # so the first reading is a fresh baseline (the downtime's anomalies are not counted).
            pending = [str(line) for line in saved["unwritten"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"{self.state_file.path}: damaged incident state ({exc!r}); move it away to start afresh"
            ) from None
        cur = tracker.current
        what = f"incident {cur.incident_id} ({severity_label(cur.severity)}) open" if cur else "none open"
        log.info("resumed from %s: %s", self.state_file.path, what)
        return tracker, deltas, pending

    def read(self) -> dict[SeriesId, float]:
        """The latest cumulative anomaly count per series of a watched metric, keyed by its labels."""
        out: dict[SeriesId, float] = {}
        for series in self.client.query(self.cfg.query):
            sid = SeriesId.of(series.labels, self.cfg.metric_label)
            if sid.metric and self.tracker.watches(sid.metric) and len(series.values):
                out[sid] = float(series.values[-1])
        return out

    def read_spacing(self) -> dict[str, float]:
        """Per watched metric, the seconds between its series' points (what one anomaly stands for)."""
        out: dict[str, float] = {}
        for series in self.client.query(self.cfg.spacing_query):
            name = series.labels.get(self.cfg.metric_label)
            if name is not None and len(series.values):
                out[name] = float(series.values[-1])
        return out

    def cycle(self) -> float:
        now = self.clock.time()
        try:
            reading = self.read()
            spacing = self.read_spacing()
            blind = self.blind_series(now, reading)
            caught_up = not self.holding or self.monitors_caught_up(now)
        except (PrometheusError, FormatError) as exc:
            # Hold: no incident opens, changes or resolves and no score decays while we cannot see. The
            # counter then catches up on everything the monitors counted meanwhile, spread over the gap.
            self.metrics.health.failed()
            if self.prometheus_up is not False:
                log.warning("Prometheus unavailable, holding the scores and incidents, retrying: %s", exc)
            self.prometheus_up = False
            # Nothing to hold before the first reading (a stack starting before its Prometheus).
            self.holding, self.back_at = self.tracker.last_ts is not None, None
            self.metrics.holding.set(1 if self.holding else 0)
            self.write_log()
            return self.backoff.next_delay()
        if self.prometheus_up is False:
            log.info("Prometheus reachable again at %s", self.cfg.prometheus_url)
        self.prometheus_up = True
        self.backoff.reset()
        self.metrics.health.succeeded(now)
        if not caught_up:
            return self.cfg.interval
        with self.lock:
            if self.holding:
                self.tracker.hold(now)
                self.holding, self.back_at = False, None
                self.metrics.holding.set(0)
            elif blind:
                self.tracker.hold(now, only=blind)  # the same hold, for the series we cannot see
            events = self.tracker.observe(now, self.deltas.update(reading), spacing)
            self.deltas.forget(self.tracker.dropped)
            self.deltas.forget(self.tracker.refused)  # memory stays bounded by max_series
            self.note_refused()
            self.note_nonfinite(sorted({sid.metric for sid in self.deltas.nonfinite}))
            for event in events:
                self.metrics.record(event)
                log.warning("%s", event.one_line())
            self.unwritten.extend(self.incident_log.format(e) for e in events)
            # State (with the events as pending) first, then the log, then the state again: a kill at any
            # point neither loses an event nor, on restart, writes one twice or reopens a logged incident.
            self.save_state()
            self.write_log()
            self.save_state()
            self.metrics.update_state(self.tracker, now)
        return self.cfg.interval

    def note_nonfinite(self, metrics: list[str]) -> None:
        """Count the readings that were not numbers (+Inf, NaN); say so once per streak and metric."""
        for metric in metrics:
            self.metrics.nonfinite.labels(metric=metric).inc()
            if metric not in self.nonfinite_streak:
                log.warning(
                    "ignoring a non-finite anomaly count for %s (%s); keeping its last value until it is a "
                    "number again",
                    metric,
                    self.cfg.query,
                )
        ended = self.nonfinite_streak - set(metrics)
        for metric in sorted(ended):
            log.info("anomaly count for %s is a number again", metric)
        self.nonfinite_streak = set(metrics)

    def monitors_caught_up(self, now: float) -> bool:
        """After an outage: has every watched metric's monitor completed a cycle since Prometheus came back?

        Until then the counters have not caught up, and a score decaying meanwhile could resolve an
        incident that is still going on. A monitor that has not done so after ``catchup_max_s`` (down, or
        stuck) no longer holds the others.
        """
        first = self.back_at is None
        if self.back_at is None:
            self.back_at = now
        done: dict[str, float] = {}
        for series in self.client.query(self.cfg.monitors_query):
            name = series.labels.get(self.cfg.metric_label)
            if name is not None and len(series.values):
                done[name] = max(done.get(name, float("-inf")), float(series.values[-1]))
        # The watched metrics: the configured ones, or every one whose series are scored.
        behind = [m for m in self.tracker.known_metrics() if not done.get(m, float("-inf")) > self.back_at]
        if not behind:
            log.info("monitors have caught up after the gap; scores move again")
            return True
        if first:
            log.info("waiting for the monitors of %s to complete a cycle; scores hold", ",".join(behind))
        if now - self.back_at >= self.cfg.catchup_max_s:
            log.warning(
                "monitors of %s completed no cycle in the %gs since Prometheus came back; waiting no longer",
                ",".join(behind),
                self.cfg.catchup_max_s,
            )
            return True
        return False

    def blind_series(self, now: float, reading: dict[SeriesId, float]) -> list[SeriesId]:
        """The series whose scores hold this cycle: their monitor replica is down or not caught up yet."""
        self.blind.update(now, self.tracker.last_ts, self.tracker.series, reading)
        return self.blind.release(now, self.replicas_done() if self.blind.waiting() else {})

    def replicas_done(self) -> dict[Target, float]:
        """When each monitor replica (job, instance) last completed a cycle."""
        out: dict[Target, float] = {}
        for series in self.client.query(self.cfg.replicas_query):
            if len(series.values):
                key = (series.labels.get("job", ""), series.labels.get("instance", ""))
                out[key] = max(out.get(key, float("-inf")), float(series.values[-1]))
        return out

    def save_state(self) -> None:
        """Save the state for a restart; a failure is logged once per streak and retried next cycle.

        The file is replaced only when its content changed.
        """
        if self.state_file is None:
            return
        doc = {
            "tracker": self.tracker.to_dict(),
            "deltas": self.deltas.to_dict(SeriesId.to_key),
            "unwritten": list(self.unwritten),
        }
        try:
            self.state_file.save(doc)
        except (OSError, ValueError) as exc:  # a value no write may fail on: never stop the detector
            self.metrics.state_errors.inc()
            if not self.state_failing:
                log.error(
                    "cannot save the incident state %s (%s); a restart now would start afresh",
                    self.state_file.path,
                    exc.strerror or exc,
                )
            self.state_failing = True
            return
        if self.state_failing:
            log.info("incident state %s saved again", self.state_file.path)
        self.state_failing = False

    def note_refused(self) -> None:
        refused = len(self.tracker.refused)
        if refused and not self.refusing:
            log.warning(
                "%d new series not scored: %d series kept already (max_series); more are refused "
                "until series go away (streamwatch_incident_series_refused)",
                refused, len(self.tracker.series),
            )  # fmt: skip
        elif not refused and self.refusing:
            log.info("scoring every series again")
        self.refusing = refused > 0

    def write_log(self) -> None:
        """Write the waiting events in order; on a failure keep them (and the rest) for the next cycle.

        A full disk must not stop the detector (the alerts still fire) nor lose an incident: the
        events stay in memory, counted by ``streamwatch_incident_log_unwritten_events``, until it frees.
        """
        while self.unwritten:
            try:
                self.incident_log.append_line(self.unwritten[0])
            except OSError as exc:
                self.metrics.log_errors.inc()
                if not self.log_failing:
                    log.error(
                        "cannot write the incident log %s (%s); keeping its events, retrying every cycle",
                        self.incident_log.path,
                        exc.strerror or exc,
                    )
                self.log_failing = True
                break
            self.unwritten.pop(0)
        else:
            if self.log_failing:
                log.info("incident log %s writable again; it is up to date", self.incident_log.path)
            self.log_failing = False
        self.metrics.log_unwritten.set(len(self.unwritten))

    def run(self) -> None:
        while True:
            delay = self.cycle()
            if self.clock.wait(delay):
                return

    def state(self) -> dict[str, Any]:
        with self.lock:
            doc = self.tracker.snapshot(self.clock.time())
            if self.holding and self.tracker.last_ts is not None:
                held = self.tracker.score_values(self.tracker.last_ts)
                doc["scores"] = {m: round(v, 3) for m, v in held.items()}
        doc["prometheus_up"] = self.prometheus_up
        doc["holding"] = self.holding
        doc["metrics"] = list(self.tracker.known_metrics())
        return doc


def check_queries(client: QueryClient, cfg: IncidentConfig) -> None:
    """Ask Prometheus once, at start, whether the configured queries parse: a query it refuses as
    ``bad_data`` is a ``UserError`` (it would otherwise look like an outage forever). Prometheus being
    away or odd at start is not an error: the loop keeps retrying it."""
    for name in ("query", "monitors_query", "replicas_query", "spacing_query"):
        expr = getattr(cfg, name)
        try:
            client.query(expr)
        except PrometheusError as exc:
            if exc.bad_query:
                said = " ".join(str(exc).split())
                raise UserError(f"{name} {expr!r} is not valid PromQL: {said}") from None
            return
        except FormatError:
            return


def serve(watcher: IncidentWatcher, host: str, port: int) -> ThreadingHTTPServer:
    """Serve /metrics, /state (JSON) and /healthz on a daemon thread; a busy port is a ``UserError``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(watcher.metrics.registry))
            elif path == "/state":
                self._send(200, "application/json", dumps(watcher.state()).encode())
            elif path in (healthz.PATH, "/"):
                self._send(200, healthz.CONTENT_TYPE, healthz.body())
            else:
                body = dumps({"error": f"no such path {path}; try /metrics, /state or /healthz"})
                self._send(404, "application/json", body.encode())

        def _refuse(self) -> None:
            body = dumps({"error": f"{self.command} is not supported here; this server only answers GET"})
            self._send(405, "application/json", body.encode())

        do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            reply(self, status, ctype, body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per scrape would drown the incident lines

    class Server(BoundedThreads, ThreadingHTTPServer):
        request_queue_size = LISTEN_BACKLOG  # socketserver's 5 makes clients wait 1 s retries under load
        daemon_threads = True

    try:
        server = Server((host, port), Handler)
    except OSError as exc:  # lost a race with require_free_port's check, or a host that cannot be bound
        raise listen_error(exc, host, port, "incident detector") from None
    threading.Thread(target=server.serve_forever, name="incident-http", daemon=True).start()
    return server
