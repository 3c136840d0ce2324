"""Issue 11's hostile requests, sent to the stack's own services started with the stack's own commands.

A web page on any origin can make the browser send "simple" requests (a text/plain POST, no preflight)
to 127.0.0.1, and DNS rebinding lets it do so under its own host name. Each such request used to work:
the simulator injected, the alert receiver logged a forged "resolved", the dashboard pressed its buttons
and Prometheus stopped on POST /-/quit. Here each must be refused, while the legitimate callers (the
dashboard page's own fetch, Alertmanager's webhook delivery, curl with JSON) still get through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.procs import ManagedProcess
from harness.stack_variant import Timing, write_fast_config
from incident.log import iter_events
from stack import credentials
from stack.config import ROOT, StackConfig, load_stack
from stack.runner import prepare_data_dir, service_commands
from streamwatch.net import wait_until

pytestmark = pytest.mark.e2e

EVIL = "http://evil.example"
STARTED = ("prometheus", "alertmanager", "alert-receiver", "simulator", "dashboard")
FORGED_RESOLVE = {
    "version": "4",
    "status": "resolved",
    "receiver": "streamwatch-webhook",
    "alerts": [{"status": "resolved", "labels": {"alertname": "StreamwatchSev1", "sev": "1"}}],
}
INJECT = {"metric": "energy_price", "kind": "spike", "magnitude": 3, "duration_s": 60}


@dataclass
class Stack:
    cfg: StackConfig
    data: Path
    processes: dict[str, ManagedProcess]

    def url(self, name: str) -> str:
        return f"http://{self.cfg.host}:{self.cfg.services[name].port}"

    def port(self, name: str) -> int:
        return self.cfg.services[name].port

    def anomalies(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url('simulator')}/anomalies", timeout=5).json()["anomalies"]

    def alert_lines(self) -> list[dict[str, Any]]:
        path = self.data / "alerts.log"
        return list(iter_events(path)) if path.exists() else []

    def diagnostics(self) -> str:
        return "\n".join(f"--- {n}\n{p.log_tail(10)}" for n, p in self.processes.items())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prometheus, Alertmanager, the alert receiver, the simulator and the dashboard, as `make demo` starts
    them (stack.toml's commands on free ports); the Prophet monitors and the detector are not needed."""
    tmp = tmp_path_factory.mktemp("web-safety")
    cfg = load_stack(write_fast_config(tmp / "stack", Timing()))
    data = prepare_data_dir(cfg, ROOT)
    commands = service_commands(cfg, ROOT)
    processes: dict[str, ManagedProcess] = {}
    try:
        for name in STARTED:
            processes[name] = ManagedProcess(name, commands[name], tmp / f"{name}.log", cwd=ROOT)
        st = Stack(cfg, data, processes)
        auth = {"alertmanager": credentials.ensure(data).auth}  # made by prepare_data_dir, as make demo does
        for name in STARTED:
            processes[name].wait_http(st.url(name) + cfg.services[name].health_path, 60, auth.get(name))
        yield st
    finally:
        for p in processes.values():
            p.stop()


def hostile(url: str, body: str, **headers: str) -> requests.Response:
    """What `fetch(url, {method: "POST", mode: "no-cors", body})` on http://evil.example sends."""
    sent = {"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8", **headers}
    return requests.post(url, data=body, headers=sent, timeout=5)


def assert_refused(resp: requests.Response, *statuses: int) -> None:
    assert resp.status_code in statuses, (resp.status_code, resp.text[:200])
    assert resp.headers["Content-Type"].startswith("application/json") and resp.json()["error"]
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_a_foreign_page_cannot_inject_into_the_simulator(stack: Stack) -> None:
    before = stack.anomalies()
    assert_refused(hostile(f"{stack.url('simulator')}/anomalies", json.dumps(INJECT)), 403)
    assert stack.anomalies() == before


def test_a_foreign_page_cannot_forge_alerts(stack: Stack) -> None:
    before = stack.alert_lines()
    assert_refused(hostile(f"{stack.url('alert-receiver')}/", json.dumps(FORGED_RESOLVE)), 403)
    assert stack.alert_lines() == before


def test_a_foreign_page_cannot_press_the_dashboards_buttons(stack: Stack) -> None:
    before = stack.anomalies()
    assert_refused(hostile(f"{stack.url('dashboard')}/api/inject", '{"case": "prolonged_all"}'), 403)
    assert stack.anomalies() == before


@pytest.mark.parametrize("service", ["simulator", "alert-receiver", "dashboard"])
def test_dns_rebinding_is_refused(stack: Stack, service: str) -> None:
    # The page at http://rebind.evil.example:PORT/ whose name now resolves to 127.0.0.1: same origin
    # for the browser, so it may even send JSON; only the Host header gives it away.
    path = {"simulator": "/anomalies", "alert-receiver": "/", "dashboard": "/api/inject"}[service]
    body = {"simulator": INJECT, "alert-receiver": FORGED_RESOLVE, "dashboard": {"case": "prolonged_all"}}
    rebound = f"rebind.evil.example:{stack.port(service)}"
    before = (stack.anomalies(), stack.alert_lines())
    resp = requests.post(
        stack.url(service) + path,
        json=body[service],
        headers={"Host": rebound, "Origin": f"http://{rebound}"},
        timeout=5,
    )
    assert_refused(resp, 403)
    assert (stack.anomalies(), stack.alert_lines()) == before


def test_prometheus_has_no_lifecycle_api_and_stays_up(stack: Stack) -> None:
    argv = service_commands(stack.cfg, ROOT)["prometheus"]
    assert not any("enable-lifecycle" in a for a in argv)
    prom = stack.url("prometheus")
    for path in ("/-/quit", "/-/reload"):
        resp = hostile(prom + path, "")
        assert resp.status_code in (403, 404, 405), (path, resp.status_code, resp.text)
    assert requests.get(f"{prom}/-/ready", timeout=5).status_code == 200
    assert stack.processes["prometheus"].alive


def test_prometheus_answers_cross_origin_reads_for_the_dashboard_only(stack: Stack) -> None:
    query = f"{stack.url('prometheus')}/api/v1/query?query=up"
    foreign = requests.get(query, headers={"Origin": EVIL}, timeout=5)
    assert foreign.status_code == 200 and "Access-Control-Allow-Origin" not in foreign.headers
    for host in ("127.0.0.1", "localhost"):
        origin = f"http://{host}:{stack.port('dashboard')}"
        own = requests.get(query, headers={"Origin": origin}, timeout=5)
        assert own.headers.get("Access-Control-Allow-Origin") == origin


def test_alertmanager_answers_any_origin_but_only_with_the_stacks_credential(stack: Stack) -> None:
    # Alertmanager 0.25 has no CORS flag (docs/security.md): with the credential it still answers any
    # origin; without it (a browser's request) it refuses, preflight included (issue 22, item 6).
    url = f"{stack.url('alertmanager')}/api/v2/status"
    auth = credentials.ensure(stack.data).auth
    assert (
        requests.get(url, headers={"Origin": EVIL}, auth=auth, timeout=5).headers.get(
            "Access-Control-Allow-Origin"
        )
        == "*"
    )
    refused = requests.get(url, headers={"Origin": EVIL}, timeout=5)
    assert refused.status_code == 401 and "Access-Control-Allow-Origin" not in refused.headers
    forged = hostile(
        f"{stack.url('alertmanager')}/api/v2/alerts", json.dumps([{"labels": {"alertname": "X"}}])
    )
    assert forged.status_code == 401


def test_legitimate_callers_still_get_through(stack: Stack) -> None:
    # curl with JSON, as the README and the banner show it.
    made = requests.post(f"{stack.url('simulator')}/anomalies", json=INJECT, timeout=5)
    assert made.status_code == 201, made.text
    ended = requests.delete(f"{stack.url('simulator')}/anomalies/{made.json()['id']}", timeout=5)
    assert ended.status_code == 204
    # Alertmanager's own webhook delivery: an alert posted to its API reaches the guarded receiver.
    alert = [{"labels": {"alertname": "StreamwatchWebSafety", "severity": "critical"}}]
    auth = credentials.ensure(stack.data).auth  # as Prometheus and amtool send it
    posted = requests.post(f"{stack.url('alertmanager')}/api/v2/alerts", json=alert, auth=auth, timeout=5)
    assert posted.status_code == 200, posted.text

    def delivered() -> bool:
        return any(line["alertname"] == "StreamwatchWebSafety" for line in stack.alert_lines())

    assert wait_until(delivered, 60, 0.5), stack.diagnostics()
    assert not any(line["status"] == "resolved" for line in stack.alert_lines())  # no forgery ever landed


def test_the_dashboard_page_injects_and_a_foreign_page_cannot(stack: Stack) -> None:
    """In a real browser: the button's same-origin JSON fetch works; the same fetch from another origin
    (the simulator's page stands in for a foreign site) does not reach the simulator."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from harness import quickstack

    if not Path(quickstack.CHROMIUM).exists():
        pytest.fail(f"{quickstack.CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    dashboard = stack.url("dashboard")
    before = stack.anomalies()
    with sync_api.sync_playwright() as p:
        browser = quickstack.launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(f"{stack.url('simulator')}/healthz")
            status = page.evaluate(
                """async url => {
                  await fetch(url, {method: "POST", mode: "no-cors", body: '{"case": "prolonged_one"}'});
                  try {
                    const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                                body: '{"case": "prolonged_one"}'});
                    return r.status;
                  } catch (e) { return "blocked"; }
                }""",
                f"{dashboard}/api/inject",
            )
            assert status in ("blocked", 403), status  # the preflight finds no CORS grant
            assert stack.anomalies() == before

            page.goto(f"{dashboard}/")
            button = page.get_by_role("button", name="Prolonged spike in energy_consumption")
            button.wait_for(timeout=20_000)
            button.click()
            page.wait_for_function(
                "() => document.getElementById('inject-status').textContent.startsWith('Injected')",
                timeout=10_000,
            )
        finally:
            browser.close()
    new = [a for a in stack.anomalies() if a not in before]
    assert [a["metric"] for a in new] == ["energy_consumption"]
