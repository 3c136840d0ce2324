"""Exponentially decaying scores: anomalies add heat, time takes it away with a fixed half-life."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self


def decay_factor(elapsed_s: float, half_life_s: float) -> float:
    """The fraction of a score left after ``elapsed_s`` seconds; time running backwards decays nothing.

    >>> decay_factor(60, half_life_s=60)
    0.5
    >>> decay_factor(120, half_life_s=60)
    0.25
    >>> decay_factor(-5, half_life_s=60)
    1.0
    """
    if half_life_s <= 0:
        raise ValueError(f"half_life_s must be positive, got {half_life_s}")
    return math.pow(0.5, max(0.0, elapsed_s) / half_life_s)


def spread_weight(gap_s: float, half_life_s: float) -> float:
    """What one anomaly adds to a score now, when it happened at an unknown moment of the last ``gap_s``.

    Counters tell how many anomalies arrived since the last reading, not when. Taken as spread evenly
    over the gap, their mean remaining weight is ``(1 - 2^(-gap/h)) * h / (gap * ln 2)``: about 0.97 for
    a 5 s poll at a 60 s half-life, and small after a long Prometheus outage, so a steady trickle of
    anomalies scores the same whether it was seen every cycle or all at once when Prometheus came back.

    >>> round(spread_weight(5, half_life_s=60), 3)
    0.972
    >>> round(spread_weight(600, half_life_s=60), 3)  # a 10-minute outage's lump counts for little
    0.144
    >>> spread_weight(0, half_life_s=60)
    1.0
    """
    if half_life_s <= 0:
        raise ValueError(f"half_life_s must be positive, got {half_life_s}")
    if gap_s <= 0:
        return 1.0
    x = gap_s * math.log(2) / half_life_s
    return -math.expm1(-x) / x


def steady_state(rate_per_s: float, half_life_s: float) -> float:
    """The score a constant anomaly rate settles at: ``rate * half_life / ln 2`` (the mean lifetime).

    One anomaly per 2 s sample with a 60 s half-life settles at about 43, four times the threshold of 10:

    >>> round(steady_state(0.5, half_life_s=60), 1)
    43.3
    """
    return rate_per_s * half_life_s / math.log(2)


@dataclass
class DecayingScore:
    """A score that decays continuously with ``half_life_s``; every call passes the timestamp explicitly.

    >>> score = DecayingScore(half_life_s=60)
    >>> score.add(10, ts=1000.0)
    10.0
    >>> score.value_at(1060.0)  # one half-life later
    5.0
    >>> score.add(1, ts=1060.0)
    6.0
    >>> score.add(1, ts=1000.0)  # a late reading adds, but never un-decays the score
    7.0
    """

    half_life_s: float
    value: float = 0.0
    updated_at: float | None = None

    def __post_init__(self) -> None:
        if self.half_life_s <= 0:
            raise ValueError(f"half_life_s must be positive, got {self.half_life_s}")

    def value_at(self, ts: float) -> float:
        """The score as it stands at ``ts`` (without changing it)."""
        if self.updated_at is None:
            return self.value
        return self.value * decay_factor(ts - self.updated_at, self.half_life_s)

    def add(self, amount: float, ts: float) -> float:
        """Decay to ``ts``, add ``amount`` and return the new score."""
        if not amount >= 0 or math.isinf(amount):  # NaN fails the comparison
            raise ValueError(f"a score only grows by a finite number of anomalies, got {amount}")
        # A timestamp older than the last update keeps the newer reference time, so the score never
        # "un-decays" when clocks or Prometheus answers arrive out of order.
        self.value = self.value_at(ts) + amount
        if self.updated_at is None or ts > self.updated_at:
            self.updated_at = ts
        return self.value

    def hold(self, since: float, until: float) -> None:
        """Let the time from ``since`` to ``until`` take nothing away: the score at ``until`` is the one
        at ``since`` (for a blind spell, when "no anomalies seen" does not mean "none happened")."""
        if self.updated_at is None or until <= since:
            return
        self.value = self.value_at(since)
        self.updated_at = max(self.updated_at, until)

    def to_dict(self) -> dict[str, Any]:
        """The score as saved state (the half-life comes from the configuration, not the file)."""
        return {"value": self.value, "updated_at": self.updated_at}

    @classmethod
    def from_dict(cls, doc: dict[str, Any], half_life_s: float) -> Self:
        updated_at = doc["updated_at"]
        value = float(doc["value"])
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a saved score must be a finite number of at least 0, got {value}")
        return cls(half_life_s, value, None if updated_at is None else float(updated_at))
