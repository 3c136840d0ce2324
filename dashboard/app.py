"""The dashboard's Flask application: the page, and a proxy that runs only named Prometheus queries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask, jsonify, render_template, request

from dashboard import injection, queries, views
from dashboard.config import DashboardConfig
from dashboard.queries import BadRequest
from streamwatch.httpguard import protect
from streamwatch.promapi import FormatError, PrometheusClient, PrometheusError

log = logging.getLogger("dashboard")


class Unavailable(RuntimeError):
    """A peer (Prometheus or the simulator) could not answer; the page shows why and retries."""

    def __init__(self, source: str, message: str):
        super().__init__(message)
        self.source = source


def create_app(config: DashboardConfig | None = None, clock: Callable[[], float] = time.time) -> Flask:
    cfg = config or DashboardConfig()
    app = Flask(__name__)
    app.config["DASHBOARD"] = cfg
    # The injection buttons drive the simulator: only this page's own JSON fetch may press them. Any HTTP
    # error (404, 405, 413...) is JSON too, so the page can always show the reason.
    protect(app, cfg.guard())
    app.json.sort_keys = False  # type: ignore[attr-defined]
    prom = PrometheusClient(cfg.prometheus_url, timeout_s=cfg.timeout_s)
    sim = requests.Session()
    available_cases = injection.cases(cfg)
    # Log Prometheus going away and coming back once each, not on every 2 s refresh.
    state = {"prometheus_up": True}

    def prometheus(call: Callable[[], Any]) -> Any:
        try:
            result = call()
        except (PrometheusError, FormatError) as exc:
            if state["prometheus_up"]:
                log.warning("Prometheus unavailable at %s: %s", cfg.prometheus_url, exc)
                state["prometheus_up"] = False
            raise Unavailable("prometheus", str(exc)) from None
        if not state["prometheus_up"]:
            log.info("Prometheus at %s is back", cfg.prometheus_url)
            state["prometheus_up"] = True
        return result

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> Any:
        return jsonify(error=str(exc)), 400

    @app.errorhandler(Unavailable)
    def unavailable(exc: Unavailable) -> Any:
        return jsonify(error=str(exc), source=exc.source), 503

    @app.get("/")
    def index() -> str:
        return render_template(
            "index.html",
            metrics=cfg.metrics,
            refresh_ms=int(cfg.refresh_s * 1000),
            ranges=list(queries.RANGES),
            default_range=queries.DEFAULT_RANGE,
            prometheus_url=cfg.prometheus_url,
        )

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.get("/api/config")
    def api_config() -> Any:
        return jsonify(
            metrics=cfg.metrics,
            refresh_s=cfg.refresh_s,
            ranges=list(queries.RANGES),
            prometheus_url=cfg.prometheus_url,
        )

    @app.get("/api/series")
    def api_series() -> Any:
        args = request.args
        metric = queries.check_metric(args.get("metric"), cfg.metrics)
        range_s = queries.parse_range(args.get("range"))
        q = queries.series_query(args.get("name"), metric, range_s, clock(), cfg.max_points)
        result = prometheus(lambda: prom.query_range(q.expr, q.start, q.end, q.step_s))
        if args["name"] == "band":
            payload = views.band_payload(result)
        else:
            payload = views.score_payload(result, metric)
        return jsonify(name=args["name"], metric=metric, start=q.start, end=q.end, step_s=q.step_s, **payload)

    @app.get("/api/summary")
    def api_summary() -> Any:
        range_s = queries.parse_range(request.args.get("range"))
        instant = prometheus(lambda: prom.query(queries.summary_expr()))
        in_range = prometheus(lambda: prom.query(queries.anomalies_in_range_expr(range_s)))
        up = prometheus(lambda: prom.query(queries.targets_up_expr()))
        return jsonify(time=clock(), **views.summary_payload(instant, in_range, up, cfg.metrics))

    @app.get("/api/incidents")
    def api_incidents() -> Any:
        lookback = cfg.incident_lookback_s
        step = queries.step_for(lookback, cfg.max_points * 4)
        end = clock()
        result = prometheus(lambda: prom.query_range(queries.incidents_expr(), end - lookback, end, step))
        return jsonify(
            lookback_s=lookback, step_s=step, incidents=views.incidents_payload(result, cfg.metrics)
        )

    @app.get("/api/simulator")
    def api_simulator() -> Any:
        reachable = _simulator_up(sim, cfg)
        return jsonify(
            reachable=reachable,
            url=cfg.simulator_url,
            cases=[
                {"id": c.id, "label": c.label, "duration_s": c.duration_s, "expect": c.expect}
                for c in available_cases
            ]
            if reachable
            else [],
        )

    @app.post("/api/inject")
    def api_inject() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest('body must be a JSON object like {"case": "prolonged_all"}')
        case = injection.find_case(body.get("case"), available_cases)
        injected = []
        for doc in injection.requests_for(case, cfg.spike_magnitude):
            try:
                resp = sim.post(f"{cfg.simulator_url}/anomalies", json=doc, timeout=cfg.timeout_s)
            except requests.RequestException as exc:
                raise Unavailable(
                    "simulator", f"cannot reach the simulator at {cfg.simulator_url}: {type(exc).__name__}"
                ) from None
            if resp.status_code != 201:
                detail = f"HTTP {resp.status_code} {resp.text[:200]}"
                return jsonify(error=f"simulator refused {doc}: {detail}", source="simulator"), 502
            injected.append({**doc, "response": _json_or_none(resp)})
        log.info("injected %s: %s", case.id, ", ".join(case.metrics))
        return jsonify(case=case.id, label=case.label, injected=injected), 201

    return app


def _simulator_up(session: requests.Session, cfg: DashboardConfig) -> bool:
    try:
        return session.get(f"{cfg.simulator_url}/healthz", timeout=cfg.timeout_s).status_code == 200
    except requests.RequestException:
        return False


def _json_or_none(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None
