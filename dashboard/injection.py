"""The original design's four test cases, as the simulator API calls that inject them. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dashboard.config import DashboardConfig
from dashboard.queries import BadRequest


@dataclass(frozen=True)
class Case:
    id: str
    label: str
    metrics: tuple[str, ...]
    duration_s: float
    expect: str  # what the incident detector should make of it, shown as the button's hint


def cases(config: DashboardConfig) -> list[Case]:
    """Transient or prolonged spike, in one metric (the first watched) or in all of them."""
    one = config.metrics[0]
    every = tuple(config.metrics)
    many = "both" if len(every) == 2 else "all"
    sev_all = "Sev 1" if len(every) > 1 else "Sev 2"
    t, p = config.transient_duration_s, config.prolonged_duration_s
    return [
        Case("transient_one", f"Transient spike in {one}", (one,), t, "no incident"),
        Case("transient_all", f"Transient spike in {many}", every, t, "no incident"),
        Case("prolonged_one", f"Prolonged spike in {one}", (one,), p, "Sev 2"),
        Case("prolonged_all", f"Prolonged spike in {many}", every, p, sev_all),
    ]


def find_case(case_id: Any, available: Sequence[Case]) -> Case:
    for case in available:
        if case.id == case_id:
            return case
    raise BadRequest(f"case must be one of {', '.join(c.id for c in available)}, got {case_id!r}")


def requests_for(case: Case, magnitude: float) -> list[dict[str, Any]]:
    """The JSON bodies to POST to the simulator's /anomalies, one per metric."""
    return [
        {"metric": m, "kind": "spike", "magnitude": magnitude, "duration_s": case.duration_s}
        for m in case.metrics
    ]
