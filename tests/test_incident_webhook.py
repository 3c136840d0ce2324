"""The Alertmanager webhook receiver: payload parsing, the append-only alert log, its metrics and CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import ROOT
from harness.net import busy_port
from harness.procs import python_argv
from harness.services import assert_promtool_metrics_ok
from incident.log import AppendOnlyLog, iter_events
from incident.webhook import WebhookConfig, alert_records, create_app, one_line


def payload(status: str = "firing", **labels: str) -> dict[str, Any]:
    """What Alertmanager 0.25 posts (webhook version 4), trimmed to the fields that matter."""
    return {
        "version": "4",
        "status": status,
        "receiver": "streamwatch-webhook",
        "groupLabels": {"alertname": labels.get("alertname", "StreamwatchSev1")},
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "StreamwatchSev1", "sev": "1", **labels},
                "annotations": {"summary": "Sev 1: several metrics anomalous"},
                "startsAt": "2026-11-23T19:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


@pytest.fixture
def client(tmp_path: Path) -> Any:
    with AppendOnlyLog(tmp_path / "alerts.log") as alert_log:
        app = create_app(WebhookConfig(recent=2), alert_log, clock=lambda: 1_800_000_000.0)
        yield app.test_client()


def test_records_flatten_each_alert() -> None:
    (rec,) = alert_records(payload(metric="energy_price"), 1.0)
    assert rec["alertname"] == "StreamwatchSev1" and rec["status"] == "firing"
    assert rec["labels"]["metric"] == "energy_price" and rec["received"] == 1.0
    expected = "FIRING   StreamwatchSev1 sev=1 metric=energy_price Sev 1: several metrics anomalous"
    assert one_line(rec) == expected


@pytest.mark.parametrize(
    ("body", "needle"),
    [([], "JSON object"), ({"status": "firing"}, "'alerts'"), ({"alerts": [{"status": "x"}]}, "alerts[0]")],
)
def test_malformed_payloads_are_refused(body: Any, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("[", r"\[")):
        alert_records(body, 0.0)


def test_post_appends_to_log_counts_and_lists_recent(client: Any, tmp_path: Path) -> None:
    assert client.post("/", json=payload()).status_code == 200
    assert client.post("/", json=payload("resolved")).status_code == 200
    assert client.post("/", json=payload("firing", alertname="StreamwatchSev2")).status_code == 200
    logged = list(iter_events(tmp_path / "alerts.log"))
    assert [(r["alertname"], r["status"]) for r in logged] == [
        ("StreamwatchSev1", "firing"),
        ("StreamwatchSev1", "resolved"),
        ("StreamwatchSev2", "firing"),
    ]
    recent = client.get("/alerts").get_json()["alerts"]
    assert [r["status"] for r in recent] == ["resolved", "firing"]  # only the last `recent` (2) kept
    text = client.get("/metrics").get_data(as_text=True)
    assert 'streamwatch_alerts_received_total{alertname="StreamwatchSev1",status="firing"} 1.0' in text
    assert 'streamwatch_alerts_received_total{alertname="StreamwatchSev2",status="firing"} 1.0' in text
    assert_promtool_metrics_ok(text)


def test_a_full_disk_is_a_503_so_alertmanager_retries(tmp_path: Path) -> None:
    with AppendOnlyLog("/dev/full") as alert_log:  # every write fails with ENOSPC
        c = create_app(WebhookConfig(), alert_log).test_client()
        resp = c.post("/", json=payload())
        assert resp.status_code == 503
        assert "No space left on device" in resp.get_json()["error"]
        assert c.get("/alerts").get_json()["alerts"] == []  # not counted as delivered
        alert_log.path = tmp_path / "alerts.log"  # space again: Alertmanager's retry lands
        assert c.post("/", json=payload()).status_code == 200
    assert [r["status"] for r in iter_events(tmp_path / "alerts.log")] == ["firing"]


def test_bad_body_is_400_json_and_not_logged(client: Any, tmp_path: Path) -> None:
    resp = client.post("/", data="not json", content_type="application/json")
    assert resp.status_code == 400 and "JSON object" in resp.get_json()["error"]
    assert (tmp_path / "alerts.log").read_bytes() == b""


@pytest.mark.parametrize(("key", "value"), [("log_max_bytes", -5), ("log_backup_count", -1)])
def test_negative_rotation_settings_are_refused(key: str, value: int) -> None:
    # log_max_bytes=-5 used to be accepted and then rotated the log on every write.
    with pytest.raises(ValueError, match=f"{key} must be 0"):
        WebhookConfig(**{key: value})


def test_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with busy_port() as port:
        done = subprocess.run(
            python_argv("-m", "incident.webhook", "--port", str(port), "--log", str(tmp_path / "a.log")),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"incident.webhook: error: port {port} on 127.0.0.1 is already in use (choose another with --port)"
    ]


# ---- hostile requests (issue 11) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        # A foreign page forging "resolved StreamwatchSev1": text/plain needs no preflight.
        ({"content_type": "text/plain", "headers": {"Origin": "http://evil.example"}}, 403),
        ({"content_type": "text/plain"}, 415),
        ({"content_type": "application/json", "headers": {"Origin": "http://evil.example"}}, 403),
        ({"content_type": "application/json", "headers": {"Host": "evil.example:5001"}}, 403),  # rebinding
    ],
)
def test_forged_alerts_are_refused_and_never_logged(
    client: Any, tmp_path: Path, kwargs: dict[str, Any], status: int
) -> None:
    forged = json.dumps(payload("resolved"))
    resp = client.post("/", data=forged, **kwargs)
    assert resp.status_code == status and resp.is_json and resp.get_json()["error"]
    assert (tmp_path / "alerts.log").read_bytes() == b""
    assert client.get("/alerts").get_json()["alerts"] == []


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"[" * 30_000 + b"]" * 30_000, 400),  # was a RecursionError
        (json.dumps({**payload(), "pad": "x" * 2_000_000}).encode(), 413),
        (b'{"alerts": [], "status": NaN}', 400),  # NaN is not JSON; the log must never hold it
    ],
)
def test_deep_huge_or_non_json_bodies_are_json_errors(
    client: Any, tmp_path: Path, raw: bytes, status: int
) -> None:
    resp = client.post("/", data=raw, content_type="application/json")
    assert resp.status_code == status and resp.get_json()["error"]
    assert (tmp_path / "alerts.log").read_bytes() == b""


def test_alertmanagers_own_request_is_accepted(client: Any, tmp_path: Path) -> None:
    # What Alertmanager 0.25 sends: its own Host from the webhook URL, JSON, no Origin.
    headers = {"Host": "127.0.0.1:5001", "User-Agent": "Alertmanager/0.25.0"}
    resp = client.post("/", data=json.dumps(payload()), content_type="application/json", headers=headers)
    assert resp.status_code == 200
    assert [r["status"] for r in iter_events(tmp_path / "alerts.log")] == ["firing"]


def test_allowed_hosts_come_from_config_and_bad_ones_are_config_errors() -> None:
    assert ("alertmanager", 5001) in WebhookConfig(allowed_hosts=["alertmanager"]).guard().hosts
    with pytest.raises(ValueError, match="allowed_hosts"):
        WebhookConfig(allowed_hosts=["http://x/"])
