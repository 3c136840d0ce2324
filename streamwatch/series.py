r"""A time series as a plain value: labels plus two numpy arrays; its key and its labels as text.

Everything that handles metric data (training files, query results, detectors) passes ``Series``
values around, so one process can hold as many series as it watches. A series is identified by its
``SeriesKey`` (``Series.key``, or ``series_key(labels)``), and its labels are written as Prometheus
writes them by ``label_text``.

>>> s = Series({"job": "node", "cpu": "1"}, [0.0], [2.0])
>>> s.key == series_key({"cpu": "1", "job": "node"})
True
>>> label_text(s.key, drop=("job",))
'cpu="1"'
>>> print(label_text({"msg": 'say "hi"'}))
msg="say \"hi\""
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SeriesKey = tuple[tuple[str, str], ...]
"""A series' identity: its whole label set as (name, value) pairs sorted by name, as Prometheus
identifies series. Hashable; the one key every package uses for a series."""


def series_key(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> SeriesKey:
    """The key of the series with ``labels`` (a mapping, or (name, value) pairs in any order)."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


def text_keys(labels: Iterable[Mapping[str, str]]) -> list[SeriesKey]:
    """``series_key`` of many label maps already known to hold only text (a parsed Prometheus answer):
    one sort each and no conversions, for the 10,000 keys a monitor makes every cycle."""
    return [tuple(sorted(lab.items())) for lab in labels]


_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def label_text(labels: Mapping[str, str] | Iterable[tuple[str, str]], drop: Collection[str] = ()) -> str:
    """``k="v"`` pairs joined by commas, values escaped as in Prometheus' text format and selectors, in
    the order given (a ``SeriesKey`` is sorted), without the labels named in ``drop``."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return ",".join(f'{k}="{str(v).translate(_ESCAPES)}"' for k, v in pairs if k not in drop)


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    timestamps: np.ndarray  # float64 epoch seconds, ascending
    values: np.ndarray  # float64, same length
    _key: SeriesKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ts = np.asarray(self.timestamps, dtype=np.float64)
        vs = np.asarray(self.values, dtype=np.float64)
        if ts.shape != vs.shape or ts.ndim != 1:
            raise ValueError(f"timestamps and values differ in shape: {ts.shape} vs {vs.shape}")
        object.__setattr__(self, "timestamps", ts)
        object.__setattr__(self, "values", vs)
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "_key", series_key(self.labels))

    @property
    def name(self) -> str | None:
        return self.labels.get("__name__")

    @property
    def key(self) -> SeriesKey:
        """Hashable identity of the series (its sorted label set), as Prometheus identifies series."""
        return self._key

    def __len__(self) -> int:
        return int(self.timestamps.size)

    def to_frame(self) -> pd.DataFrame:
        """Prophet's layout: ``ds`` (naive UTC datetimes) and ``y``."""
        import pandas as pd  # here, not at import: a process watching no Prophet query never loads pandas

        ds = pd.to_datetime(self.timestamps, unit="s")
        return pd.DataFrame({"ds": ds, "y": self.values})

    def since(self, t: float) -> Series:
        """The samples strictly after ``t``."""
        keep = self.timestamps > t
        return Series(self.labels, self.timestamps[keep], self.values[keep])
