"""The pure core: decay, counter increases and the incident state machine, driven by explicit timestamps.

The four cases of the original design run through a model of the real pipeline at its default
intervals: the simulator emits a sample every 2 s, a monitor scores them in cycles of 30 s and adds that
cycle's anomalies to its counter, Prometheus scrapes the counter, and the detector reads it every 5 s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from incident.blind import BlindSeries
from incident.counts import CounterDeltas
from incident.decay import DecayingScore, decay_factor, spread_weight, steady_state
from incident.severity import NONE, SEV1, SEV2, IncidentTracker, Rules, SeriesId, SeriesLimits, severity_for
from streamwatch.clock import FakeClock

METRICS = ("energy_consumption", "energy_price")
T0 = 1_700_000_000.0


# --- decay -------------------------------------------------------------------------------------------


def test_score_halves_every_half_life() -> None:
    s = DecayingScore(60.0)
    s.add(8.0, T0)
    assert s.value_at(T0 + 60) == pytest.approx(4.0)
    assert s.value_at(T0 + 180) == pytest.approx(1.0)
    assert s.value == 8.0  # value_at does not change the score


def test_additions_accumulate_after_decay() -> None:
    s = DecayingScore(10.0)
    s.add(4.0, T0)
    assert s.add(1.0, T0 + 10) == pytest.approx(3.0)
    assert s.value_at(T0 + 20) == pytest.approx(1.5)


def test_out_of_order_timestamp_does_not_undecay() -> None:
    s = DecayingScore(10.0)
    s.add(4.0, T0 + 10)
    s.add(1.0, T0)  # an older timestamp neither grows the old value nor moves the reference back
    assert s.updated_at == T0 + 10
    assert s.value_at(T0 + 20) == pytest.approx(2.5)


def test_decay_rejects_bad_half_life_and_negative_amounts() -> None:
    with pytest.raises(ValueError, match="half_life_s must be positive"):
        DecayingScore(-1.0)
    with pytest.raises(ValueError, match="half_life_s must be positive"):
        decay_factor(1.0, 0.0)
    with pytest.raises(ValueError):
        DecayingScore(1.0).add(-1.0, T0)


def test_steady_state_matches_a_long_constant_stream() -> None:
    s = DecayingScore(60.0)
    t = T0
    for _ in range(2000):  # one anomaly every 2 s for over an hour
        t += 2.0
        s.add(1.0, t)
    # Sampled right after an addition the score sits half a step above the continuous mean.
    assert s.value == pytest.approx(steady_state(0.5, 60.0) + 0.5, rel=0.02)
    assert steady_state(0.5, 60.0) == pytest.approx(0.5 * 60 / math.log(2))


@pytest.mark.parametrize("gap", [0.5, 5.0, 60.0, 600.0, 36_000.0])
def test_spread_weight_is_the_mean_decay_over_the_gap(gap: float) -> None:
    # Midpoint rule over 10,000 slices: independent of the closed form under test.
    n = 10_000
    mean = sum(decay_factor(gap * (i + 0.5) / n, 60.0) for i in range(n)) / n
    assert spread_weight(gap, 60.0) == pytest.approx(mean, rel=1e-4)


def test_spread_weight_edges() -> None:
    assert spread_weight(0.0, 60.0) == 1.0 and spread_weight(-3.0, 60.0) == 1.0
    assert spread_weight(1e-9, 60.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        spread_weight(5.0, 0.0)


def test_a_trickle_seen_in_one_lump_after_an_outage_opens_nothing() -> None:
    """0.1 anomalies/s settles at 8.7 (under 10), however the detector happens to see it."""
    rules = Rules(half_life_s=60.0, threshold=10.0, clear_threshold=5.0)
    polled, blind = IncidentTracker(("m",), rules), IncidentTracker(("m",), rules)
    polled.observe(T0, {}), blind.observe(T0, {})
    events = []
    for i in range(1, 121):  # every 5 s for 10 minutes, half an anomaly each time
        events += polled.observe(T0 + 5 * i, {"m": 0.5})
    # The same 60 anomalies, seen only when Prometheus comes back 10 minutes later.
    events += blind.observe(T0 + 600, {"m": 60.0})
    assert events == []
    # The lump scores what polling would have: the continuous steady state, 1 - 2^-10 of the way there.
    expected = steady_state(0.1, 60.0) * (1 - 2**-10)
    assert blind.score_values(T0 + 600)["m"] == pytest.approx(expected)
    assert polled.score_values(T0 + 600)["m"] == pytest.approx(expected)


def test_sustained_trouble_during_an_outage_still_opens_an_incident_when_seen() -> None:
    rules = Rules(half_life_s=60.0, threshold=10.0, clear_threshold=5.0)
    tracker = IncidentTracker(("m",), rules)
    tracker.observe(T0, {})
    # One anomaly every 2 s through a 10-minute outage: steady state 43, far past the threshold.
    events = tracker.observe(T0 + 600, {"m": 300.0})
    assert [e.event for e in events] == ["opened"] and tracker.severity == SEV2


# --- counter increases -------------------------------------------------------------------------------


def test_first_reading_is_a_baseline_then_increases_count() -> None:
    d = CounterDeltas(METRICS)
    assert d.update({"energy_price": 40.0, "energy_consumption": 3.0}) == {m: 0.0 for m in METRICS}
    assert d.update({"energy_price": 45.0, "energy_consumption": 3.0}) == {
        "energy_consumption": 0.0,
        "energy_price": 5.0,
    }


def test_reset_counts_new_value_and_missing_is_zero() -> None:
    d = CounterDeltas(METRICS)
    d.update({"energy_price": 40.0, "energy_consumption": 3.0})
    assert d.update({"energy_price": 2.0})["energy_price"] == 2.0  # monitor restarted: counter reset
    assert d.update({})["energy_consumption"] == 0.0  # missing: nothing new
    assert d.update({"energy_consumption": 7.0})["energy_consumption"] == 4.0  # resumes from its last value


def test_non_finite_counts_are_ignored_and_named() -> None:
    d = CounterDeltas(METRICS)
    d.update({"energy_price": 10.0, "energy_consumption": 1.0})
    for i, bad in enumerate((math.inf, -math.inf, math.nan), 2):
        out = d.update({"energy_price": bad, "energy_consumption": float(i)})
        assert out == {"energy_consumption": 1.0, "energy_price": 0.0}  # the others still count
        assert d.nonfinite == ["energy_price"]
    assert d.update({"energy_price": 13.0})["energy_price"] == 3.0  # from the last finite value
    assert d.nonfinite == []
    tr = IncidentTracker(METRICS)
    assert tr.observe(T0, {"energy_price": math.inf, "energy_consumption": math.nan}) == []
    assert tr.score_values(T0) == {m: 0.0 for m in METRICS}
    with pytest.raises(ValueError, match="finite"):
        DecayingScore(10.0).add(math.inf, T0)


def test_metric_appearing_later_counts_from_zero_and_unwatched_ignored() -> None:
    d = CounterDeltas(METRICS)
    d.update({"energy_price": 1.0})
    out = d.update({"energy_price": 1.0, "energy_consumption": 6.0, "other": 99.0})
    assert out == {"energy_consumption": 6.0, "energy_price": 0.0}


def test_gauge_vs_counter_no_double_counting_whatever_the_intervals() -> None:
    # A monitor cycle of 30 s read every 5 s: the counter gives each anomaly once (the gauge would give
    # the same cycle's count six times).
    d = CounterDeltas(["m"])
    d.update({"m": 0.0})
    seen = sum(d.update({"m": 15.0 * ((5 * k) // 30)})["m"] for k in range(1, 37))
    assert seen == 15.0 * 6


# --- severity state machine --------------------------------------------------------------------------


def test_severity_for() -> None:
    assert severity_for(0, 2) == NONE
    assert severity_for(1, 2) == SEV2
    assert severity_for(2, 2) == SEV1
    assert severity_for(3, 2) == SEV1
    assert severity_for(1, 1) == SEV1


def test_rules_validate() -> None:
    with pytest.raises(ValueError, match="half_life_s"):
        Rules(half_life_s=-1)
    with pytest.raises(ValueError, match="clear_threshold"):
        Rules(threshold=10, clear_threshold=11)
    with pytest.raises(ValueError, match="clear_threshold must be above 0"):
        Rules(threshold=10, clear_threshold=0)
    with pytest.raises(ValueError, match="sev1_min_metrics"):
        Rules(sev1_min_metrics=0)


def test_hysteresis_no_flapping_between_thresholds() -> None:
    tr = IncidentTracker(METRICS, Rules(half_life_s=10, threshold=10, clear_threshold=5))
    events = tr.observe(T0, {"energy_price": 10})
    assert [e.event for e in events] == ["opened"]
    # Hovering between the clear level and the threshold keeps the incident open, without new events.
    t = T0
    for _ in range(30):
        t += 5.0
        assert tr.observe(t, {"energy_price": 2.5}) == []
        assert tr.severity == SEV2
    assert 5 <= tr.score_values(t)["energy_price"] < 10
    t += 30  # no more anomalies: three half-lives later the score is below 5
    [ev] = tr.observe(t, {})
    assert ev.event == "resolved" and ev.previous_severity == SEV2 and tr.severity == NONE


def test_lifecycle_events_once_per_change() -> None:
    tr = IncidentTracker(METRICS, Rules(half_life_s=10, threshold=10, clear_threshold=5))
    [opened] = tr.observe(T0, {"energy_price": 12})
    assert (opened.event, opened.severity, opened.metrics) == ("opened", SEV2, ("energy_price",))
    assert tr.observe(T0 + 1, {"energy_price": 1}) == []  # ongoing, unchanged: silent
    [esc] = tr.observe(T0 + 2, {"energy_consumption": 11})
    assert (esc.event, esc.severity, esc.previous_severity) == ("escalated", SEV1, SEV2)
    assert esc.metrics == METRICS and esc.started_at == T0 and esc.duration_s == 2
    # Keep price hot while consumption cools: de-escalation to Sev 2 with one metric.
    t = T0 + 2
    events = []
    while not events:
        t += 1
        events = tr.observe(t, {"energy_price": 1.0})
    [de] = events
    assert (de.event, de.severity, de.metrics, de.peak_severity) == (
        "de-escalated",
        SEV2,
        ("energy_price",),
        1,
    )
    t += 60
    [res] = tr.observe(t, {})
    assert res.event == "resolved" and res.severity == NONE and res.peak_severity == SEV1
    assert res.duration_s == pytest.approx(t - T0) and res.incident_id == opened.incident_id
    assert tr.current is None and tr.recent[0].ended_at == t
    snap = tr.snapshot(t)
    assert snap["severity"] == 0 and snap["current"] is None and snap["recent"][0]["peak_severity"] == 1
    # The last event names only price; the incident as a whole had both in trouble.
    assert snap["recent"][0]["metrics"] == ["energy_price"] and snap["recent"][0]["all_metrics"] == list(
        METRICS
    )


def test_hold_freezes_scores_over_a_blind_spell_and_still_spreads_its_lump() -> None:
    s = DecayingScore(10.0)
    s.add(8.0, T0)
    s.hold(T0 + 10, T0 + 100)  # decays until the spell starts, not during it
    assert s.value_at(T0 + 100) == pytest.approx(4.0) and s.value_at(T0 + 110) == pytest.approx(2.0)
    s.hold(T0 + 120, T0 + 110)  # a spell that ends before it starts changes nothing
    assert s.value_at(T0 + 110) == pytest.approx(2.0)

    rules = Rules(half_life_s=10, threshold=10, clear_threshold=5)
    tr = IncidentTracker(METRICS, rules)
    [opened] = tr.observe(T0, {"energy_price": 12})
    tr.hold(T0 + 300)  # five minutes blind: without hold, 30 half-lives would resolve it
    assert tr.observe(T0 + 300, {"energy_consumption": 40}) == []
    assert tr.score_values(T0 + 300)["energy_price"] == pytest.approx(12)
    assert tr.score_values(T0 + 300)["energy_consumption"] == pytest.approx(40 * spread_weight(300, 10))
    [resolved] = tr.observe(T0 + 320, {})  # time after the spell decays as usual
    assert resolved.event == "resolved" and resolved.incident_id == opened.incident_id
    fresh = IncidentTracker(METRICS, rules)
    fresh.hold(T0)  # nothing observed yet: nothing to hold
    assert fresh.score_values(T0) == {m: 0.0 for m in METRICS}


def test_saved_and_restored_at_every_step_behaves_as_never_stopped() -> None:
    # What a restart does each cycle: save to JSON, build afresh from it, go on. The events, scores and
    # counter increases must equal those of a tracker that never stopped.
    rules = Rules(half_life_s=10, threshold=10, clear_threshold=5)
    readings = [
        {"energy_price": 3.0},
        {"energy_price": 15.0},
        {"energy_price": 16.0, "energy_consumption": 20.0},
    ]
    readings += [{"energy_price": 16.0, "energy_consumption": 31.0}] + [{}] * 12
    steady, steady_deltas = IncidentTracker(METRICS, rules, 5), CounterDeltas(METRICS)
    moved, moved_deltas = IncidentTracker(METRICS, rules, 5), CounterDeltas(METRICS)
    got, want = [], []
    for i, reading in enumerate(readings):
        ts = T0 + 5 * i
        want += [e.to_dict() for e in steady.observe(ts, steady_deltas.update(reading))]
        got += [e.to_dict() for e in moved.observe(ts, moved_deltas.update(reading))]
        saved = json.loads(json.dumps({"t": moved.to_dict(), "d": moved_deltas.to_dict()}, allow_nan=False))
        moved = IncidentTracker.from_dict(saved["t"], METRICS, rules, 5)
        moved_deltas = CounterDeltas.from_dict(saved["d"], METRICS)
        assert moved.score_values(ts + 1) == pytest.approx(steady.score_values(ts + 1))
        assert moved.snapshot(ts) == steady.snapshot(ts)
    assert [e["event"] for e in want] == ["opened", "escalated", "de-escalated", "resolved"]
    assert got == want


def test_restore_keeps_only_the_metrics_watched_now() -> None:
    rules = Rules(half_life_s=10, threshold=10, clear_threshold=5)
    tr = IncidentTracker(("old", "energy_price"), rules)
    tr.observe(T0, {"old": 30.0})
    back = IncidentTracker.from_dict(tr.to_dict(), METRICS, rules)
    assert set(back.scores) == set(METRICS) and back.in_trouble == set()
    assert back.current is not None and back.current.metrics == ("old",)
    [resolved] = back.observe(T0 + 1, {})  # the old metric's incident ends once, when next observed
    assert resolved.event == "resolved" and resolved.incident_id == tr.current.incident_id


def test_event_dict_and_one_line() -> None:
    tr = IncidentTracker(METRICS, Rules(half_life_s=10, threshold=10, clear_threshold=5))
    [ev] = tr.observe(T0, {"energy_price": 12, "energy_consumption": 12})
    d = ev.to_dict()
    assert d["event"] == "opened" and d["severity"] == 1 and d["metrics"] == list(METRICS)
    assert d["ts"].endswith("Z") and d["time"] == T0 and d["scores"]["energy_price"] == 12
    assert "Sev 1 incident opened" in ev.one_line() and "energy_consumption,energy_price" in ev.one_line()


# --- the four cases through a model of the pipeline at default intervals ------------------------------


@dataclass
class Spike:
    metric: str
    start: float  # seconds after T0
    duration_s: float


def run_pipeline(
    spikes: Sequence[Spike],
    total_s: float,
    rules: Rules | None = None,
    sample_s: float = 2.0,
    monitor_s: float = 30.0,
    monitor_phase_s: float = 7.0,
    poll_s: float = 5.0,
    scrape_lag_s: float = 2.0,
) -> tuple[IncidentTracker, list]:
    """Feed the tracker what the detector would read from Prometheus with a fake clock; return events."""
    clock = FakeClock(T0)
    tracker = IncidentTracker(METRICS, rules or Rules())
    deltas = CounterDeltas(METRICS)
    # Sample times that are anomalous: every simulator sample inside a spike (one per 2 s).
    anomalies = {m: [] for m in METRICS}
    for s in spikes:
        k = math.ceil(s.start / sample_s)
        while k * sample_s < s.start + s.duration_s:
            anomalies[s.metric].append(T0 + k * sample_s)
            k += 1

    def counter(metric: str, at: float) -> float:
        # The monitor counts a sample at its first cycle after the sample; Prometheus shows it a scrape later.
        seen_until = at - scrape_lag_s
        last_cycle = (
            T0 + monitor_phase_s + math.floor((seen_until - T0 - monitor_phase_s) / monitor_s) * monitor_s
        )
        return float(sum(1 for t in anomalies[metric] if t <= last_cycle))

    events = []
    while clock.time() < T0 + total_s:
        now = clock.time()
        events += tracker.observe(now, deltas.update({m: counter(m, now) for m in METRICS}))
        clock.wait(poll_s)
    return tracker, events


PHASES = [0.0, 7.0, 15.0, 29.0]


@pytest.mark.parametrize("phase", PHASES)
def test_transient_spike_in_one_metric_no_incident(phase: float) -> None:
    tracker, events = run_pipeline([Spike("energy_price", 60, 10)], 300, monitor_phase_s=phase)
    assert events == [] and tracker.severity == NONE
    assert max(tracker.score_values(T0 + 300).values()) < Rules().clear_threshold


@pytest.mark.parametrize("phase", PHASES)
def test_transient_spike_in_both_metrics_no_incident(phase: float) -> None:
    spikes = [Spike("energy_price", 60, 10), Spike("energy_consumption", 62, 10)]
    tracker, events = run_pipeline(spikes, 300, monitor_phase_s=phase)
    assert events == [] and tracker.severity == NONE


@pytest.mark.parametrize("phase", PHASES)
def test_prolonged_spike_in_one_metric_sev2_then_resolves(phase: float) -> None:
    tracker, events = run_pipeline([Spike("energy_consumption", 60, 90)], 600, monitor_phase_s=phase)
    kinds = [(e.event, e.severity) for e in events]
    assert kinds == [("opened", SEV2), ("resolved", NONE)]
    opened, resolved = events
    assert opened.metrics == ("energy_consumption",)
    # Opened within two monitor cycles (30 s each) plus a scrape and a poll of the spike's start.
    assert opened.at - (T0 + 60) <= 2 * 30 + 2 + 5
    assert resolved.at - (T0 + 150) <= 240  # back to normal within 4 min of the last anomaly
    assert tracker.severity == NONE and tracker.current is None


@pytest.mark.parametrize("phase", PHASES)
def test_prolonged_spike_in_both_metrics_sev1_then_resolves(phase: float) -> None:
    spikes = [Spike("energy_price", 60, 90), Spike("energy_consumption", 60, 90)]
    tracker, events = run_pipeline(spikes, 600, monitor_phase_s=phase)
    assert [(e.event, e.severity) for e in events] == [("opened", SEV1), ("resolved", NONE)]
    assert events[0].metrics == METRICS
    assert events[1].peak_severity == SEV1 and tracker.severity == NONE


def test_second_metric_joining_escalates_then_recovery_de_escalates() -> None:
    spikes = [Spike("energy_price", 60, 240), Spike("energy_consumption", 120, 60)]
    _, events = run_pipeline(spikes, 900)
    assert [(e.event, e.severity) for e in events] == [
        ("opened", SEV2),
        ("escalated", SEV1),
        ("de-escalated", SEV2),
        ("resolved", NONE),
    ]
    assert len({e.incident_id for e in events}) == 1


def test_long_spike_stays_one_incident_and_recovers() -> None:
    # Ten minutes of trouble: the score settles near rate * half-life / ln 2 and never drops to the clear
    # level between monitor cycles, so there is one incident, not a flapping series of them.
    _, events = run_pipeline([Spike("energy_price", 30, 600)], 1200)
    assert [e.event for e in events] == ["opened", "resolved"]
    assert events[1].at - (T0 + 630) <= 240


def test_background_noise_stays_quiet() -> None:
    # A monitor flagging 1% of clean samples (the monitor's target), scattered: no incident in an hour.
    spikes = [Spike(m, float(t), 2) for m in METRICS for t in range(37, 3600, 200)]
    _, events = run_pipeline(spikes, 3600)
    assert events == []


# --- many series: a score per series, never summed ---------------------------------------------------


def sid(metric: str, **labels: str) -> SeriesId:
    return SeriesId.of({"metric": metric, "job": "monitor", "instance": "127.0.0.1:8200", **labels})


def test_series_id_keeps_every_label_and_reads_without_the_target_labels() -> None:
    s = SeriesId.of({"__name__": "streamwatch_monitor_anomalies_total", "metric": "cpu", "cpu": "1",
                     "mode": "user", "job": "monitor", "instance": "h:1"})  # fmt: skip
    assert s.metric == "cpu" and dict(s.labels) == {
        "cpu": "1",
        "mode": "user",
        "job": "monitor",
        "instance": "h:1",
    }
    assert str(s) == 'cpu{cpu="1",mode="user"}' and str(SeriesId("energy_price")) == "energy_price"
    # Two monitors of one series are two keys: each keeps its own score.
    assert s != SeriesId.of(
        {"metric": "cpu", "cpu": "1", "mode": "user", "job": "monitor", "instance": "h:2"}
    )


def test_counter_deltas_find_series_from_the_reading_and_forget() -> None:
    a, b = sid("cpu", cpu="0"), sid("cpu", cpu="1")
    d: CounterDeltas[SeriesId] = CounterDeltas()
    assert d.update({a: 5.0}) == {a: 0.0}  # baseline
    assert d.update({a: 7.0, b: 2.0}) == {a: 2.0, b: 2.0}  # b appeared later: counted from 0
    d.forget([a])
    assert len(d) == 1 and d.update({a: 9.0, b: 2.0}) == {a: 9.0, b: 0.0}


def run_fleet(
    n: int, rate_per_sample: float, minutes: float, seed: int, summed: bool, rules: Rules | None = None
) -> tuple[IncidentTracker, list, float]:
    """``n`` series of one metric, each sample (every 2 s) a false alarm with ``rate_per_sample``,
    read every 5 s. ``summed`` feeds their total under one key instead, as a per-metric sum would."""
    rng = np.random.default_rng(seed)
    tracker = IncidentTracker((), rules or Rules())
    keys = [sid("cpu", cpu=str(i)) for i in range(n)]
    events: list = []
    total = 0.0
    for step in range(int(minutes * 60 / 5) + 1):
        counts = rng.poisson(2.5 * rate_per_sample, size=n) if step else np.zeros(n)  # 2.5 samples a poll
        total += float(counts.sum())
        if summed:
            reading = {SeriesId("cpu"): float(counts.sum())}
        else:
            reading = dict(zip(keys, counts.astype(float), strict=True))
        events += tracker.observe(T0 + 5 * step, reading)
    return tracker, events, total


def test_a_thousand_quiet_series_with_rare_false_alarms_open_nothing() -> None:
    """1,000 series at a 0.1 % false-alarm rate: 0.5 anomalies/s for the metric, one per 33 min per series."""
    tracker, events, total = run_fleet(1000, 0.001, 30, seed=1, summed=False)
    assert total > 700  # the fleet did raise its false alarms (0.5/s for 30 min, about 900)
    assert events == [] and tracker.severity == NONE
    assert max(tracker.series_values(T0 + 1800).values()) < Rules().clear_threshold
    assert len(tracker.series) == 1000
    # The same anomalies summed into one number per metric: a steady 0.5/s settles at 43, far past 10.
    summed, summed_events, _ = run_fleet(1000, 0.001, 30, seed=1, summed=True)
    assert [e.event for e in summed_events][:1] == ["opened"] and summed.severity == SEV2


def test_a_spike_on_one_series_of_fifty_opens_sev2_naming_that_series() -> None:
    keys = [sid("cpu", cpu=str(i)) for i in range(50)]
    tr = IncidentTracker(
        (), Rules(half_life_s=10, threshold=10, clear_threshold=5), limits=SeriesLimits(top_series=3)
    )
    tr.observe(T0, dict.fromkeys(keys, 0.0))
    [opened] = tr.observe(T0 + 5, {**dict.fromkeys(keys, 1.0), keys[17]: 14.0})
    assert (opened.event, opened.severity, opened.metrics) == ("opened", SEV2, ("cpu",))
    assert [s for s, _ in opened.series] == [keys[17]] and opened.series_in_trouble == 1
    assert 'cpu{cpu="17"}=' in opened.one_line() and "more" not in opened.one_line()
    doc = opened.to_dict()
    assert doc["series"][0]["labels"]["cpu"] == "17" and doc["series"][0]["name"] == 'cpu{cpu="17"}'
    assert doc["scores"] == {"cpu": pytest.approx(14 * spread_weight(5, 10), abs=1e-3)}


def test_many_series_in_trouble_are_named_bounded_worst_first() -> None:
    keys = [sid("cpu", cpu=str(i)) for i in range(50)]
    tr = IncidentTracker(
        (), Rules(half_life_s=10, threshold=10, clear_threshold=5), limits=SeriesLimits(top_series=3)
    )
    tr.observe(T0, dict.fromkeys(keys, 0.0))
    [opened] = tr.observe(T0, {k: 20.0 + i for i, k in enumerate(keys[:8])})
    assert [s for s, _ in opened.series] == [keys[7], keys[6], keys[5]]
    assert opened.series_in_trouble == 8 and opened.one_line().count("cpu{") == 3
    assert "(+5 more)" in opened.one_line() and opened.severity == SEV2  # one metric, however many series


def test_series_of_two_metrics_in_trouble_is_sev1_and_resolve_names_the_last_series() -> None:
    cpu, disk = sid("cpu", cpu="3"), sid("disk", device="sda")
    tr = IncidentTracker((), Rules(half_life_s=10, threshold=10, clear_threshold=5))
    tr.observe(T0, {cpu: 0.0, disk: 0.0, sid("cpu", cpu="4"): 0.0})
    [opened] = tr.observe(T0, {cpu: 12.0, disk: 12.0})
    assert (opened.event, opened.severity, opened.metrics) == ("opened", SEV1, ("cpu", "disk"))
    [resolved] = tr.observe(T0 + 60, {})
    assert resolved.event == "resolved" and {s for s, _ in resolved.series} == {cpu, disk}
    assert tr.snapshot(T0 + 60)["series_per_metric"] == {"cpu": 2, "disk": 1}


def test_a_fixed_metrics_list_filters_what_is_watched() -> None:
    tr = IncidentTracker(("cpu",), Rules(half_life_s=10, threshold=10, clear_threshold=5))
    assert tr.observe(T0, {sid("disk", device="sda"): 50.0}) == []
    assert tr.score_values(T0) == {"cpu": 0.0} and not tr.series and tr.watches("cpu")
    assert not tr.watches("disk")


def test_series_gone_for_long_are_dropped_and_memory_is_bounded() -> None:
    limits = SeriesLimits(forget_after_s=60, max_series=100)
    tr = IncidentTracker((), Rules(half_life_s=10, threshold=10, clear_threshold=5), limits=limits)
    old = [sid("cpu", cpu=str(i)) for i in range(80)]
    tr.observe(T0, dict.fromkeys(old, 0.0))
    # 40 more arrive while the old ones are still remembered: 20 fit, 20 are refused.
    new = [sid("cpu", cpu=f"n{i}") for i in range(40)]
    tr.observe(T0 + 30, dict.fromkeys(new, 1.0))
    assert len(tr.series) == 100 and len(tr.refused) == 20
    # The old ones are not seen again: a minute later they are gone, room for the refused ones.
    tr.observe(T0 + 91, dict.fromkeys(new, 0.0))
    assert set(tr.dropped) == set(old) and len(tr.series) == 40 and tr.refused == []
    assert tr.score_values(T0 + 91).keys() == {"cpu"} and tr.per_metric == {"cpu": 40}
    tr.observe(T0 + 200, {})
    assert tr.series == {} and tr.score_values(T0 + 200) == {}  # a discovered metric goes with its series


def test_many_series_state_survives_a_restart_as_never_stopped() -> None:
    rules = Rules(half_life_s=10, threshold=10, clear_threshold=5)
    keys = [sid("cpu", cpu=str(i)) for i in range(20)] + [sid("disk", device="sda")]
    steady, steady_d = IncidentTracker((), rules), CounterDeltas[SeriesId]()
    moved, moved_d = IncidentTracker((), rules), CounterDeltas[SeriesId]()
    totals = dict.fromkeys(keys, 0.0)
    got, want = [], []
    for i in range(12):
        if 1 <= i <= 3:
            totals[keys[4]] += 8.0  # one cpu series spikes, then the disk with it
            totals[keys[-1]] += 10.0 if i > 1 else 0.0
        ts = T0 + 5 * i
        want += [e.to_dict() for e in steady.observe(ts, steady_d.update(totals))]
        got += [e.to_dict() for e in moved.observe(ts, moved_d.update(totals))]
        saved = json.loads(json.dumps({"t": moved.to_dict(), "d": moved_d.to_dict(SeriesId.to_key)}))
        moved = IncidentTracker.from_dict(saved["t"], (), rules)
        moved_d = CounterDeltas.from_dict(saved["d"], decode=SeriesId.from_key)
        assert moved.snapshot(ts) == steady.snapshot(ts)
    assert [e["event"] for e in want][:2] == ["opened", "escalated"] and got == want
    assert want[0]["series"][0]["labels"]["cpu"] == "4"


def test_a_state_saved_per_metric_resumes_as_one_series_metrics() -> None:
    saved = {
        "last_ts": T0,
        "scores": {
            "energy_price": {"value": 12.0, "updated_at": T0},
            "gone": {"value": 3.0, "updated_at": T0},
        },
        "in_trouble": ["energy_price"],
        "current": {
            "incident_id": "x",
            "started_at": T0 - 5,
            "ended_at": None,
            "severity": 2,
            "peak_severity": 2,
            "metrics": ["energy_price"],
            "duration_s": 5.0,
        },
        "recent": [],
    }
    tr = IncidentTracker.from_dict(saved, METRICS, Rules(half_life_s=10, threshold=10, clear_threshold=5))
    assert tr.in_trouble == {"energy_price"} and tr.score_values(T0) == {
        "energy_consumption": 0,
        "energy_price": 12,
    }
    assert tr.current is not None and tr.current.all_metrics == ("energy_price",)
    [resolved] = tr.observe(T0 + 60, {})
    assert resolved.event == "resolved" and resolved.incident_id == "x"


def test_hold_freezes_every_series_and_a_blind_spell_forgets_none() -> None:
    limits = SeriesLimits(forget_after_s=60)
    tr = IncidentTracker((), Rules(half_life_s=10, threshold=10, clear_threshold=5), limits=limits)
    keys = [sid("cpu", cpu=str(i)) for i in range(3)]
    tr.observe(T0, dict.fromkeys(keys, 0.0))
    tr.observe(T0 + 5, {keys[0]: 14.0, keys[1]: 0.0, keys[2]: 0.0})
    before = tr.series_values(T0 + 5)
    tr.hold(T0 + 305)  # five minutes blind, much longer than forget_after_s
    assert tr.series_values(T0 + 305) == pytest.approx(before)
    # Back: only cpu 0 and 1 report in the first reading; cpu 2 is not forgotten for the blind spell.
    tr.observe(T0 + 305, {keys[0]: 0.0, keys[1]: 0.0})
    assert set(tr.series) == set(keys) and tr.severity == SEV2


def test_a_non_finite_count_on_one_series_leaves_the_others_counted() -> None:
    a, b = sid("cpu", cpu="0"), sid("cpu", cpu="1")
    d: CounterDeltas[SeriesId] = CounterDeltas()
    d.update({a: 1.0, b: 1.0})
    assert d.update({a: math.inf, b: 4.0}) == {a: 0.0, b: 3.0} and d.nonfinite == [a]
    assert d.update({a: 3.0, b: 4.0}) == {a: 2.0, b: 0.0} and d.nonfinite == []  # resumes from its last value


# --- a monitor replica down: its series hold ---------------------------------------------------------


def _on(replica: str, cpu: str) -> SeriesId:
    return SeriesId("cpu", (("cpu", cpu), ("instance", replica), ("job", "monitor")))


class _Shell:
    """What IncidentWatcher.cycle does each cycle, without Prometheus: blind series hold, then observe."""

    def __init__(self, forget_after_s: float = 900.0) -> None:
        self.tracker = IncidentTracker(("cpu",), Rules(half_life_s=10, threshold=10, clear_threshold=5))
        self.deltas: CounterDeltas[SeriesId] = CounterDeltas()
        self.blind = BlindSeries(catchup_max_s=30, forget_after_s=forget_after_s)

    def cycle(self, ts: float, reading: dict[SeriesId, float], done: dict[tuple[str, str], float]) -> list:
        self.blind.update(ts, self.tracker.last_ts, self.tracker.series, reading)
        held = self.blind.release(ts, done)
        self.tracker.hold(ts, only=held)
        return self.tracker.observe(ts, self.deltas.update(reading))


@pytest.mark.parametrize("restored", [30.0, 32.0])  # the same counter, or a restored higher one
def test_series_of_a_replica_that_is_down_hold_and_resume_without_a_burst(restored: float) -> None:
    a, b = _on("a:1", "0"), _on("b:1", "1")
    shell = _Shell()
    assert shell.cycle(T0, {a: 0, b: 0}, {}) == []
    opened = shell.cycle(T0 + 5, {a: 30, b: 0}, {})
    assert [e.event for e in opened] == ["opened"]
    held = shell.tracker.series[a].score.value_at(T0 + 5)
    t = T0 + 5
    for _ in range(12):  # replica a down for 60 s, six half-lives: b is read, a is gone
        t += 5
        assert shell.cycle(t, {b: 0}, {("monitor", "b:1"): t}) == []
        assert shell.tracker.series_values(t)[a] == pytest.approx(held)
    assert shell.tracker.current is not None
    back = t + 5  # a is back; it has not completed a cycle since (its last success is from before)
    assert shell.cycle(back, {a: restored, b: 0}, {("monitor", "a:1"): T0 + 5}) == []
    w = spread_weight(5, 10)
    assert shell.tracker.series_values(back)[a] == pytest.approx(held + (restored - 30) * w)  # no burst
    assert shell.tracker.current is not None
    events: list = []
    t = back
    while not events and t < back + 120:  # a completed a cycle: its score decays again, resolving once
        t += 5
        events = shell.cycle(t, {a: restored, b: 0}, {("monitor", "a:1"): back + 1})
    assert [e.event for e in events] == ["resolved"]
    assert t - back <= 4 * 10  # a few half-lives after the return, not after the catch-up cap


def test_a_returned_replica_that_never_completes_a_cycle_holds_no_longer_than_catchup_max_s() -> None:
    a = _on("a:1", "0")
    shell = _Shell()
    shell.cycle(T0, {a: 0}, {})
    shell.cycle(T0 + 5, {a: 30}, {})
    shell.cycle(T0 + 10, {}, {})
    assert shell.blind.release(T0 + 10, {}) == [a]
    shell.cycle(T0 + 15, {a: 30}, {})  # back, never completing a cycle
    assert shell.blind.release(T0 + 40, {}) == [a]
    assert shell.blind.release(T0 + 45, {}) == []  # catchup_max_s (30 s) after the return


def test_a_series_gone_again_before_its_replica_caught_up_holds_while_gone() -> None:
    a = _on("a:1", "0")
    shell = _Shell()
    for ts, reading in ((T0, {a: 0}), (T0 + 5, {a: 30}), (T0 + 10, {}), (T0 + 15, {a: 30}), (T0 + 20, {})):
        shell.cycle(ts, reading, {})
    assert shell.blind.release(T0 + 50, {}) == [a]  # 35 s after the return: gone, not capped


def test_a_series_gone_for_good_is_let_go_after_forget_after_s_and_resolves() -> None:
    a = _on("a:1", "0")
    shell = _Shell(forget_after_s=60)
    shell.cycle(T0, {a: 0}, {})
    shell.cycle(T0 + 5, {a: 30}, {})
    t, events = T0 + 5, []
    while not events:
        t += 5
        events = shell.cycle(t, {}, {})
    assert [e.event for e in events] == ["resolved"]
    assert 60 < t - T0 - 5 <= 60 + 4 * 10  # held for forget_after_s, then decayed as before
