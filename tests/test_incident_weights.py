"""Issue 21: trouble on series sampled every 15 s is an incident; quiet series still never make one.

A model of a real exporter's cadence: a query read at a 15 s step by a monitor cycling every 30 s (two
points per cycle, its counter rising once per cycle), the incident detector reading every 5 s. Each
anomaly weighs what its point stands for (``streamwatch_monitor_sample_interval_seconds`` over
``reference_spacing_s``, at most ``max_anomaly_share`` of the threshold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from incident.config import IncidentConfig
from incident.severity import NONE, SEV2, IncidentTracker, Rules, SeriesId
from streamwatch.config import from_mapping
from streamwatch.errors import ConfigError

T0 = 1_700_000_000.0
STEP_S = 15.0  # the query's step: what one point stands for
CYCLE_S = 30.0  # the monitor's interval: its counters rise once per cycle
POLL_S = 5.0  # the incident detector's interval


def cpu(i: int) -> SeriesId:
    return SeriesId("cpu", (("cpu", str(i)), ("mode", "user")))


def run(
    flagged: Sequence[Sequence[int]], rules: Rules | None = None, spacing: float | None = STEP_S
) -> tuple[IncidentTracker, list, list[float]]:
    """``flagged[c][i]``: points of series ``i`` flagged in monitor cycle ``c`` (then two quiet minutes).
    Returns the tracker, its events with the cycle they came in, and the worst score after each poll."""
    tracker = IncidentTracker((), rules or Rules())
    n = len(flagged[0])
    keys = [cpu(i) for i in range(n)]
    tracker.observe(T0, dict.fromkeys(keys, 0.0))
    cycles = [*flagged, *([[0] * n] * 4)]
    events, worst = [], []
    per_cycle = int(CYCLE_S / POLL_S)
    for c, counts in enumerate(cycles):
        for p in range(1, per_cycle + 1):
            ts = T0 + c * CYCLE_S + p * POLL_S
            # The counter rises at the poll after the cycle ends; the other polls read no change.
            reading = {k: float(counts[i]) if p == 1 else 0.0 for i, k in enumerate(keys)}
            got = tracker.observe(ts, reading, None if spacing is None else {"cpu": spacing})
            events += [(e, c) for e in got]
            worst.append(max(tracker.series_values(ts).values()))
    return tracker, events, worst


def test_one_series_far_out_for_two_cycles_is_sev2() -> None:
    """The issue's case: the CPU query's series flagged at every point of a minute of saturation."""
    _, events, _ = run([[2], [2]])
    (opened, cycle), *rest = events
    assert (opened.event, opened.severity, opened.metrics, cycle) == ("opened", SEV2, ("cpu",), 1)
    assert [e.event for e, _ in rest] == ["resolved"]


def test_the_same_points_counted_one_each_stay_far_below_the_threshold() -> None:
    """What the issue saw: counted as a 2 s series would be, a minute of a 15 s series peaks near 4."""
    _, events, worst = run([[2], [2]], spacing=None)
    assert events == [] and 3 < max(worst) < 5


def test_several_series_of_one_query_far_out_are_one_sev2_naming_them() -> None:
    _, events, _ = run([[2] * 8 + [0] * 8, [2] * 8 + [0] * 8])
    opened = events[0][0]
    assert (opened.event, opened.severity, opened.series_in_trouble) == ("opened", SEV2, 8)
    assert {e.event for e, _ in events} == {"opened", "resolved"}  # one metric: never Sev 1


@pytest.mark.parametrize(
    "flagged",
    [[[2], [0]], [[1], [1]], [[1], [0], [1]], [[1], [0], [0], [1]]],
    ids=["two points in one cycle", "one point in each of two cycles", "one, a quiet cycle, one", "apart"],
)
def test_fewer_than_three_points_within_a_minute_open_nothing(flagged: list[list[int]]) -> None:
    tracker, events, worst = run(flagged)
    assert events == [] and tracker.severity == NONE and max(worst) < Rules().threshold


def test_a_point_of_a_sparse_series_counts_at_most_half_the_threshold() -> None:
    """A query read every 10 minutes: one flagged point is not ten minutes of certain trouble."""
    _, events, worst = run([[1]], spacing=600.0)
    assert events == [] and max(worst) == pytest.approx(Rules().threshold / 2, rel=0.05)
    # The same point of a series sampled every 2 s (or faster) adds 1, as it always did.
    assert max(run([[1]], spacing=2.0)[2]) == pytest.approx(1.0, rel=0.05)
    assert max(run([[1]], spacing=0.5)[2]) == pytest.approx(1.0, rel=0.05)


def quiet_fleet(
    n: int, rate_per_point: float, minutes: float, seed: int
) -> tuple[IncidentTracker, list, int]:
    """``n`` series of one 15 s query, each point a false alarm with ``rate_per_point``."""
    rng = np.random.default_rng(seed)
    cycles = int(minutes * 60 / CYCLE_S)
    flagged = rng.binomial(int(CYCLE_S / STEP_S), rate_per_point, size=(cycles, n))
    tracker, events, _ = run(flagged.tolist())
    return tracker, events, int(flagged.sum())


def test_a_thousand_quiet_series_of_a_15s_query_still_open_nothing() -> None:
    """1,000 series at 0.1 % false alarms per point: 4 a minute for the query, none adding to another."""
    tracker, events, total = quiet_fleet(1000, 0.001, 30, seed=1)
    assert total > 100  # they did raise their false alarms (about 120)
    assert events == [] and tracker.severity == NONE


def test_a_host_preset_with_a_noisy_detector_opens_nothing_in_an_hour() -> None:
    """20 series (a node exporter preset) at 1 % false alarms per point, for an hour."""
    _, events, total = quiet_fleet(20, 0.01, 60, seed=2)
    assert total > 30 and events == []


def test_max_anomaly_share_is_checked_at_load() -> None:
    for bad in (0.0, 1.0, 2.0):
        with pytest.raises(ConfigError, match="max_anomaly_share must be"):
            from_mapping(IncidentConfig, {"max_anomaly_share": bad}, "test")
    with pytest.raises(ConfigError, match="reference_spacing_s must be"):
        from_mapping(IncidentConfig, {"reference_spacing_s": 0.0}, "test")
    rules = from_mapping(IncidentConfig, {"threshold": 20, "max_anomaly_share": 0.25}, "t").rules()
    assert rules.weight(STEP_S) == 5.0 and rules.weight(8.0) == 4.0
