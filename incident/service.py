"""The shell: poll Prometheus, feed the tracker, write the log, export metrics, serve /metrics and /state."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from incident.config import IncidentConfig
from incident.counts import CounterDeltas
from incident.exporter import IncidentMetrics
from incident.log import IncidentLog
from incident.severity import IncidentEvent, IncidentTracker, SeriesId
from streamwatch.backoff import Backoff
from streamwatch.clock import Clock
from streamwatch.net import listen_error
from streamwatch.promapi import FormatError, PrometheusError
from streamwatch.series import Series

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
    ):
        self.cfg = cfg
        self.client = client
        self.clock = clock
        self.incident_log = incident_log
        self.metrics = metrics or IncidentMetrics(tuple(cfg.metrics))
        self.tracker = IncidentTracker(tuple(cfg.metrics), cfg.rules(), cfg.recent_incidents, cfg.limits())
        self.deltas: CounterDeltas[SeriesId] = CounterDeltas()  # series found in each reading
        self.refusing = False  # say so once per streak of refused series, not every cycle
        self.backoff = Backoff(initial_s=cfg.interval, maximum_s=max(cfg.interval, cfg.backoff_max_s))
        self.prometheus_up: bool | None = None  # unknown until the first query
        self.unwritten: list[IncidentEvent] = []  # events the incident log could not take yet, in order
        self.log_failing = False  # say so once per streak of failed writes, not every cycle
        self.lock = threading.Lock()
        self.metrics.update_state(self.tracker, clock.time())

    def read(self) -> dict[SeriesId, float]:
        """The latest cumulative anomaly count per series of a watched metric, keyed by its labels."""
        out: dict[SeriesId, float] = {}
        for series in self.client.query(self.cfg.query):
            sid = SeriesId.of(series.labels, self.cfg.metric_label)
            if sid.metric and self.tracker.watches(sid.metric) and len(series.values):
                out[sid] = float(series.values[-1])
        return out

    def cycle(self) -> float:
        now = self.clock.time()
        try:
            reading = self.read()
        except (PrometheusError, FormatError) as exc:
            # Keep the last state: no incident opens, changes or resolves while we cannot see. The
            # counter then catches up on everything the monitors counted meanwhile, spread over the gap.
            self.metrics.health.failed()
            if self.prometheus_up is not False:
                log.warning("Prometheus unavailable, keeping the last state and retrying: %s", exc)
            self.prometheus_up = False
            self.write_log()
            return self.backoff.next_delay()
        if self.prometheus_up is False:
            log.info("Prometheus reachable again at %s", self.cfg.prometheus_url)
        self.prometheus_up = True
        self.backoff.reset()
        with self.lock:
            events = self.tracker.observe(now, self.deltas.update(reading))
            self.deltas.forget(self.tracker.dropped)
            self.deltas.forget(self.tracker.refused)  # memory stays bounded by max_series
            self.note_refused()
            for event in events:
                self.metrics.record(event)
                log.warning("%s", event.one_line())
            self.unwritten.extend(events)
            self.write_log()
            self.metrics.update_state(self.tracker, now)
        self.metrics.health.succeeded(now)
        return self.cfg.interval

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
                self.incident_log.write(self.unwritten[0])
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
        doc["prometheus_up"] = self.prometheus_up
        doc["metrics"] = list(self.tracker.known_metrics())
        return doc


def serve(watcher: IncidentWatcher, host: str, port: int) -> ThreadingHTTPServer:
    """Serve /metrics, /state (JSON) and /healthz on a daemon thread; a busy port is a ``UserError``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(watcher.metrics.registry))
            elif path == "/state":
                self._send(200, "application/json", json.dumps(watcher.state()).encode())
            elif path in ("/healthz", "/"):
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            else:
                body = json.dumps({"error": f"no such path {path}; try /metrics, /state or /healthz"})
                self._send(404, "application/json", body.encode())

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per scrape would drown the incident lines

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:  # lost a race with require_free_port's check, or a host that cannot be bound
        raise listen_error(exc, host, port, "incident detector") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="incident-http", daemon=True).start()
    return server
