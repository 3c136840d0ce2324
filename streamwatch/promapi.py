"""Prometheus' HTTP API: its JSON format (read and written) and a small client for it.

The format is what ``curl '.../api/v1/query?query=energy_price_metric[1h]'`` returns::

    {"status": "success",
     "data": {"resultType": "matrix",
              "result": [{"metric": {"__name__": "energy_price_metric", ...},
                          "values": [[1700000000.0, "512.3"], ...]}]}}

``parse_response`` turns such a document into ``Series``; ``matrix_response`` writes one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import requests

from streamwatch.series import Series


class FormatError(ValueError):
    """A document that is not a Prometheus API response we can use."""


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


def parse_response(doc: Any) -> list[Series]:
    """Parse a Prometheus query API response (matrix, vector or scalar) into series."""
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
        ts, v = _parse_sample(result, "scalar")
        return [Series({}, np.array([ts]), np.array([v]))]
    if rtype not in ("matrix", "vector"):
        raise FormatError(f"unsupported resultType {rtype!r} (expected matrix or vector)")
    if not isinstance(result, list):
        raise FormatError("data.result must be a list")
    out: list[Series] = []
    for i, item in enumerate(result):
        where = f"series {i}"
        if not isinstance(item, Mapping) or not isinstance(item.get("metric", {}), Mapping):
            raise FormatError(f"{where}: expected an object with 'metric'")
        labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
        if rtype == "matrix":
            raw = item.get("values")
            if not isinstance(raw, list):
                raise FormatError(f"{where}: missing 'values' list")
        else:
            raw = [item.get("value")]
        samples = [_parse_sample(p, f"{where} sample {j}") for j, p in enumerate(raw)]
        ts = np.array([s[0] for s in samples], dtype=np.float64)
        vs = np.array([s[1] for s in samples], dtype=np.float64)
        order = np.argsort(ts, kind="stable")
        out.append(Series(labels, ts[order], vs[order]))
    return out


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
            doc = resp.json()
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
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return parse_response(self._get("/api/v1/query", params))

    def query_raw(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """Instant query, returning the API's JSON document unchanged (for capturing training data)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", params)

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        return parse_response(self._get("/api/v1/query_range", params))

    def ready(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/-/ready", timeout=self.timeout_s).status_code == 200
        except requests.RequestException:
            return False
