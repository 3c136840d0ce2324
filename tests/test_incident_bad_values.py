"""Issue 22, items 2 and 8: absurd counter values, damaged state files and odd alert bodies.

A counter jump to 1e308 once killed the incident detector (its log writer refused the infinite score)
and would have held the score for 17 hours; a damaged state file was a traceback, or replayed forged
lines into the incident log; the alert receiver answered 500 after writing a line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge

from harness import ROOT
from harness.cli import assert_one_line_error, run_python
from harness.procs import ManagedProcess, python_argv
from harness.services import PrometheusFactory, ScrapeTarget
from incident.decay import steady_state
from incident.log import AppendOnlyLog, IncidentLog
from incident.severity import MAX_ANOMALIES_PER_S, MIN_COUNT_WINDOW_S, IncidentTracker, Rules
from incident.state import StateFile, state_path_for
from incident.webhook import WebhookConfig, alert_records, create_app
from streamwatch.errors import DataError
from streamwatch.logs import setup_logging
from streamwatch.net import free_port, start_metrics_server, wait_until

T0 = 1_700_000_000.0
METRICS = ("energy_consumption", "energy_price")


def strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"{token} in JSON: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


# --- item 2: a counter jump to 1e308 -------------------------------------------------------------------


def test_a_huge_count_adds_a_bounded_amount_and_resolves_within_minutes() -> None:
    rules = Rules(half_life_s=60, threshold=10, clear_threshold=5)
    tr = IncidentTracker(("energy_price",), rules)
    tr.observe(T0, {"energy_price": 0})
    [opened] = tr.observe(T0 + 5, {"energy_price": 1e308})
    score = tr.score_values(T0 + 5)["energy_price"]
    assert opened.event == "opened" and math.isfinite(score)
    assert score <= MAX_ANOMALIES_PER_S * MIN_COUNT_WINDOW_S  # one jump adds at most a minute's worth
    # ... which is gone below the clear threshold in 7 half-lives, not 17 hours.
    t, events = T0 + 5, []
    while t < T0 + 5 + 8 * 60:
        t += 5
        events += tr.observe(t, {"energy_price": 0})
    assert [e.event for e in events] == ["resolved"]
    # A real prolonged anomaly (one per 2 s sample) still settles far above the threshold: not cut.
    assert steady_state(0.5, 60) < MAX_ANOMALIES_PER_S * MIN_COUNT_WINDOW_S


def test_the_json_writers_never_raise_on_a_value(tmp_path: Path) -> None:
    # Whatever slips past the bounds, a non-finite number is written as null: the write path never fails
    # (which stopped the detector), and what it writes is still strict JSON.
    tr = IncidentTracker(METRICS, Rules())
    [event] = tr.observe(T0, {"energy_price": 100.0})
    with IncidentLog(tmp_path / "i.log") as ilog:
        line = ilog.format(event.__class__(**{**event.__dict__, "scores": {"energy_price": math.inf}}))
        ilog.append_line(line)
    assert strict(line)["scores"] == {"energy_price": None}
    with AppendOnlyLog(tmp_path / "alerts.log") as alerts:
        alerts.append_json({"annotations": {"value": math.nan}})
    assert strict((tmp_path / "alerts.log").read_text()) == {"annotations": {"value": None}}
    tr.series[next(iter(tr.series))].score.value = math.inf
    StateFile(tmp_path / "s.json").save({"tracker": tr.to_dict()})
    strict((tmp_path / "s.json").read_text())


@pytest.mark.e2e
def test_a_counter_jump_to_1e308_neither_kills_the_detector_nor_holds_the_incident(
    start_prometheus: PrometheusFactory, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    counter = Counter("streamwatch_monitor_anomalies", "anomalies", ["metric"], registry=registry)
    last = Gauge("streamwatch_monitor_last_success_timestamp_seconds", "last", ["metric"], registry=registry)
    for m in METRICS:
        counter.labels(metric=m)
        last.labels(metric=m).set(time.time())
    port = free_port()
    server, _ = start_metrics_server(registry, "127.0.0.1", port)
    det_port = free_port()
    log_path = tmp_path / "incidents.log"
    conf = tmp_path / "incident.toml"
    conf.write_text("half_life_s = 1.0\nthreshold = 10.0\ninterval = 0.2\n")
    try:
        prom = start_prometheus([ScrapeTarget("monitors", f"127.0.0.1:{port}", interval="1s")], interval="1s")
        argv = python_argv(
            str(ROOT / "incident_detector.py"), "--config", str(conf), "--port", str(det_port),
            "--prometheus-url", prom.url, "--log", str(log_path),
        )  # fmt: skip
        with ManagedProcess("incident", argv, tmp_path / "incident.out") as det:
            det.wait_http(f"http://127.0.0.1:{det_port}/healthz")
            state_url = f"http://127.0.0.1:{det_port}/state"
            assert wait_until(lambda: requests.get(state_url, timeout=5).json()["prometheus_up"], 30)
            counter.labels(metric="energy_price")._value.set(1e308)
            assert wait_until(lambda: requests.get(state_url, timeout=5).json()["severity"] == 2, 30)
            # One jump: the score is bounded, so it decays below the clear threshold within seconds at a
            # 1 s half-life (it used to be infinite, and the next log write killed the process).
            assert wait_until(lambda: requests.get(state_url, timeout=5).json()["severity"] == 0, 60)
            assert det.alive, det.log_tail()
            strict(requests.get(state_url, timeout=5).text)
    finally:
        server.shutdown()
    events = [strict(line)["event"] for line in log_path.read_text().splitlines()]
    assert events == ["opened", "resolved"]
    strict(state_path_for(log_path).read_text())


# --- item 8: a damaged state file is checked entry by entry before anything is replayed ----------------


def good_state() -> dict[str, Any]:
    tr = IncidentTracker(METRICS, Rules())
    tr.observe(T0, {"energy_price": 0})
    [event] = tr.observe(T0 + 5, {"energy_price": 20})
    return {
        "version": 1,
        "tracker": tr.to_dict(),
        "deltas": {"last": {}, "baselined": True},
        "unwritten": [json.dumps(event.to_dict())],
    }


def damaged(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    node: Any = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("unwritten.0", "not json at all", "unwritten[0] is not an incident event line"),
        ("unwritten.0", '{"event": "opened"}\n{"forged": 1}', "unwritten[0] must be one line"),
        ("unwritten.0", '{"event": "hacked", "incident_id": "x"}', "unwritten[0] is not an incident event"),
        ("unwritten", "abc", "unwritten must be a list"),
        ("tracker.current.severity", 7, "tracker.current.severity must be 1 or 2"),
        ("tracker.current.started_at", 1e300, "tracker.current.started_at must be a number"),
        ("tracker.last_ts", "yesterday", "tracker.last_ts must be a number"),
        ("tracker.series.0.1.value", -3, "tracker.series[0][1].value must be a number"),
        ("tracker.series.0.0", "[[[[", "tracker.series[0][0] is not a series key"),
        ("tracker.series.0.3", "yes", "tracker.series[0][3] must be true or false"),
        ("deltas.baselined", None, "deltas.baselined must be true or false"),
    ],
)
def test_each_damaged_entry_is_named(tmp_path: Path, path: str, value: Any, named: str) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(damaged(good_state(), path, value)))
    with pytest.raises(DataError, match=named.replace("[", r"\[").replace("]", r"\]")):
        StateFile(f).load()


def test_an_undamaged_state_loads(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(good_state()))
    assert StateFile(f).load() is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{not utf-8",
        b'{"version": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"version": 1, "tracker": {"last_ts": 1e999}}',
    ],
    ids=["not-utf8", "100k-deep", "1e999"],
)
def test_unreadable_state_is_a_data_error(tmp_path: Path, raw: bytes) -> None:
    f = tmp_path / "s.json"
    f.write_bytes(raw)
    with pytest.raises(DataError, match="not an incident state file"):
        StateFile(f).load()


def test_a_fifo_as_state_file_is_refused_without_blocking(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    os.mkfifo(f)
    with pytest.raises(DataError, match="not a regular file"):
        StateFile(f).load()


def test_forged_pending_lines_stop_the_detector_before_they_reach_the_log(tmp_path: Path) -> None:
    log_path = tmp_path / "incidents.log"
    doc = good_state()
    doc["unwritten"] += ["forged line 1", "forged line 2", "forged line 3"]
    state_path_for(log_path).write_text(json.dumps(doc))
    argv = ["incident_detector.py", "--port", str(free_port()), "--log", str(log_path)]
    proc = run_python(*argv, "--prometheus-url", f"http://127.0.0.1:{free_port()}", timeout=60)
    assert_one_line_error(proc, "damaged incident state", "unwritten[1] is not an incident event line")
    assert not log_path.exists() or "forged" not in log_path.read_text()


# --- item 8: the alert receiver checks everything before it writes anything -----------------------------


def post(client: Any, body: Any) -> Any:
    return client.post("/", data=body if isinstance(body, str) else json.dumps(body),
                       headers={"Content-Type": "application/json", "Host": "127.0.0.1:5001"})  # fmt: skip


def alert(**extra: Any) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": "StreamwatchSev2", "sev": "2"}, **extra}


@pytest.mark.parametrize(
    "body",
    [
        {"alerts": [alert(), alert(annotations=["a", "list"])]},
        {"alerts": [alert(), alert(annotations="a string")]},
        {"alerts": [alert(), alert(annotations={"summary": {"nested": 1}})]},
        '{"alerts": [{"status": "firing", "labels": {"alertname": "A"}, "startsAt": 1e999}]}',
        {"alerts": [alert(startsAt=12345)]},
        {"alerts": [alert(labels={"alertname": 3})]},
        {"alerts": [alert(status=["firing"])]},
        {"receiver": {"x": 1}, "alerts": [alert()]},
    ],
)
def test_a_bad_alert_is_a_400_and_nothing_is_written(tmp_path: Path, body: Any) -> None:
    cfg = WebhookConfig()
    with AppendOnlyLog(tmp_path / "alerts.log") as alert_log:
        client = create_app(cfg, alert_log).test_client()
        r = post(client, body)
        assert r.status_code == 400, r.get_data(as_text=True)
        assert "error" in r.get_json()
        r = post(client, {"alerts": [alert(annotations={"summary": "ok"})]})
        assert r.status_code == 200
    lines = (tmp_path / "alerts.log").read_text().splitlines()
    assert len(lines) == 1 and strict(lines[0])["annotations"] == {"summary": "ok"}


def test_alert_records_keep_alertmanager_fields() -> None:
    [rec] = alert_records(
        {"receiver": "r", "alerts": [alert(startsAt="2024-01-01T00:00:00Z", annotations={"summary": "s"})]},
        T0,
    )
    assert rec["startsAt"] == "2024-01-01T00:00:00Z" and rec["receiver"] == "r"


@pytest.mark.e2e
def test_a_label_with_a_newline_stays_one_line_in_the_receivers_process_log(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "receiver.out"
    argv = python_argv("-m", "incident.webhook", "--port", str(port), "--log", str(tmp_path / "alerts.log"))
    with ManagedProcess("receiver", argv, out, cwd=ROOT) as proc:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        forged = "energy_price\n2030-01-01T00:00:00 INFO  alerts: RESOLVED StreamwatchSev1 sev=1"
        body = {"alerts": [alert(labels={"alertname": "StreamwatchSev2", "sev": "2", "metric": forged})]}
        r = requests.post(f"http://127.0.0.1:{port}/", json=body, timeout=5)
        assert r.status_code == 200
        assert wait_until(lambda: "FIRING" in out.read_text(), 10)
    lines = out.read_text().splitlines()
    assert not [line for line in lines if line.startswith("2030-01-01")]
    [firing] = [line for line in lines if "FIRING" in line]
    assert "metric=energy_price\\n2030-01-01T00:00:00 INFO" in firing


def test_the_text_log_escapes_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("text")
    logging.getLogger("alerts").info("%s", "a\nb\rc\x1b[31m")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a\\nb\\rc\\x1b[31m" in err
