"""The simulator's typed configuration: which metrics it serves and how they move.

A TOML file adds or replaces metrics without touching code::

    seed = 0
    [[metrics]]
    name = "energy_consumption"
    min = 1.0
    max = 500.0
    step = 20.0
    noise = 0.02    # standard deviation as a fraction of (max - min)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar

from streamwatch.config import check_host
from streamwatch.httpguard import MAX_BODY_BYTES, Guard
from streamwatch.ranges import BODY_BYTES, PORT, Range, check_ranges

# Prometheus metric names; the simulator appends "_metric" to each configured name.
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

DEFAULT_NOISE = 0.02  # sigma as a fraction of the range: visible, but far below one step
DEFAULT_TICK_S = 2.0  # the original design: a new value every 2 s
MAX_SERIES = 100_000  # per metric: a fleet for benchmarks, not a memory exhaustion by typo
# Labels a real scrape of a simulator at its default address adds (training data carries them too).
DEFAULT_JOB = "flask_app"
DEFAULT_INSTANCE = "127.0.0.1:5000"
MAX_ACTIVE_ANOMALIES = 100  # far more than any demo needs; each one costs every scrape a little
# A metric's values stay within this: min = -1e308, max = 1e308 was accepted, its range overflowed to
# inf and every scrape was a 500.
MAX_ABS_VALUE = 1e12


@dataclass
class MetricSpec:
    name: str
    min: float
    max: float
    step: float
    noise: float = DEFAULT_NOISE

    RANGES: ClassVar[dict[str, Range]] = {
        "min": Range(-MAX_ABS_VALUE, MAX_ABS_VALUE),
        "max": Range(-MAX_ABS_VALUE, MAX_ABS_VALUE),
        "step": Range(0, 2 * MAX_ABS_VALUE, low_open=True),
        "noise": Range(0, 10),  # a fraction of max - min
    }

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric name must be snake_case letters, digits and _, got {self.name!r}")
        check_ranges(self, prefix=f"{self.name}: ")
        for key in ("min", "max", "step", "noise"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"{self.name}: {key} must be a finite number")
        if self.max <= self.min:
            raise ValueError(f"{self.name}: max must be greater than min, got min={self.min} max={self.max}")
        if self.step <= 0:
            raise ValueError(f"{self.name}: step must be positive, got {self.step}")
        if self.noise < 0:
            raise ValueError(f"{self.name}: noise must not be negative, got {self.noise}")

    @property
    def metric_name(self) -> str:
        """The exported gauge's name, as the original training files and queries use it."""
        return f"{self.name}_metric"

    @property
    def sigma(self) -> float:
        """Noise standard deviation in the metric's own units."""
        return self.noise * (self.max - self.min)


def default_metrics() -> list[MetricSpec]:
    return [
        MetricSpec("energy_consumption", min=1.0, max=500.0, step=20.0),
        MetricSpec("energy_price", min=10.0, max=1000.0, step=50.0),
    ]


@dataclass
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 5000
    seed: int = 0  # fixed by default so `generate` and two simulators agree without flags
    tick_s: float = DEFAULT_TICK_S
    metrics: list[MetricSpec] = field(default_factory=default_metrics)
    # Host names POST/DELETE /anomalies answers to besides the bind address and localhost (DNS rebinding).
    allowed_hosts: list[str] = field(default_factory=list)
    max_body_bytes: int = MAX_BODY_BYTES
    max_active_anomalies: int = MAX_ACTIVE_ANOMALIES
    series: int = 1  # series per metric, told apart by a `series` label when more than one
    # Churn (benchmarks): every churn_every seconds the first churn_count series take new `series` labels.
    churn_every: float = 0.0  # 0: no churn
    churn_count: int = 0

    RANGES: ClassVar[dict[str, Range]] = {
        "port": PORT,
        "seed": Range(0, 2**32 - 1),
        "tick_s": Range(0.01, 3600, "s"),
        "max_body_bytes": BODY_BYTES,
        "max_active_anomalies": Range(1, 10_000),
        "series": Range(1, MAX_SERIES),
        # 1e-9 was accepted: every scrape renamed series as fast as it could.
        "churn_every": Range(1, 86_400, "s", off=0),
        "churn_count": Range(0, MAX_SERIES),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        check_host("host", self.host)
        if self.max_active_anomalies < 1:
            raise ValueError(f"max_active_anomalies must be at least 1, got {self.max_active_anomalies}")
        self.guard()  # a malformed allowed_hosts entry or body limit is a config error at start
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")
        if not (math.isfinite(self.tick_s) and self.tick_s > 0):
            raise ValueError(f"tick_s must be positive, got {self.tick_s}")
        if not 1 <= self.series <= MAX_SERIES:
            raise ValueError(f"series must be between 1 and {MAX_SERIES}, got {self.series}")
        if self.churn_every < 0 or not 0 <= self.churn_count <= self.series:
            raise ValueError("churn_every must be >= 0 and churn_count between 0 and series")
        if not self.metrics:
            raise ValueError("metrics must list at least one metric")
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names must be unique, repeated: {', '.join(dupes)}")

    def guard(self) -> Guard:
        """What the state-changing endpoints accept (see streamwatch.httpguard)."""
        return Guard.for_server(self.host, self.port, self.allowed_hosts, self.max_body_bytes)

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]
