"""Which monitor replica watches which series: a stable hash of the label set, modulo the replica count.

The contract (tests/test_shard.py pins it with fixed vectors; changing it moves series between replicas
and so retrains them, so it is versioned by those vectors):

1. **Canonical encoding** of a label set: the labels sorted by name, each written ``name="value"``
   with the value escaped as in Prometheus' text format (``\\`` -> ``\\\\``, ``"`` -> ``\\"``, newline
   -> ``\\n``), joined by ``,``, UTF-8 encoded. ``{b="2", a="1"}`` encodes as ``a="1",b="2"``. Label
   names cannot hold ``=``, ``"`` or ``,``, and values cannot hold an unescaped ``"``, so two different
   label sets never share an encoding. Every label counts, ``__name__`` included when present.
2. **Hash**: the first 8 bytes of the SHA-256 digest of that encoding, read as an unsigned big-endian
   64-bit integer (:func:`series_hash`).
3. **Shard**: a series belongs to replica ``INDEX`` of ``COUNT`` when ``series_hash(labels) % COUNT ==
   INDEX`` (:func:`belongs`).

Python's built-in ``hash()`` is salted per process, so it would give every replica a different split;
SHA-256 is the same in every process, Python version and machine.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from streamwatch.errors import UserError

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
# A StatefulSet's pods are NAME-0, NAME-1, ...; the host name may carry a domain after the first dot.
_ORDINAL = re.compile(r"-(\d+)$")
_SPEC = re.compile(r"^\s*(auto|\d+)\s*/\s*(\d+)\s*$")


def canonical_labels(labels: Mapping[str, str]) -> bytes:
    """The label set's canonical encoding (step 1 of the contract above)."""
    return ",".join(f'{name}="{str(labels[name]).translate(_ESCAPES)}"' for name in sorted(labels)).encode(
        "utf-8"
    )


def series_hash(labels: Mapping[str, str]) -> int:
    """A 64-bit hash of the label set, the same in every process and on every machine."""
    return int.from_bytes(hashlib.sha256(canonical_labels(labels)).digest()[:8], "big")


def belongs(labels: Mapping[str, str], index: int, count: int) -> bool:
    """True when replica ``index`` of ``count`` watches the series with these labels."""
    return series_hash(labels) % count == index


def hostname_ordinal(hostname: str) -> int:
    """The trailing ordinal of a host name (``streamwatch-monitor-2`` -> 2), as a StatefulSet names pods."""
    short = hostname.split(".", 1)[0]
    m = _ORDINAL.search(short)
    if m is None:
        raise UserError(
            f"--shard auto/COUNT: host name {hostname!r} does not end in -N "
            "(run as a StatefulSet pod, or give INDEX/COUNT)"
        )
    return int(m.group(1))


def parse_shard(spec: str, hostname: str) -> tuple[int, int]:
    """``"INDEX/COUNT"`` or ``"auto/COUNT"`` (INDEX from ``hostname``) as ``(index, count)``.

    Anything else, a COUNT below 1 or an INDEX outside ``0..COUNT-1``, is a ``UserError`` of one line.
    """
    m = _SPEC.match(spec)
    if m is None:
        raise UserError(f"shard must be INDEX/COUNT or auto/COUNT (e.g. 0/3), got {spec!r}")
    count = int(m.group(2))
    if count < 1:
        raise UserError(f"shard {spec!r}: COUNT must be at least 1")
    index = hostname_ordinal(hostname) if m.group(1) == "auto" else int(m.group(1))
    if not 0 <= index < count:
        where = f" (from host name {hostname!r})" if m.group(1) == "auto" else ""
        raise UserError(f"shard {spec!r}: INDEX {index}{where} must be between 0 and {count - 1}")
    return index, count
