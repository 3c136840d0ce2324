"""The alerts' descriptions point to what runs (issue 21): a real Prometheus evaluating prometheus/rules
with the external labels `python -m stack` renders: the live page locally, the live page and Grafana in
docker-compose. (`promtool test rules` of Prometheus 2.42 cannot set external labels, so it checks only
the case without them: prometheus/rules/tests/.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge

from harness import ROOT
from harness.services import ScrapeTarget
from stack import render
from stack.config import load_stack
from streamwatch.net import free_port, start_metrics_server, wait_until

pytestmark = pytest.mark.e2e

RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))


def detector(severity: int, troubled: list[str]) -> tuple[Any, str]:
    """An endpoint exporting what an incident detector at ``severity`` exports (the rules' inputs)."""
    reg = CollectorRegistry()
    Gauge("streamwatch_incident_severity", "Severity.", registry=reg).set(severity)
    Gauge("streamwatch_incident_threshold", "Threshold.", registry=reg).set(10)
    trouble = Gauge("streamwatch_incident_metric_in_trouble", "In trouble.", ["metric"], registry=reg)
    for m in troubled:
        trouble.labels(m).set(1)
    port = free_port()
    server, _ = start_metrics_server(reg, "127.0.0.1", port, "detector double")
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def detectors() -> Iterator[dict[str, str]]:
    """Two detectors on their own: one in Sev 1 (two metrics), one in Sev 2 (one metric)."""
    sev1, a = detector(1, ["energy_consumption", "energy_price"])
    sev2, b = detector(2, ["cpu"])
    yield {"sev1": a, "sev2": b}
    sev1.shutdown()
    sev2.shutdown()


def descriptions(url: str) -> dict[str, str]:
    alerts = requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return {
        a["labels"]["alertname"]: a["annotations"]["description"] for a in alerts if a["state"] == "firing"
    }


@pytest.mark.parametrize("variant", ["local", "compose"])
def test_sev1_and_sev2_descriptions_link_to_the_pages_that_run(start_prometheus, detectors, variant):
    cfg = load_stack()
    doc = (
        render.compose_prometheus_config(cfg)
        if variant == "compose"
        else render.local_prometheus_config(cfg, ROOT)
    )
    links = doc["global"]["external_labels"]
    dashboard = cfg.enabled_services()["dashboard"]
    assert links["dashboard_url"] == f"http://127.0.0.1:{dashboard.port}/"
    assert ("grafana_url" in links) == (variant == "compose")
    prom = start_prometheus(
        [ScrapeTarget("detector", detectors["sev1"]), ScrapeTarget("detector", detectors["sev2"])],
        rule_files=RULE_FILES,
        external_labels=links,
    )
    assert wait_until(lambda: {"StreamwatchSev1", "StreamwatchSev2"} <= set(descriptions(prom.url)), 30, 0.3)
    got = descriptions(prom.url)
    for alert in ("StreamwatchSev1", "StreamwatchSev2"):
        assert f"the live page ({links['dashboard_url']}" in got[alert], got[alert]
        assert ("Grafana" in got[alert]) == (variant == "compose"), got[alert]
        assert "/state" in got[alert]
    if variant == "compose":
        assert f"({links['grafana_url']})" in got["StreamwatchSev1"]
        assert f"({links['grafana_url']}?var-metric=cpu)" in got["StreamwatchSev2"]
    else:
        assert "Streamwatch overview" not in got["StreamwatchSev1"] + got["StreamwatchSev2"]
