"""A time series as a plain value: labels plus two numpy arrays.

Everything that handles metric data (training files, query results, detectors) passes ``Series``
values around, so one process can hold as many series as it watches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    timestamps: np.ndarray  # float64 epoch seconds, ascending
    values: np.ndarray  # float64, same length
    _key: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ts = np.asarray(self.timestamps, dtype=np.float64)
        vs = np.asarray(self.values, dtype=np.float64)
        if ts.shape != vs.shape or ts.ndim != 1:
            raise ValueError(f"timestamps and values differ in shape: {ts.shape} vs {vs.shape}")
        object.__setattr__(self, "timestamps", ts)
        object.__setattr__(self, "values", vs)
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "_key", tuple(sorted(self.labels.items())))

    @property
    def name(self) -> str | None:
        return self.labels.get("__name__")

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """Hashable identity of the series (its sorted label set), as Prometheus identifies series."""
        return self._key

    def __len__(self) -> int:
        return int(self.timestamps.size)

    def to_frame(self) -> pd.DataFrame:
        """Prophet's layout: ``ds`` (naive UTC datetimes) and ``y``."""
        ds = pd.to_datetime(self.timestamps, unit="s")
        return pd.DataFrame({"ds": ds, "y": self.values})

    def since(self, t: float) -> Series:
        """The samples strictly after ``t``."""
        keep = self.timestamps > t
        return Series(self.labels, self.timestamps[keep], self.values[keep])
