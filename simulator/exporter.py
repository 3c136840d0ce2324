"""Prometheus exposition of the simulator: gauges computed from the wave at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from simulator import wave
from simulator.active import ActiveAnomalies
from simulator.anomalies import KINDS, apply_all
from simulator.config import SimulatorConfig
from streamwatch.clock import Clock


def current_values(config: SimulatorConfig, anomalies: ActiveAnomalies, t: float) -> dict[str, float]:
    """Every metric's served value at ``t``: the wave plus the anomalies active then."""
    active = anomalies.active(t)
    return {
        spec.name: apply_all(wave.value(spec, t, config.seed, config.tick_s), t, active, spec)
        for spec in config.metrics
    }


def fleet_current_values(
    config: SimulatorConfig, shapes: dict[str, wave.FleetShape], anomalies: ActiveAnomalies, t: float
) -> dict[str, np.ndarray]:
    """Every series' value of every metric at ``t`` (``--series N``): the waves plus active anomalies."""
    active = anomalies.active(t)
    out: dict[str, np.ndarray] = {}
    for spec in config.metrics:
        vs = wave.fleet_values(spec, shapes[spec.name], t, config.seed, config.tick_s)
        mine = [a for a in active if a.metric == spec.name]
        if mine:  # rare: scalar arithmetic on the series hit only
            hit = range(vs.size) if any(a.series is None for a in mine) else {a.series for a in mine}
            for i in hit:
                if i is not None:
                    vs[i] = apply_all(float(vs[i]), t, mine, spec, i)
        out[spec.name] = vs
    return out


class WaveCollector(Collector):
    """Reads the clock on each scrape, so the value is the wave's at that moment, never stale."""

    def __init__(self, config: SimulatorConfig, anomalies: ActiveAnomalies, clock: Clock):
        self.config = config
        self.anomalies = anomalies
        self.clock = clock
        n = config.series
        self.shapes = {m.name: wave.fleet_shape(m, n, config.seed) for m in config.metrics} if n > 1 else {}
        self.series_labels = [str(i) for i in range(n)]

    def collect(self) -> Iterator[Metric]:
        t = self.clock.time()
        if self.shapes:
            yield from self._collect_fleet(t)
        else:
            yield from self._collect_one(t)
        active = GaugeMetricFamily(
            "streamwatch_simulator_active_anomalies",
            "Injected anomalies currently active, per metric.",
            labels=["metric"],
        )
        running = self.anomalies.active(t)
        for spec in self.config.metrics:
            active.add_metric([spec.name], sum(1 for a in running if a.metric == spec.name))
        yield active

    def labels_at(self, t: float) -> list[str]:
        """The `series` labels at ``t``: with churn, the first churn_count series are renamed each period
        (series i of generation g is called i + g * N), as pods replaced by a deployment are."""
        cfg = self.config
        if not cfg.churn_every or not cfg.churn_count:
            return self.series_labels
        gen = int(t // cfg.churn_every)
        return [str(i + gen * cfg.series) for i in range(cfg.churn_count)] + self.series_labels[
            cfg.churn_count :
        ]

    def _collect_fleet(self, t: float) -> Iterator[Metric]:
        values = fleet_current_values(self.config, self.shapes, self.anomalies, t)
        for spec in self.config.metrics:
            family = GaugeMetricFamily(
                spec.metric_name,
                f"Simulated {spec.name}, {self.config.series} series (waves within {spec.min:g}.."
                f"{spec.max:g} step {spec.step:g}, each with its own phase and amplitude, with anomalies)",
                labels=["series"],
            )
            for label, v in zip(self.labels_at(t), values[spec.name].tolist(), strict=True):
                family.add_metric([label], v)
            yield family

    def _collect_one(self, t: float) -> Iterator[Metric]:
        values = current_values(self.config, self.anomalies, t)
        for spec in self.config.metrics:
            value = values[spec.name]
            yield GaugeMetricFamily(
                spec.metric_name,
                f"Simulated {spec.name} (wave {spec.min:g}..{spec.max:g} step {spec.step:g}, with anomalies)",
                value=value,
            )


def build_registry(
    config: SimulatorConfig, anomalies: ActiveAnomalies, clock: Clock
) -> tuple[CollectorRegistry, Counter]:
    """The app's own registry (never the global one) and its injection counter."""
    registry = CollectorRegistry()
    registry.register(WaveCollector(config, anomalies, clock))
    injected = Counter(
        "streamwatch_simulator_anomalies_injected",
        "Anomalies injected through POST /anomalies, per metric and kind.",
        ["metric", "kind"],
        registry=registry,
    )
    # Every series exists from the first scrape, so increase() sees the first injection too.
    for spec in config.metrics:
        for kind in KINDS:
            injected.labels(spec.name, kind)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry, injected
