"""The monitor's settings: one typed dataclass whose defaults are the original design's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from monitor.detectors.prophet import DEFAULT_FOURIER_ORDER, DEFAULT_HORIZON_S, DEFAULT_K
from monitor.loader import DEFAULT_MAX_POINTS, DEFAULT_MIN_POINTS
from streamwatch.config import check_interval
from streamwatch.promapi import check_base_url


@dataclass
class MonitorConfig:
    """Settings shared by the CLI flags and the ``[monitor]`` table of a TOML file (same snake_case names)."""

    interval: float = 30.0  # seconds between cycles, as in the original monitor
    prometheus_url: str = "http://127.0.0.1:9090"
    host: str = "127.0.0.1"
    query: str | None = None  # None: "<metric>_metric"
    period: float | None = None  # seconds; None: detected from the training data
    k: float = DEFAULT_K  # Prophet's band half-width in robust sigmas of the training residuals
    fourier_order: int = DEFAULT_FOURIER_ORDER
    retrain_every: float = 0.0  # seconds; 0 switches retraining off
    retrain_window: float = 3600.0  # seconds of recent Prometheus data a retrain fits on
    model_dir: Path = Path("var/models")
    log_format: Literal["text", "json"] = "text"
    horizon: float = DEFAULT_HORIZON_S  # seconds of band computed ahead at fit time (and per extension)
    max_catchup: float = 3600.0  # seconds of missed samples fetched after an outage, at most
    backoff_max: float = 60.0  # longest wait between retries while Prometheus is failing
    min_train_points: int = DEFAULT_MIN_POINTS
    max_train_points: int = DEFAULT_MAX_POINTS  # a larger training file is refused before it is read

    def __post_init__(self) -> None:
        for name in ("interval", "k", "retrain_window", "horizon", "max_catchup", "backoff_max"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        check_interval("interval", self.interval)
        check_base_url("prometheus_url", self.prometheus_url)
        if self.retrain_every < 0:
            raise ValueError(f"retrain_every must be 0 (off) or positive, got {self.retrain_every}")
        if self.period is not None and not self.period > 0:
            raise ValueError(f"period must be positive, got {self.period}")
        if self.fourier_order < 1:
            raise ValueError(f"fourier_order must be at least 1, got {self.fourier_order}")
        if self.min_train_points < 4:
            raise ValueError(f"min_train_points must be at least 4, got {self.min_train_points}")
        if self.max_train_points < self.min_train_points:
            raise ValueError(
                f"max_train_points must be at least min_train_points ({self.min_train_points}), "
                f"got {self.max_train_points}"
            )
        self.model_dir = Path(self.model_dir)

    def query_for(self, metric: str) -> str:
        return self.query or f"{metric}_metric"
