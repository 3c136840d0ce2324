"""The monitor's settings: one typed dataclass whose defaults are the original design's numbers.

``MonitorConfig`` serves both forms: the positional ``monitor.py METRIC TRAIN_FILE PORT`` (one series,
one detector) and ``monitor.py --config watch.toml`` whose ``[[monitor.queries]]`` tables each name a
PromQL expression whose every series gets its own detector (``QueryConfig``). ``load_file`` reads such
a file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from monitor.detectors.prophet import DEFAULT_FOURIER_ORDER, DEFAULT_K
from monitor.loader import DEFAULT_MAX_POINTS, DEFAULT_MIN_POINTS, MAX_TRAIN_POINTS
from streamwatch import config as swconfig
from streamwatch.backoff import DEFAULT_MAX_S as DEFAULT_BACKOFF_MAX_S
from streamwatch.config import check_host, check_interval
from streamwatch.errors import ConfigError
from streamwatch.promapi import check_base_url
from streamwatch.ranges import INTERVAL, PORT, Range, check_ranges

# Labels the monitor sets on what it exports; an input series' own label of that name is exported
# as ``exported_<name>``, as Prometheus does for scraped labels that clash with target labels.
RESERVED_LABELS: tuple[str, ...] = ("metric", "bound")
# Prometheus refuses a query_range of more than 11,000 points per series.
MAX_RANGE_POINTS = 11_000
# Where snapshots go when ``model_dir`` is not set (relative to the working directory); the ``--config``
# form uses a folder of its own inside it (``model_dir_for``).
DEFAULT_MODEL_DIR = Path("var/models")


def model_dir_for(config_path: str | os.PathLike[str], port: int | None) -> Path:
    """The default ``model_dir`` of a ``--config`` monitor: ``var/models/<config stem>-<hash>``, the hash of
    the file's absolute path and the ``/metrics`` port, so two monitors (another file, or the same file on
    another port) never restore or overwrite each other's snapshots.

    >>> d = model_dir_for("/etc/streamwatch/watch.toml", 8200)
    >>> str(d.parent), d.name[:6], len(d.name)
    ('var/models', 'watch-', 16)
    >>> len({model_dir_for(f, p) for f, p in (("/a/w.toml", 1), ("/b/w.toml", 1), ("/b/w.toml", 2))})
    3
    """
    path = Path(config_path).absolute()
    digest = hashlib.sha256(f"{path}\0{port}".encode()).hexdigest()[:10]
    return DEFAULT_MODEL_DIR / f"{path.stem}-{digest}"


PAIRS = {"(": ")", "{": "}", "[": "]"}


def check_expr(where: str, expr: str) -> None:
    """``ValueError`` for an expression that cannot be PromQL whatever Prometheus says: empty, or with an
    unbalanced bracket or quote. Caught at load, so such a query is refused even while Prometheus is down
    (Prometheus itself is asked at start when it answers: ``Engine.probe``)."""
    if not expr.strip():
        raise ValueError(f"{where} must not be empty")
    open_: list[str] = []
    quote = ""
    escaped = False
    for ch in expr:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch in PAIRS:
            open_.append(PAIRS[ch])
        elif ch in PAIRS.values() and (not open_ or open_.pop() != ch):
            raise ValueError(f"{where} has an unbalanced {ch!r}: {expr!r}")
    if quote or open_:
        raise ValueError(f"{where} is not closed ({(quote or open_[-1])!r} missing): {expr!r}")


@dataclass
class QueryConfig:
    """One ``[[monitor.queries]]`` table: a PromQL expression, and how each of its series is watched."""

    name: str  # exported as the `metric` label
    expr: str  # any PromQL expression: a selector, rate(...), sum by (...) (...), ...
    detector: str = "adaptive"  # any registered detector (monitor.detectors.registry.NAMES)
    params: dict[str, Any] = field(default_factory=dict)  # the detector's parameters
    step: float = 15.0  # seconds between the points read with query_range (and of the training history)
    fit_window: float = 3600.0  # seconds of Prometheus history a new series is trained on
    stale_after: float = 600.0  # seconds without a new point before a series is dropped
    max_series: int = 10_000  # series watched at most; further new ones are refused and counted
    # Export each series' band (lower, expected, upper) and latest value too: three or four more series
    # per input series, so off unless asked for (the positional form, one series, turns it on).
    export_band: bool = False

    RANGES: ClassVar[dict[str, Range]] = {
        "step": Range(0.1, 86_400, "s"),
        "fit_window": Range(1, 2_592_000, "s"),  # 30 days
        "stale_after": Range(1, 604_800, "s"),  # 1e-9 was accepted: every series dropped each cycle
        "max_series": Range(1, 1_000_000),
    }

    def __post_init__(self) -> None:
        check_ranges(self, prefix=f"query {self.name}: ")
        if not self.name or not self.name.replace("_", "a").isalnum():
            raise ValueError(f"query name must be letters, digits and _ (a label value), got {self.name!r}")
        check_expr(f"query {self.name}: expr", self.expr)
        for key in ("step", "fit_window", "stale_after"):
            if not getattr(self, key) > 0:
                raise ValueError(f"query {self.name}: {key} must be positive, got {getattr(self, key)}")
        if self.step > self.fit_window:
            raise ValueError(f"query {self.name}: step {self.step:g} is longer than fit_window")
        if self.fit_window / self.step > MAX_RANGE_POINTS:
            raise ValueError(
                f"query {self.name}: fit_window / step is {self.fit_window / self.step:.0f} points; "
                f"Prometheus answers at most {MAX_RANGE_POINTS} per series (raise step)"
            )
        if self.max_series < 1:
            raise ValueError(f"query {self.name}: max_series must be at least 1, got {self.max_series}")

    def history_window(self, warmup: int) -> float:
        """Seconds of history a new series is trained on: ``fit_window``, or longer when the detector needs
        more points than that to finish its warm-up (so a series scores from its first live point), but
        never more than one ``query_range`` can answer."""
        return min(max(self.fit_window, (warmup + 1) * self.step), (MAX_RANGE_POINTS - 1) * self.step)


@dataclass
class MonitorConfig:
    """Settings shared by the CLI flags and the ``[monitor]`` table of a TOML file (same snake_case names)."""

    interval: float = 30.0  # seconds between cycles, as in the original monitor
    prometheus_url: str = "http://127.0.0.1:9090"
    host: str = "127.0.0.1"
    port: int | None = None  # /metrics port for --config runs (the positional form gives PORT)
    query: str | None = None  # None: "<metric>_metric"
    period: float | None = None  # seconds; None: detected from the training data
    k: float = DEFAULT_K  # Prophet's band half-width in robust sigmas of the training residuals
    fourier_order: int = DEFAULT_FOURIER_ORDER
    retrain_every: float = 0.0  # seconds; 0 switches retraining off
    retrain_window: float = 3600.0  # seconds of recent Prometheus data a retrain fits on
    # None: DEFAULT_MODEL_DIR for the positional form, model_dir_for(config, port) for --config.
    model_dir: Path | None = None
    log_format: Literal["text", "json"] = "text"
    max_catchup: float = 3600.0  # seconds of missed samples fetched after an outage, at most
    backoff_max: float = DEFAULT_BACKOFF_MAX_S  # longest wait between retries while Prometheus is failing
    min_train_points: int = DEFAULT_MIN_POINTS
    max_train_points: int = DEFAULT_MAX_POINTS  # a larger training file is refused before it is read
    queries: list[QueryConfig] = field(default_factory=list)  # [[monitor.queries]]: one detector per series
    fit_workers: int = 0  # worker processes fitting new series (Prophet); 0: one per CPU core
    shard: str | None = None  # "INDEX/COUNT" or "auto/COUNT": watch only this shard's series (monitor.shard)
    snapshot_every: float = 300.0  # seconds between writes of every detector's state (and on SIGTERM)

    # Issue 22: each of interval = 1e12, max_catchup = 1e-9, fit_workers = 100000 and
    # snapshot_every = 1e-9 was accepted (and horizon = 1e12, a 3.64 TiB band: there is no horizon now,
    # a fitted band is one period's profile).
    RANGES: ClassVar[dict[str, Range]] = {
        "interval": INTERVAL,
        "port": PORT,
        "period": Range(1, 31_536_000, "s"),  # a year
        "k": Range(0, 100, low_open=True),
        "fourier_order": Range(1, 100),
        "retrain_every": Range(1, 31_536_000, "s", off=0),
        "retrain_window": Range(1, 2_592_000, "s"),  # 30 days
        "max_catchup": Range(1, 86_400, "s"),
        "backoff_max": Range(0.1, 3600, "s"),
        "min_train_points": Range(4, MAX_TRAIN_POINTS),
        "max_train_points": Range(4, MAX_TRAIN_POINTS),  # the fit's memory grows with it (monitor.loader)
        "fit_workers": Range(0, 128),  # 0: one per CPU core; each is a process with Prophet loaded
        "snapshot_every": Range(1, 86_400, "s"),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        check_host("host", self.host)
        for name in (
            "interval",
            "k",
            "retrain_window",
            "max_catchup",
            "backoff_max",
            "snapshot_every",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        check_interval("interval", self.interval)
        check_base_url("prometheus_url", self.prometheus_url)
        if self.retrain_every < 0:
            raise ValueError(f"retrain_every must be 0 (off) or positive, got {self.retrain_every}")
        if self.query is not None:
            check_expr("query", self.query)
        if self.shard is not None and not self.shard.strip():
            raise ValueError("shard must be INDEX/COUNT or auto/COUNT (e.g. 0/3), got ''")
        if self.period is not None and not self.period > 0:
            raise ValueError(f"period must be positive, got {self.period}")
        if self.fourier_order < 1:
            raise ValueError(f"fourier_order must be at least 1, got {self.fourier_order}")
        if self.min_train_points < 4:
            raise ValueError(f"min_train_points must be at least 4, got {self.min_train_points}")
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if self.fit_workers < 0:
            raise ValueError(f"fit_workers must be 0 (one per core) or more, got {self.fit_workers}")
        names = [q.name for q in self.queries]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"query names must be unique, repeated: {', '.join(repeated)}")
        if self.max_train_points < self.min_train_points:
            raise ValueError(
                f"max_train_points must be at least min_train_points ({self.min_train_points}), "
                f"got {self.max_train_points}"
            )
        if self.model_dir is not None:
            self.model_dir = Path(self.model_dir)

    def query_for(self, metric: str) -> str:
        return f"{metric}_metric" if self.query is None else self.query

    @property
    def workers(self) -> int:
        """How many fit worker processes ``fit_workers`` means."""
        return self.fit_workers or max(1, os.cpu_count() or 1)


def load_file(path: str | os.PathLike[str], **overrides: Any) -> MonitorConfig:
    """The ``[monitor]`` table of a TOML file (``overrides``: CLI flags given, None for absent ones), its
    presets (``preset = "node_exporter"``, ``monitor.presets``) expanded into queries.

    Each query's detector and parameters are checked here, so a typo is one line at start-up rather
    than an error when the first series appears.
    """
    from monitor.presets import expand_section  # late: presets build QueryConfig from this module

    cfg = swconfig.load(MonitorConfig, path, section="monitor", overrides=overrides, prepare=expand_section)
    for q in cfg.queries:
        check_detector(q, f"{path} [monitor.queries] {q.name}")
    return cfg


def check_detector(q: QueryConfig, where: str) -> None:
    from monitor.detectors import registry  # late: the registry imports scipy

    if q.detector not in registry.NAMES:
        raise ConfigError(f"{where}: unknown detector {q.detector!r} (known: {', '.join(registry.NAMES)})")
    try:
        if registry.needs_fit(q.detector):
            registry.make_params(q.detector, q.params)
        else:
            registry.create(q.detector, q.params)  # the ensemble's member parameters are checked here
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
