"""Issue 22, item 6, on a real Alertmanager: no web page can forge or resolve alerts through it.

Alertmanager 0.25 answers every Origin (``Access-Control-Allow-Origin: *``), so a foreign page's POST
to /api/v2/alerts reached the receiver. The stack now starts it with the credential it makes at first
start (stack.credentials): a request without it, from a browser or anyone, is refused; Prometheus and
amtool, which have it, still get through.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from harness import ROOT
from harness.procs import ManagedProcess, alertmanager_argv
from stack import credentials
from streamwatch.net import free_port

FORGED = json.dumps(
    [{"labels": {"alertname": "StreamwatchSev1", "sev": "1"}, "endsAt": "2030-01-01T00:00:00Z"}]
)


def test_the_credential_is_made_once_and_kept(tmp_path: Path) -> None:
    first = credentials.ensure(tmp_path)
    again = credentials.ensure(tmp_path)
    assert first.password == again.password and len(first.password) >= 32
    assert stat.S_IMODE(first.password_file.stat().st_mode) == 0o600
    web = first.web_config.read_text()
    assert first.password not in web and "$2b$" in web  # only the bcrypt hash is in Alertmanager's file
    assert first.web_config.stat().st_mtime_ns == again.web_config.stat().st_mtime_ns


@pytest.mark.e2e
def test_alertmanager_refuses_a_credential_less_cross_origin_post(tmp_path: Path) -> None:
    shutil.copy(ROOT / "prometheus" / "alertmanager.yml", tmp_path / "alertmanager.yml")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess("alertmanager", alertmanager_argv(tmp_path, port), tmp_path / "am.log") as am:
        cred = credentials.ensure(tmp_path)
        am.wait_http(f"{url}/-/ready", auth=cred.auth)
        page = {"Origin": "http://evil.example"}
        # The preflight a page's JSON POST needs is refused, and so are the "simple" requests a page can
        # send without one (text/plain, a form), and a JSON one from curl without the credential.
        preflight = requests.options(
            f"{url}/api/v2/alerts",
            headers={
                **page,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            timeout=5,
        )
        assert preflight.status_code == 401 and "Access-Control-Allow-Origin" not in preflight.headers
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/json"):
            r = requests.post(
                f"{url}/api/v2/alerts", data=FORGED, headers={**page, "Content-Type": ctype}, timeout=5
            )
            assert r.status_code == 401, (ctype, r.status_code)
        r = requests.post(
            f"{url}/api/v2/alerts", data=FORGED, headers={"Content-Type": "application/json"}, timeout=5
        )
        assert r.status_code == 401
        assert requests.get(f"{url}/api/v2/alerts", auth=cred.auth, timeout=5).json() == []
        # With the credential (what Prometheus and amtool use) it works.
        real = json.dumps([{"labels": {"alertname": "Real"}}])
        r = requests.post(
            f"{url}/api/v2/alerts",
            data=real,
            headers={"Content-Type": "application/json"},
            auth=cred.auth,
            timeout=5,
        )
        assert r.status_code == 200
        if shutil.which("amtool"):
            out = subprocess.run(
                [
                    "amtool",
                    f"--alertmanager.url={url}",
                    f"--http.config.file={cred.amtool_config}",
                    "alert",
                    "query",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert out.returncode == 0 and "Real" in out.stdout, out.stderr
