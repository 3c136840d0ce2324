"""A sample incident lifecycle from the real tracker: opened (Sev 2), escalated (Sev 1), resolved."""

from __future__ import annotations

from incident.severity import IncidentEvent, IncidentTracker, Rules

T0 = 1_700_000_000.0


def lifecycle() -> list[IncidentEvent]:
    tr = IncidentTracker(("a", "b"), Rules(half_life_s=10, threshold=10, clear_threshold=5))
    events = tr.observe(T0, {"a": 12})
    events += tr.observe(T0 + 1, {"b": 12})
    events += tr.observe(T0 + 120, {})
    return events
