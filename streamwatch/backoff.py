"""Exponential backoff as a tiny pure object: the caller owns the clock and the sleeping."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Every service that reads Prometheus retries at least this often while it fails: Prometheus restarts in
# well under a second, so a longer wait only delays the catch-up (issue 11 measured a 60 s cap splitting
# one incident into two).
DEFAULT_MAX_S = 5.0


@dataclass
class Backoff:
    """Delays of ``initial * factor**n`` capped at ``maximum``; ``reset()`` after a success.

    ``jitter`` spreads retries of many replicas by up to that fraction of the delay; it needs an ``rng``
    so tests stay deterministic.
    """

    initial_s: float = 1.0
    factor: float = 2.0
    maximum_s: float = DEFAULT_MAX_S
    jitter: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    failures: int = 0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.maximum_s < self.initial_s or self.factor < 1:
            raise ValueError("backoff needs 0 < initial_s <= maximum_s and factor >= 1")

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next try."""
        delay = min(self.maximum_s, self.initial_s * self.factor**self.failures)
        self.failures += 1
        if self.jitter:
            delay *= 1 - self.jitter * self.rng.random()
        return delay

    def reset(self) -> None:
        self.failures = 0
