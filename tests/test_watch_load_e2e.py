"""Real CPU load on the watch stack (issue 21): the host saturated for up to a minute is flagged on the
node_exporter preset's cpu_busy, becomes a Sev 2 and a firing StreamwatchSev2 at the receiver; the quiet
part before it raises no incident.

The stack is `make watch`'s (python -m stack --watch), on free ports with one-second scrapes, the preset
read at a 1 s step with rate() over 5 s and a 2 s monitor cycle; the incident detector keeps its default
rules (half-life 60 s, threshold 10), polling every second. The test needs the CPUs to itself
(`quiet_cpu`: `make test` runs it alone, after the parallel tests). It measures how busy the host is
before and after the quiet part and skips, with those figures, when the machine was already busy: a
saturated host cannot be saturated again, and other processes' load is not a quiet minute.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from harness.hostload import HostLoad, cpu_burners
from harness.stack_run import FAST, RunningStack, start_stack, write_watch_stack
from monitor import presets
from monitor.detectors import registry
from streamwatch.net import wait_until
from streamwatch.promapi import PrometheusClient

pytestmark = [pytest.mark.e2e, pytest.mark.quiet_cpu]

# The product's incident rules, only the intervals short (harness.stack_run.FAST).
TIMING = replace(FAST, half_life_s=60.0, threshold=10.0)
MONITOR_CYCLE_S = 2.0  # FAST_WATCH's interval
RATE_WINDOW_S = 5.0  # FAST_WATCH's rate_window
CPU_BUSY = next(q for q in presets.expand("node_exporter") if q.name == "cpu_busy")
WARMUP = registry.container(CPU_BUSY.detector, CPU_BUSY.params).warmup  # points
QUIET_S = 15.0  # scored quiet seconds after the warm-up (itself quiet, and checked with it)
LOAD_S = 60.0
BUSY_BEFORE = 0.5  # the host busier than this before the load: it has no room for a saturation to show
# Flagged within two monitor cycles once the load has filled rate()'s window and been scraped.
FLAG_WITHIN_S = RATE_WINDOW_S + 1.0 + 2 * MONITOR_CYCLE_S


def monitor_figure(stack: RunningStack, family: str, metric: str) -> float:
    """The sum of ``family``'s samples of query ``metric`` on the monitor's /metrics (NaN when none)."""
    text = requests.get(f"{stack.url('monitor-watch')}/metrics", timeout=5).text
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(family + "{") and f'metric="{metric}"' in line
    ]
    return sum(values) if values else float("nan")


def detector_state(stack: RunningStack) -> dict:
    return requests.get(f"{stack.url('incident-detector')}/state", timeout=5).json()


def sev2_alerts(stack: RunningStack) -> list[dict]:
    got = requests.get(f"{stack.url('alert-receiver')}/alerts", timeout=5).json()["alerts"]
    return [
        a
        for a in got
        if a["alertname"] == "StreamwatchSev2"
        and a["status"] == "firing"
        and a["labels"]["metric"] == "cpu_busy"
    ]


def skip_if_busy(when: str, load: HostLoad, report: list[str]) -> None:
    report.append(f"{when}: {load.text()}")
    print(report[-1])
    # The CPU's busy share now, not the load average: that lags a minute behind, so right after the
    # parallel tests it would still skip on a host that has gone quiet.
    if load.busy > BUSY_BEFORE:
        pytest.skip(f"the machine was already busy {when} ({load.text()}): no room to saturate it")


def test_a_minute_of_cpu_saturation_is_a_sev2_alert_and_the_quiet_minutes_before_are_not(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    report: list[str] = []
    skip_if_busy("at the start", HostLoad.measure(), report)
    config, watch = write_watch_stack(tmp_path, TIMING)
    stack = start_stack(config, tmp_path, watch)
    try:
        prom = PrometheusClient(stack.url("prometheus"))
        # The warm-up: cpu_busy's detector has scored its warm-up's worth of points (iqr: its window), so
        # its fences are learnt whatever the warming gauge says, and no series of it is warming.
        warm = wait_until(
            lambda: (
                monitor_figure(stack, "streamwatch_monitor_samples_scored_total", "cpu_busy") >= WARMUP
                and monitor_figure(stack, "streamwatch_monitor_series_warming", "cpu_busy") == 0
            ),
            120,
            1,
        )
        assert warm, stack.output()[-2000:]
        # The quiet part: watched for QUIET_S (cut short by an incident, which the assertion below reports).
        wait_until(lambda: detector_state(stack)["severity"] != 0, QUIET_S, 1)
        busiest = prom.query(
            'max_over_time((avg without (cpu) (sum without (mode) (rate(node_cpu_seconds_total{mode!~"idle|'
            'iowait|steal"}[5s]))))[1m:1s])'
        )
        peak = max((float(s.values[-1]) for s in busiest), default=0.0)
        report.append(f"quiet part: cpu_busy at most {peak:.0%}")
        print(report[-1])
        skip_if_busy("after the quiet part", HostLoad.measure(), report)
        if peak > BUSY_BEFORE:
            pytest.skip(f"other processes loaded the machine during the quiet part ({'; '.join(report)})")
        state = detector_state(stack)
        assert state["current"] is None and state["recent"] == [], (state, report)  # the quiet raised nothing
        flagged_before = monitor_figure(stack, "streamwatch_monitor_anomalies_total", "cpu_busy")

        began = time.time()
        with cpu_burners(os.cpu_count() or 1, LOAD_S):
            flagged = wait_until(
                lambda: (
                    monitor_figure(stack, "streamwatch_monitor_anomalies_total", "cpu_busy") > flagged_before
                ),
                LOAD_S,
                0.25,
            )
            flag_s = time.time() - began
            sev2 = wait_until(
                lambda: (
                    (s := detector_state(stack))["severity"] == 2 and "cpu_busy" in s["current"]["metrics"]
                ),
                LOAD_S,
                0.5,
            )
            sev2_s = time.time() - began
            alerted = wait_until(
                lambda: bool(sev2_alerts(stack)), max(1.0, LOAD_S + 30 - (time.time() - began)), 1
            )
            alert_s = time.time() - began
            during = HostLoad.measure(1.0)
        report.append(
            f"load on: flagged after {flag_s:.1f} s, Sev 2 after {sev2_s:.1f} s, StreamwatchSev2 at the "
            f"receiver after {alert_s:.1f} s; {during.text()}"
        )
        print(report[-1])
        record_property("host_load", "; ".join(report))
        state = detector_state(stack)
        assert flagged and flag_s <= FLAG_WITHIN_S, report
        assert sev2, (state, report)
        assert alerted, (state, report)
        assert state["current"]["peak_severity"] == 2, state  # one query in trouble: never Sev 1
    finally:
        stack.stop()
