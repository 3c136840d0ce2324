"""Training data in Prometheus' API format: generated from the wave, or captured from a live Prometheus."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator import wave
from simulator.config import DEFAULT_INSTANCE, DEFAULT_JOB, MetricSpec
from streamwatch.errors import DataError
from streamwatch.promapi import (
    FormatError,
    PrometheusClient,
    PrometheusError,
    matrix_response,
    parse_response,
)
from streamwatch.series import Series


def grid(end: float, duration_s: float, step_s: float) -> np.ndarray:
    """Timestamps on the ``step_s`` grid in ``(end - duration_s, end]``, as ``metric[duration]`` selects."""
    last = math.floor(end / step_s) * step_s
    count = math.floor(duration_s / step_s + 1e-9)
    return last - step_s * np.arange(count - 1, -1, -1, dtype=np.float64)


def generate(
    spec: MetricSpec,
    end: float,
    duration_s: float,
    step_s: float = 2.0,
    seed: int = 0,
    tick_s: float = 2.0,
    job: str = DEFAULT_JOB,
    instance: str = DEFAULT_INSTANCE,
) -> dict[str, Any]:
    """The document ``/api/v1/query?query=<name>_metric[<duration>]`` would return at ``end``."""
    ts = grid(end, duration_s, step_s)
    labels = {"__name__": spec.metric_name, "instance": instance, "job": job}
    return matrix_response([Series(labels, ts, wave.values(spec, ts, seed, tick_s))])


def capture(client: PrometheusClient, query: str, at: float | None = None) -> dict[str, Any]:
    """Prometheus' own answer to a range-vector ``query``, checked to be usable training data."""
    try:
        doc = client.query_raw(query, at)
    except PrometheusError as exc:
        raise DataError(str(exc)) from None
    try:
        series = parse_response(doc)
    except FormatError as exc:
        raise DataError(f"unusable answer to {query!r}: {exc}") from None
    if doc["data"]["resultType"] != "matrix":
        raise DataError(f"{query!r} is not a range selector; use e.g. 'energy_price_metric[1h]'")
    if not series or all(len(s) == 0 for s in series):
        raise DataError(f"{query!r} returned no samples; is the metric being scraped?")
    return doc
