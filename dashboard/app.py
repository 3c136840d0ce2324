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
from streamwatch import healthz
from streamwatch.httpguard import protect
from streamwatch.promapi import FormatError, PrometheusClient, PrometheusError
from streamwatch.series import Series

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
    detector = requests.Session()  # the incident detector's /state
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
            top_k=cfg.top_k,
        )

    healthz.add_route(app)

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
        picked = queries.parse_series(args.get("series"))
        if picked:
            metric = queries.check_series_metric(args.get("metric"), cfg.metrics)
        else:
            metric = queries.check_metric(args.get("metric"), cfg.metrics)
        range_s = queries.parse_range(args.get("range"))
        q = queries.series_query(
            args.get("name"), metric, range_s, clock(), cfg.max_points, picked, cfg.scrape_step_s
        )
        result = prometheus(lambda: prom.query_range(q.expr, q.start, q.end, q.step_s))
        if args["name"] == "band":
            raw: list[Series] = []
            if not picked:  # a picked series' source is the monitor's query result: its copy is drawn
                src = queries.source_expr(cfg.source_query, metric)
                raw = prometheus(lambda: prom.query_range(src, q.start, q.end, q.step_s))
            payload = views.band_payload(result, raw)
        else:
            payload = views.score_payload(result, metric)
        return jsonify(
            name=args["name"], metric=metric, series=picked, start=q.start, end=q.end, step_s=q.step_s,
            **payload,
        )  # fmt: skip

    @app.get("/api/top")
    def api_top() -> Any:
        result = prometheus(lambda: prom.query(queries.top_series_expr(cfg.top_k)))
        return jsonify(k=cfg.top_k, series=views.top_payload(result))

    @app.get("/api/summary")
    def api_summary() -> Any:
        range_s = queries.parse_range(request.args.get("range"))
        instant = prometheus(lambda: prom.query(queries.summary_expr()))
        in_range = prometheus(lambda: prom.query(queries.anomalies_in_range_expr(range_s)))
        up = prometheus(lambda: prom.query(queries.targets_up_expr()))
        return jsonify(time=clock(), **views.summary_payload(instant, in_range, up, cfg.metrics))

    @app.get("/api/incidents")
    def api_incidents() -> Any:
        try:
            resp = detector.get(f"{cfg.incident_url}/state", timeout=cfg.timeout_s)
            resp.raise_for_status()
            state = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise Unavailable(
                "incident detector", f"cannot read the incident detector at {cfg.incident_url}/state: "
                f"{type(exc).__name__}",
            ) from None  # fmt: skip
        return jsonify(**views.incidents_payload(state))

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
