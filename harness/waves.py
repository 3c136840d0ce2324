"""Helpers for the monitor's tests: the simulator's waves as vectorised numpy, and a local gauge target."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import requests
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Wave:
    """A triangle stepping every ``tick_s`` from ``lo`` to ``hi`` by ``step``, as the simulator defines it."""

    name: str
    lo: float
    hi: float
    step: float
    noise: float = 0.02  # sigma as a fraction of the range
    tick_s: float = 2.0

    @property
    def range(self) -> float:
        return self.hi - self.lo

    @property
    def period_s(self) -> float:
        return 2 * math.ceil((self.hi - self.lo) / self.step) * self.tick_s

    def clean(self, ts: np.ndarray) -> np.ndarray:
        n = math.ceil((self.hi - self.lo) / self.step)
        phase = np.floor(np.asarray(ts, dtype=np.float64) / self.tick_s).astype(np.int64) % (2 * n)
        k = np.where(phase <= n, phase, 2 * n - phase)
        return np.minimum(self.lo + self.step * k, self.hi)

    def noisy(self, ts: np.ndarray, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        ticks = np.floor(np.asarray(ts) / self.tick_s).astype(np.int64)
        uniq, inverse = np.unique(ticks, return_inverse=True)
        noise = rng.standard_normal(uniq.size)[inverse]  # one draw per tick, as the simulator does
        return np.clip(self.clean(ts) + self.noise * self.range * noise, self.lo, self.hi)


CONSUMPTION = Wave("energy_consumption", 1.0, 500.0, 20.0)
PRICE = Wave("energy_price", 10.0, 1000.0, 50.0)
WAVES = (CONSUMPTION, PRICE)


def grid(start: float, duration_s: float, step_s: float = 2.0) -> np.ndarray:
    return start + np.arange(0.0, duration_s, step_s)


def scrape_monitor(url: str, metric: str) -> dict[str, float]:
    """A monitor's /metrics as {sample name (+ ":" bound): value} for the one watched ``metric``."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(requests.get(url, timeout=2).text):
        for s in family.samples:
            if s.labels.get("metric") == metric:
                out[s.name + (f":{s.labels['bound']}" if "bound" in s.labels else "")] = s.value
    return out
