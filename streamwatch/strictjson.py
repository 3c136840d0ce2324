"""JSON that is JSON: no NaN or Infinity either way, numbers that fit a float, nesting that cannot recurse.

Python's ``json`` reads ``NaN``, ``Infinity`` and ``1e999`` (as inf) and recurses once per bracket, so
100,000 brackets are a ``RecursionError``, not a ``ValueError``. Every reader of a file or body a user
can hand us goes through ``loads``: each of those is one ``ValueError``.

>>> loads('{"a": [1, 2.5]}')
{'a': [1, 2.5]}
>>> loads('[1e999]')
Traceback (most recent call last):
ValueError: 1e999 is not a finite number
>>> loads('[' * 100 + ']' * 100)
Traceback (most recent call last):
ValueError: JSON nests 100 deep, over the limit of 64
"""

from __future__ import annotations

import json
import math
from typing import Any

# Deeper than any file or body Streamwatch reads (a Prometheus answer nests 5 deep), far below recursion.
MAX_DEPTH = 64


def json_depth(raw: bytes | str) -> int:
    """How deep ``[``/``{`` nest in ``raw`` outside strings (a scan, never recursion: any size is safe)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number in JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``raw``; anything that is not strict, finite, shallow-enough JSON is a ``ValueError``
    (undecodable bytes included)."""
    # Fewer brackets than the limit cannot nest past it: skip the byte-by-byte scan (most documents).
    brackets = (
        raw.count(b"[") + raw.count(b"{") if isinstance(raw, bytes) else raw.count("[") + raw.count("{")
    )
    if brackets > max_depth:
        depth = json_depth(raw)
        if depth > max_depth:
            raise ValueError(f"JSON nests {depth} deep, over the limit of {max_depth}")
    try:
        return json.loads(raw, parse_constant=_constant, parse_float=_float)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc.reason}") from None
    except RecursionError:  # a limit above the interpreter's: still one ValueError
        raise ValueError("JSON nests too deep") from None


def dumps(doc: Any) -> str:
    """Compact JSON, with NaN or Infinity refused (``ValueError``) rather than written as non-JSON."""
    return json.dumps(doc, allow_nan=False, separators=(",", ":"))


def finite(doc: Any) -> Any:
    """``doc`` with every non-finite float replaced by None: what a writer that must not fail stores.

    >>> finite({"a": [1.0, float("inf")], "b": float("nan")})
    {'a': [1.0, None], 'b': None}
    """
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [finite(v) for v in doc]
    return doc
