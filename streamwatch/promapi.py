"""Prometheus' HTTP API: its JSON format (read and written) and a small client for it.

The format is what ``curl '.../api/v1/query?query=energy_price_metric[1h]'`` returns::

    {"status": "success",
     "data": {"resultType": "matrix",
              "result": [{"metric": {"__name__": "energy_price_metric", ...},
                          "values": [[1700000000.0, "512.3"], ...]}]}}

``parse_response`` turns such a document into ``Series``; ``matrix_response`` writes one.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson
import requests

from streamwatch.series import Series, SeriesKey, series_key, text_keys


class FormatError(ValueError):
    """A document that is not a Prometheus API response we can use."""


class ResultTypeError(FormatError):
    """The query's result is a string (or another type) rather than series: its expression is wrong,
    which retrying cannot mend."""


class PrometheusError(RuntimeError):
    """Prometheus could not be reached, or answered with an error (``status``: its HTTP status, if any)."""

    def __init__(self, message: str, status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type

    @property
    def bad_query(self) -> bool:
        """Prometheus refused the expression itself (HTTP 400 bad_data): a configuration error, which
        retrying cannot mend, unlike an outage."""
        return self.status == 400 and self.error_type == "bad_data"


def check_base_url(name: str, url: str) -> None:
    """``ValueError`` naming the setting ``name`` unless ``url`` is an http(s) URL with a host: anything
    else (``'not a url'``, ``ftp://...``, ``localhost:9090``) would start and then only ever look like an
    outage. The one check every service's config uses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http:// or https:// URL with a host, got {url!r}")


def format_value(v: float) -> str:
    """Format a sample value as Prometheus does: shortest form, ``NaN``, ``+Inf``, ``-Inf``."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_positional(v, trim="-")


def _parse_value(raw: Any, where: str) -> float:
    if not isinstance(raw, str):
        raise FormatError(f"{where}: value {raw!r} is not a string as Prometheus writes values")
    try:
        return float(raw)
    except ValueError:
        raise FormatError(f"{where}: value {raw!r} is not a number") from None


def _parse_sample(pair: Any, where: str) -> tuple[float, float]:
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise FormatError(f'{where}: a sample must be [timestamp, "value"], got {pair!r}')
    ts, raw = pair
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise FormatError(f"{where}: timestamp {ts!r} is not a number")
    return float(ts), _parse_value(raw, where)


@dataclass(frozen=True)
class Columns:
    """A query's result as arrays, the way the monitor consumes it: series ``i`` has ``labels[i]`` and
    the samples ``ts[starts[i]:starts[i + 1]]`` / ``values[...]``, in time order.

    Ten thousand series of fifteen samples are 150,000 samples: parsed into per-series ``Series`` one
    sample at a time they cost more than everything else in a cycle, so a result is flattened into two
    arrays at once (``parse_columns``) and split only where a caller wants ``Series``.

    >>> doc = {"status": "success", "data": {"resultType": "matrix", "result": [
    ...     {"metric": {"job": "a"}, "values": [[10, "1"], [20, "2"]]},
    ...     {"metric": {"job": "b"}, "values": [[10, "+Inf"]]}]}}
    >>> c = parse_columns(doc)
    >>> c.counts.tolist(), c.values.tolist(), [dict(s.labels) for s in c.series()]
    ([2, 1], [1.0, 2.0, inf], [{'job': 'a'}, {'job': 'b'}])
    """

    labels: list[dict[str, str]]
    counts: np.ndarray  # samples per series (int64)
    ts: np.ndarray  # float64 epoch seconds, each series' run ascending
    values: np.ndarray  # float64
    keys: list[SeriesKey] = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.keys is None:
            object.__setattr__(self, "keys", [series_key(lab) for lab in self.labels])

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate(([0], np.cumsum(self.counts)))

    def __len__(self) -> int:
        return len(self.labels)

    def series(self) -> list[Series]:
        edges = self.starts
        return [
            Series(lab, self.ts[a:b], self.values[a:b])
            for lab, a, b in zip(self.labels, edges[:-1].tolist(), edges[1:].tolist(), strict=True)
        ]

    @classmethod
    def of(cls, series: Sequence[Series]) -> Columns:
        return cls(
            [dict(s.labels) for s in series],
            np.array([len(s) for s in series], dtype=np.int64),
            np.concatenate([s.timestamps for s in series]) if series else np.empty(0),
            np.concatenate([s.values for s in series]) if series else np.empty(0),
        )


def parse_columns(doc: Any) -> Columns:
    """Parse a Prometheus query API response (matrix, vector or scalar) into ``Columns``.

    The fast path flattens every sample in C-level loops; anything it cannot take (a sample that is not
    ``[number, "string"]``, a value that is not a number) is found again by the slow, precise path, so
    the ``FormatError`` names the series and sample at fault.
    """
    rtype, result = _result(doc)
    if rtype == "scalar":
        ts, v = _parse_sample(result, "scalar")
        return Columns([{}], np.array([1], dtype=np.int64), np.array([ts]), np.array([v]))
    labels: list[dict[str, str]] = []
    runs: list[Any] = []
    # Type checks by ``type(...) is``, not isinstance against the abstract Mapping: a decoded document
    # holds plain dicts and lists, and 10,000 ABC checks cost more than the rest of the loop.
    for i, item in enumerate(result):
        metric = item.get("metric", {}) if type(item) is dict else None
        if type(metric) is not dict:
            raise FormatError(f"series {i}: expected an object with 'metric'")
        labels.append(metric)
        if rtype == "matrix":
            raw = item.get("values")
            if type(raw) is not list:
                raise FormatError(f"series {i}: missing 'values' list")
            runs.append(raw)
        else:
            runs.append([item.get("value")])
    names = itertools.chain.from_iterable(labels)
    texts = itertools.chain.from_iterable(lab.values() for lab in labels)
    if not all(type(v) is str for v in itertools.chain(names, texts)):
        labels = [{str(k): str(v) for k, v in lab.items()} for lab in labels]  # garbage, made text
    # The series' identity, made once here: the monitor looks every series up by it, every cycle.
    keys = text_keys(labels)
    counts = np.fromiter(map(len, runs), np.int64, len(runs))
    try:
        flat = list(itertools.chain.from_iterable(itertools.chain.from_iterable(runs)))
        if len(flat) != 2 * int(counts.sum()):
            raise TypeError("a sample is not a pair")
        ts = np.fromiter(flat[0::2], np.float64, len(flat) // 2)
        raw_values = flat[1::2]
        if not all(type(v) is str for v in raw_values):
            raise TypeError("a value is not a string")
        values = np.fromiter(map(float, raw_values), np.float64, len(raw_values))
        if any(type(t) is bool for t in flat[0::2]):
            raise TypeError("a timestamp is a boolean")
    except (TypeError, ValueError):
        for i, raw in enumerate(runs):  # the precise path: raises the FormatError that says where
            for j, pair in enumerate(raw):
                _parse_sample(pair, f"series {i} sample {j}")
        raise FormatError("malformed samples") from None
    out = Columns(labels, counts, ts, values, keys)
    edges = out.starts
    # Prometheus answers each series in time order; a file written by hand may not be.
    steps = np.diff(ts) < 0
    steps[edges[1:-1] - 1] = False  # a decrease across two series is not disorder
    if steps.any():
        order = np.lexsort((ts, np.repeat(np.arange(len(labels)), counts)))
        out = Columns(labels, counts, ts[order], values[order], keys)
    return out


def _result(doc: Any) -> tuple[str, Any]:
    if not isinstance(doc, Mapping):
        raise FormatError("not a Prometheus API response (expected a JSON object)")
    status = doc.get("status")
    if status != "success":
        detail = doc.get("error") or doc.get("errorType") or f"status {status!r}"
        raise FormatError(f"Prometheus reported a failed query: {detail}")
    data = doc.get("data")
    if not isinstance(data, Mapping) or "resultType" not in data or "result" not in data:
        raise FormatError("missing data.resultType or data.result")
    rtype, result = data["resultType"], data["result"]
    if rtype == "scalar":
        return rtype, result
    if rtype not in ("matrix", "vector"):
        raise ResultTypeError(f"the query returns a {rtype}, not series (a matrix or vector)")
    if not isinstance(result, list):
        raise FormatError("data.result must be a list")
    return rtype, result


def parse_response(doc: Any) -> list[Series]:
    """Parse a Prometheus query API response (matrix, vector or scalar) into series."""
    return parse_columns(doc).series()


def matrix_response(series: Iterable[Series]) -> dict[str, Any]:
    """The document Prometheus returns for a range-vector query over ``series``."""
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": dict(s.labels),
                    "values": [
                        [_format_ts(t), format_value(float(v))]
                        for t, v in zip(s.timestamps, s.values, strict=True)
                    ],
                }
                for s in series
            ],
        },
    }


def _format_ts(t: float) -> float | int:
    # Prometheus writes millisecond-precision timestamps as JSON numbers (1700000000 or 1700000000.5).
    r = round(float(t), 3)
    return int(r) if r.is_integer() else r


def decode_json(body: bytes) -> Any:
    """``orjson.loads`` with the cyclic garbage collector paused: a result of 10,000 series allocates
    hundreds of thousands of lists, and collections triggered by those allocations cost three times the
    parse itself (measured: 65 ms against 217 ms with the standard library for 7 MB; docs/benchmarks.md).
    Raises ``ValueError`` on invalid JSON, as ``json.loads`` does."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson refuses numbers out of range (1e999); the standard library reads them as inf, which
        # the parsers then name precisely.
        return json.loads(body)
    finally:
        if enabled:
            gc.enable()


class PrometheusClient:
    """A small, synchronous client for the query API. Every failure is a one-line ``PrometheusError``."""

    def __init__(self, base_url: str, timeout_s: float = 5.0, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    def _get(self, path: str, params: Sequence[tuple[str, str]] | Mapping[str, str]) -> Any:
        url = f"{self.base_url}{path}"
        try:
            resp = self.session.get(url, params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise PrometheusError(
                f"cannot reach Prometheus at {self.base_url}: {type(exc).__name__}"
            ) from None
        try:
            doc = decode_json(resp.content)
        except ValueError:
            raise PrometheusError(f"Prometheus answered HTTP {resp.status_code} without JSON") from None
        if not isinstance(doc, dict):
            # Every API answer is an object; a list or a bare value comes from something else on that port.
            raise PrometheusError(
                f"Prometheus answered HTTP {resp.status_code} with JSON that is not an API response"
            )
        if resp.status_code != 200 or doc.get("status") != "success":
            detail = doc.get("error")
            raise PrometheusError(
                f"Prometheus answered HTTP {resp.status_code}: {detail or 'error'}",
                status=resp.status_code,
                error_type=str(doc.get("errorType")) if doc.get("errorType") else None,
            )
        return doc

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        """Instant query. With a range selector (``metric[5m]``) this returns the raw samples."""
        return self.query_columns(expr, at).series()

    def query_columns(self, expr: str, at: float | None = None) -> Columns:
        """``query``'s result as ``Columns`` (what the monitor reads every cycle)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return parse_columns(self._get("/api/v1/query", params))

    def query_raw(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """Instant query, returning the API's JSON document unchanged (for capturing training data)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", params)

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        return self.query_range_columns(expr, start, end, step_s).series()

    def query_range_columns(self, expr: str, start: float, end: float, step_s: float) -> Columns:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        return parse_columns(self._get("/api/v1/query_range", params))

    def ready(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/-/ready", timeout=self.timeout_s).status_code == 200
        except requests.RequestException:
            return False
