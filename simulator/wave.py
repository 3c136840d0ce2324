"""The seasonal wave: a pure function of absolute time, so restarts and replicas agree.

``tick = floor(t / tick_s)``; the clean value climbs ``step`` per tick from ``min`` to ``max`` in
``n = ceil((max - min) / step)`` ticks and falls back in ``n`` more, so the period is ``2n`` ticks.
Noise is Gaussian and a deterministic function of (seed, metric name, tick): every scrape within a tick
sees the same value, and a second simulator with the same seed serves identical numbers.

The noisy value is clipped to [min, max] so the undisturbed signal never leaves its configured range;
anomalies (see ``anomalies``) are applied afterwards and may leave it (a spike exceeds max).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from simulator.config import DEFAULT_TICK_S, MetricSpec


def steps_each_way(spec: MetricSpec) -> int:
    return max(1, math.ceil((spec.max - spec.min) / spec.step))


def period_ticks(spec: MetricSpec) -> int:
    return 2 * steps_each_way(spec)


def period_s(spec: MetricSpec, tick_s: float = DEFAULT_TICK_S) -> float:
    """Seconds for one full rise and fall (100 s for energy_consumption, 80 s for energy_price)."""
    return period_ticks(spec) * tick_s


def tick_of(t: float, tick_s: float = DEFAULT_TICK_S) -> int:
    return math.floor(t / tick_s)


def clean_value(spec: MetricSpec, t: float, tick_s: float = DEFAULT_TICK_S) -> float:
    """The noise-free triangle wave at epoch second ``t``."""
    n = steps_each_way(spec)
    phase = tick_of(t, tick_s) % (2 * n)
    k = phase if phase <= n else 2 * n - phase
    return min(spec.min + spec.step * k, spec.max)


def standard_noise(seed: int, name: str, tick: int) -> float:
    """One standard-normal draw fixed by (seed, metric name, tick); crc32 keeps the name stable."""
    # SeedSequence wants non-negative integers; ticks before the epoch are folded into that range.
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), tick % (1 << 63)])
    return float(rng.standard_normal())


def value(spec: MetricSpec, t: float, seed: int = 0, tick_s: float = DEFAULT_TICK_S) -> float:
    """The served value at ``t`` without anomalies: clean wave plus noise, clipped to [min, max]."""
    noisy = clean_value(spec, t, tick_s) + spec.sigma * standard_noise(seed, spec.name, tick_of(t, tick_s))
    return min(max(noisy, spec.min), spec.max)


def values(
    spec: MetricSpec, timestamps: np.ndarray, seed: int = 0, tick_s: float = DEFAULT_TICK_S
) -> np.ndarray:
    """``value`` at each timestamp, for training data and tests."""
    return np.array([value(spec, float(t), seed, tick_s) for t in np.asarray(timestamps)], dtype=np.float64)


# --- fleets (simulator --series N) ----------------------------------------------------------------
# Series i of a metric is the same triangle shifted by its own number of ticks and scaled about ``min``
# by its own amplitude, so a fleet holds different waves, not copies; both are fixed by (seed, name).
FLEET_AMPLITUDE = (0.5, 1.0)


@dataclass(frozen=True)
class FleetShape:
    offsets: np.ndarray  # ticks each series' wave is shifted by
    amplitudes: np.ndarray  # fraction of (max - min) each series spans


def fleet_shape(spec: MetricSpec, n: int, seed: int = 0) -> FleetShape:
    rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode("utf-8")), 1 << 40])
    offsets = rng.integers(0, period_ticks(spec), size=n)
    amplitudes = rng.uniform(*FLEET_AMPLITUDE, size=n)
    return FleetShape(offsets, amplitudes)


def fleet_values(
    spec: MetricSpec, shape: FleetShape, t: float, seed: int = 0, tick_s: float = DEFAULT_TICK_S
) -> np.ndarray:
    """Every series' value at ``t`` without anomalies (noise: one draw per series and tick)."""
    n = steps_each_way(spec)
    tick = tick_of(t, tick_s)
    phase = (tick + shape.offsets) % (2 * n)
    k = np.where(phase <= n, phase, 2 * n - phase)
    clean = np.minimum(spec.min + spec.step * k, spec.max)
    rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode("utf-8")), tick % (1 << 63), 1])
    noisy = clean + spec.sigma * rng.standard_normal(shape.offsets.size)
    top = spec.min + (spec.max - spec.min) * shape.amplitudes
    return np.clip(spec.min + (noisy - spec.min) * shape.amplitudes, spec.min, top)
