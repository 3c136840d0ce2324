"""The alerting and recording rules: `promtool check rules` and the unit tests of `promtool test rules`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import ROOT

RULES_DIR = ROOT / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))  # what prometheus.yml loads: prometheus/rules/*.yml
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.yml"))


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed: run `make setup` (installs Debian's prometheus)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_rule_files_exist() -> None:
    assert RULE_FILES and TEST_FILES


def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", *map(str, RULE_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_test_rules() -> None:
    proc = promtool("test", "rules", *map(str, TEST_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    alerts = {
        r["alert"]
        for f in RULE_FILES
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert {
        "StreamwatchSev1",
        "StreamwatchSev2",
        "StreamwatchMonitorDown",
        "StreamwatchInputSilent",
    } <= alerts
    firing: set[str] = set()
    quiet: set[str] = set()
    for f in TEST_FILES:
        for case in yaml.safe_load(f.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts <= firing, f"alerts without a firing test: {alerts - firing}"
    assert alerts <= quiet, f"alerts without a not-firing test: {alerts - quiet}"


def test_every_alert_says_what_and_where() -> None:
    for f in RULE_FILES:
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                if "alert" not in r:
                    continue
                assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
                assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
                # Somewhere that runs wherever the rules are loaded: the detector's /state, a /metrics.
                description = r["annotations"]["description"]
                assert "/state" in description or "/metrics" in description, r["alert"]
                # The pages only when they run: named by Prometheus' external labels, never assumed.
                if "Grafana" in description or "live page" in description:
                    assert "$externalLabels." in description, r["alert"]


def test_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    # The unit tests have teeth: a Sev 1 rule that fires on Sev 2 makes them fail.
    rules = (RULES_DIR / "streamwatch.rules.yml").read_text()
    broken = rules.replace("(streamwatch_incident_severity == 1)", "(streamwatch_incident_severity >= 1)")
    assert broken != rules
    (tmp_path / "streamwatch.rules.yml").write_text(broken)
    (tmp_path / "tests").mkdir()
    for t in TEST_FILES:
        shutil.copy(t, tmp_path / "tests" / t.name)
    proc = promtool("test", "rules", *[f"tests/{t.name}" for t in TEST_FILES], cwd=tmp_path)
    assert proc.returncode != 0 and "StreamwatchSev1" in proc.stdout + proc.stderr


def test_unit_tests_catch_an_input_silent_rule_that_ignores_a_blind_monitor(tmp_path: Path) -> None:
    # Without its "the monitor reads Prometheus" condition the rule would also fire for a monitor that
    # cannot see anything, which is StreamwatchMonitorDown's case: the quiet unit test must catch it.
    rules = (RULES_DIR / "streamwatch.rules.yml").read_text()
    guard = "\n            and on (metric) (max by (metric) (streamwatch_monitor_prometheus_up) == 1)"
    broken = rules.replace(guard, "")
    assert broken != rules
    (tmp_path / "streamwatch.rules.yml").write_text(broken)
    (tmp_path / "tests").mkdir()
    for t in TEST_FILES:
        shutil.copy(t, tmp_path / "tests" / t.name)
    proc = promtool("test", "rules", *[f"tests/{t.name}" for t in TEST_FILES], cwd=tmp_path)
    assert proc.returncode != 0 and "StreamwatchInputSilent" in proc.stdout + proc.stderr


def promtool_on(tmp_path: Path, rules: str) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` with the shipped unit tests run against ``rules`` instead of ours."""
    (tmp_path / "streamwatch.rules.yml").write_text(rules)
    (tmp_path / "tests").mkdir()
    for t in TEST_FILES:
        shutil.copy(t, tmp_path / "tests" / t.name)
    return promtool("test", "rules", *[f"tests/{t.name}" for t in TEST_FILES], cwd=tmp_path)


@pytest.mark.parametrize(
    ("cut", "alert"),
    [
        # Issue 22, item 4: the alerts as they were, resolving as soon as the detector's series go stale.
        (
            """
          or
          (
            last_over_time(streamwatch_incident_severity[1h]) == 1
              unless on (job) streamwatch_incident_severity
          )""",
            "StreamwatchSev1",
        ),
        # Issue 22, item 5: Sev 2 firing for the one detector cycle a Sev 1 passes on its way down.
        (
            "\n              unless on (job, instance) (max_over_time("
            "(streamwatch_incident_severity == bool 1)[1m:5s]) == 1)",
            "StreamwatchSev2",
        ),
    ],
    ids=["sev1-resolves-when-the-detector-is-away", "sev2-fires-on-the-way-down"],
)
def test_unit_tests_catch_the_issue_22_faults(tmp_path: Path, cut: str, alert: str) -> None:
    rules = (RULES_DIR / "streamwatch.rules.yml").read_text()
    broken = rules.replace(cut, "")
    assert broken != rules
    proc = promtool_on(tmp_path, broken)
    assert proc.returncode != 0 and f"alertname: {alert}" in proc.stdout + proc.stderr
