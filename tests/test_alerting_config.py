"""prometheus/alertmanager.yml: valid for amtool, routes to the webhook, and its commented examples work."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import ROOT

CONFIG = ROOT / "prometheus" / "alertmanager.yml"


def amtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("amtool") is None:
        pytest.fail("amtool is not installed: run `make setup` (installs Debian's prometheus-alertmanager)")
    return subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60)


def test_amtool_check_config() -> None:
    proc = amtool_check(CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_route_webhook_and_inhibition() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    route = cfg["route"]
    assert route["receiver"] == "streamwatch-webhook"
    assert {"alertname", "metric"} <= set(route["group_by"])
    [hook] = next(r for r in cfg["receivers"] if r["name"] == "streamwatch-webhook")["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:5001/" and hook["send_resolved"] is True
    [inhibit] = cfg["inhibit_rules"]
    assert "StreamwatchSev1" in inhibit["source_matchers"][0]
    assert "StreamwatchSev2" in inhibit["target_matchers"][0]


def test_commented_email_and_slack_examples_are_valid(tmp_path: Path) -> None:
    # Indented comment lines that start lowercase (or with "-") are config; capitalised ones are prose.
    lines = []
    for line in CONFIG.read_text().splitlines():
        m = re.match(r"^(\s+)# (.*)$", line)
        lines.append(m.group(1) + m.group(2) if m and not m.group(2).lstrip()[:1].isupper() else line)
    enabled = tmp_path / "alertmanager.yml"
    enabled.write_text("\n".join(lines) + "\n")
    cfg = yaml.safe_load(enabled.read_text())
    names = {r["name"] for r in cfg["receivers"]}
    assert {"streamwatch-email", "streamwatch-slack"} <= names
    proc = amtool_check(enabled)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(CONFIG.read_text().replace("receiver: streamwatch-webhook", "receiver: nobody", 1))
    assert amtool_check(broken).returncode != 0
