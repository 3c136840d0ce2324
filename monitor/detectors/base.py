"""The detector interface: a columnar ``Detector`` holds many series as rows of arrays.

Streaming order is the contract: a point is scored against what its series learnt *before* it, then
learnt, so no detector ever sees a value before scoring it. ``Detector.update`` does that for a whole
query's new points at once (a ``(rows, T)`` matrix); with one row, ``update_one`` / ``update_many`` are
the one-series forms (tests, the evaluation), and ``score_one`` / ``score_many`` score without learning.
Scores are on the common scale of ``monitor.detectors.scores`` (``> 1``: anomalous). What a detector may
learn of a sample is one rule for all of them (``monitor.detectors.learning``).

A new detector subclasses :class:`Detector` and writes a ``Params`` dataclass (a ``DetectorOptions``),
``fresh(n)`` and ``_step`` (one time column over all rows), plus a registry line. A detector built of
others (the ensemble, the normalising wrapper) lists them in ``children``: their state is part of its own.

A model kept as one Python object per series (``iforest``'s scikit-learn trees) subclasses
:class:`OnlineDetector` and reaches the monitor through :class:`PerSeries`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from monitor.detectors import learning
from monitor.detectors.options import DetectorOptions, finish
from monitor.detectors.scores import Score, Scores

State = dict[str, np.ndarray]
"""A detector's state: named arrays whose axis 0 is the row (one row per watched series)."""

SEP = "/"
"""Separates a child detector's name from its arrays' names in its parent's state (``sma/mean``)."""


class Detector:
    """A detector for many series at once: its state is arrays with one row per series (columnar).

    The monitor keeps one ``Detector`` per query and scores every series' new points in one call:
    ``update(x, t)`` takes ``(rows, T)`` matrices of values and timestamps (NaN: no sample in that cell,
    as rows bring different numbers of points) and returns ``Scores`` of the same shape. A point is
    scored against what its row learnt before it, then learnt (streaming order, as ``update_one``).
    Only sane values are learnt (``learning.sane``): NaN is no sample (every field NaN); +/-Inf and
    absurd values (``learning.ABSURD``) score +Inf against the row's band and are never learnt.

    Subclasses write a ``Params`` dataclass (a ``DetectorOptions``), ``fresh(n)`` (the state of ``n`` new
    rows) and ``_step(x, t, ok)``, which scores one time column over all rows and learns it where ``ok``
    (rows without a sane sample in the column keep their state; their ``x`` is NaN), passing what it
    learns through ``learnable``; or override ``_update`` for a whole matrix at once. The base does the
    rest: row bookkeeping (``resize``, ``reset``, ``take``, ``put``), scoring without learning
    (``score``), the count of points learnt per row (``state["n"]``) and ``warming()``, a snapshot of
    plain arrays (``arrays`` / ``restore``: nothing that can run code), and the one-series conveniences
    ``update_one`` / ``update_many`` / ``score_one`` / ``score_many`` for a one-row detector.

    >>> class Last(Detector):  # expects the previous value, flags a change of more than 10
    ...     def fresh(self, n):
    ...         return {"last": np.full(n, np.nan)}
    ...     def _step(self, x, t, ok):
    ...         last = self.state["last"]
    ...         s = self.finish(x, last, last - 10.0, last + 10.0)
    ...         np.copyto(last, x, where=ok)
    ...         return s
    >>> d = Last(rows=2)
    >>> d.update(np.array([[1.0, 5.0, 30.0], [2.0, np.nan, 2.0]]), np.zeros((2, 3))).score.tolist()
    [[0.0, 0.4, 2.5], [0.0, nan, 0.0]]
    >>> d.state["n"].tolist()  # points learnt per row
    [3, 2]
    """

    Params: ClassVar[type] = DetectorOptions

    def __init__(self, params: Any = None, rows: int = 1) -> None:
        self.p = params if params is not None else self.Params()
        # Children come with their own rows and state (a fitted band stays fitted); this one's are fresh.
        self.children: dict[str, Detector] = self._children(rows)
        self._own: State = {"n": np.zeros(rows, dtype=np.int64), **self.fresh(rows)}

    # --- what a subclass writes -------------------------------------------------------------------

    def fresh(self, n: int) -> State:
        """The state of ``n`` rows that have learnt nothing (this detector's own arrays)."""
        return {}

    def _children(self, rows: int) -> dict[str, Detector]:
        """The detectors this one is built of, by name, with ``rows`` rows each (their arrays join its
        state as ``name/array``)."""
        return {}

    def _step(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        """Score column ``x`` (one value per row, at times ``t``), then learn it where ``ok``."""
        raise NotImplementedError

    @property
    def warmup(self) -> int:
        """Points a row must learn before it scores (0: from its first point); the monitor reads at least
        this much history for a new series, so it is ready at its first live point."""
        return 0

    # --- state: own arrays and the children's -----------------------------------------------------

    @property
    def state(self) -> State:
        if not self.children:
            return self._own
        out = dict(self._own)
        for name, child in self.children.items():
            out.update({f"{name}{SEP}{k}": v for k, v in child.state.items()})
        return out

    @state.setter
    def state(self, value: State) -> None:
        own: State = {}
        parts: dict[str, State] = {name: {} for name in self.children}
        for k, v in value.items():
            name, sep, rest = k.partition(SEP)
            if sep and name in parts:
                parts[name][rest] = v
            else:
                own[k] = v
        self._own = own
        for name, child in self.children.items():
            child.state = parts[name]

    # --- scoring ----------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        return int(self._own["n"].shape[0])

    def finish(self, x: np.ndarray, expected: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> Scores:
        """Scores from a band, with this detector's ``direction`` and ``min_deviation`` applied."""
        return finish(self.p, x, expected, lower, upper)

    def learnable(self, x: np.ndarray, s: Scores) -> np.ndarray:
        """What to learn of ``x`` scored as ``s``: capped by its band (``learning.learnable``)."""
        return learning.learnable(x, s.expected, s.lower, s.upper)

    def update(self, x: np.ndarray, t: np.ndarray) -> Scores:
        """Score, then learn, a ``(rows, T)`` matrix of points in time order (or one ``(rows,)`` column)."""
        x = np.asarray(x, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        column = x.ndim == 1
        if column:
            x, t = x[:, None], t[:, None]
        if x.ndim != 2 or x.shape[0] != self.rows or t.shape != x.shape:
            raise ValueError(f"update takes ({self.rows}, T) values and times, got {x.shape} and {t.shape}")
        out = self._update(x, t)
        if column:
            return type(out)(**{f.name: getattr(out, f.name)[:, 0] for f in dataclasses.fields(out)})
        return out

    def _advance(self, x: np.ndarray, t: np.ndarray, ok: np.ndarray) -> Scores:
        """One column: ``_step``, then count what was learnt (a parent advances its children with this)."""
        s = self._step(x, t, ok)
        self._own["n"] += ok
        return s

    def _update(self, x: np.ndarray, t: np.ndarray) -> Scores:
        present = ~np.isnan(x)
        ok_all = learning.sane(x)
        out: dict[str, np.ndarray] = {}
        kind: type[Scores] = Scores
        for j in range(x.shape[1]):
            if not present[:, j].any():
                continue
            ok = ok_all[:, j]
            s = self._advance(np.where(ok, x[:, j], np.nan), t[:, j], ok)
            if not out:
                kind = type(s)
                out = {f.name: _blank(x.shape, getattr(s, f.name)) for f in dataclasses.fields(s)}
            for name, col in out.items():
                col[:, j] = getattr(s, name)
        if not out:
            out = {f: np.full(x.shape, np.nan) for f in Scores.FIELDS}
        for col in out.values():
            col[~present] = np.nan if col.dtype.kind == "f" else 0
        # As far from any band as a value can be, and never learnt: +/-Inf and absurd values.
        out["score"][present & ~ok_all] = np.inf
        return kind(**out)

    def score(self, x: np.ndarray, t: np.ndarray) -> Scores:
        """Score every point against what the rows have learnt so far, learning none of them (each time
        column against the same state): what the current model says of a stretch of history."""
        x = np.asarray(x, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        if x.ndim == 1:
            return self.copy().update(x, t)
        cols = [self.copy().update(x[:, j], t[:, j]) for j in range(x.shape[1])]
        kind = type(cols[0]) if cols else Scores
        names = [f.name for f in dataclasses.fields(kind)]
        if not cols:
            return kind(**{f: np.full(x.shape, np.nan) for f in names})
        return kind(**{f: np.stack([getattr(c, f) for c in cols], axis=1) for f in names})

    def warming(self) -> np.ndarray:
        """Per row: True while it has learnt fewer than ``warmup`` points."""
        return self.state["n"] < self.warmup

    # --- rows -------------------------------------------------------------------------------------

    def _new_state(self, n: int) -> State:
        state: State = {"n": np.zeros(n, dtype=np.int64), **self.fresh(n)}
        for name, child in self.children.items():
            state.update({f"{name}{SEP}{k}": v for k, v in child._new_state(n).items()})
        return state

    def resize(self, n: int) -> None:
        """Keep the first ``n`` rows (growing with fresh rows, or cutting the last ones)."""
        have = self.rows
        if n > have:
            more = self._new_state(n - have)
            self.state = {k: np.concatenate([v, more[k]]) for k, v in self.state.items()}
        elif n < have:
            self.state = {k: v[:n].copy() for k, v in self.state.items()}

    def reset(self, rows: np.ndarray | Sequence[int]) -> None:
        """Forget what ``rows`` learnt (a slot given to a new series)."""
        rows = np.asarray(rows, dtype=np.intp)
        new = self._new_state(rows.size)
        for k, v in self.state.items():
            v[rows] = new[k]

    def take(self, rows: np.ndarray | Sequence[int]) -> Self:
        """A detector of ``rows`` only (a copy): a per-series view, a subset to save."""
        rows = np.asarray(rows, dtype=np.intp)
        out = self.copy_empty()
        out.state = {k: v[rows].copy() for k, v in self.state.items()}
        return out

    def put(self, rows: np.ndarray | Sequence[int], other: Detector) -> None:
        """Write ``other``'s rows into ``rows`` (a series trained apart, installed in its slot)."""
        rows = np.asarray(rows, dtype=np.intp)
        theirs = other.state
        for k, v in self.state.items():
            v[rows] = theirs[k]

    def copy(self) -> Self:
        out = self.copy_empty()
        out.state = {k: v.copy() for k, v in self.state.items()}
        return out

    def copy_empty(self) -> Self:
        """A detector with the same class and parameters and no rows."""
        return type(self)(self.p, rows=0)

    # --- snapshot ---------------------------------------------------------------------------------

    def arrays(self) -> State:
        """The state as plain arrays (save with ``np.savez``; load with ``allow_pickle=False``)."""
        return dict(self.state)

    def restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Take a saved state, checked against what this detector keeps: same names, kinds and row
        shapes, one row count, so a foreign or damaged snapshot raises ``ValueError`` (one line)."""
        want = self._new_state(0)
        if set(arrays) != set(want):
            raise ValueError(f"state holds {sorted(arrays)}, expected {sorted(want)}")
        rows = {int(np.shape(a)[0]) if np.ndim(a) else -1 for a in arrays.values()}
        if len(rows) != 1 or -1 in rows:
            raise ValueError("state arrays disagree on the number of rows")
        state: State = {}
        for k, w in want.items():
            a = np.asarray(arrays[k])
            if a.shape[1:] != w.shape[1:] or a.dtype.kind != w.dtype.kind:
                raise ValueError(
                    f"state {k!r}: {a.dtype}{a.shape} does not fit {w.dtype}(rows, *{w.shape[1:]})"
                )
            state[k] = a.astype(w.dtype, copy=True)
        self.state = state

    # --- one series (a detector with one row) -----------------------------------------------------

    def _one(self) -> None:
        if self.rows != 1:
            raise ValueError(f"the one-series methods need a one-row detector, this one has {self.rows}")

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        """``update_one`` over a batch of one series, in streaming order."""
        self._one()
        s = self.update(np.asarray(xs, dtype=np.float64)[None, :], np.asarray(ts, dtype=np.float64)[None, :])
        return _row(s)

    def score_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        """Each value of a one-series batch scored against the current state, none learnt."""
        self._one()
        s = self.score(np.asarray(xs, dtype=np.float64)[None, :], np.asarray(ts, dtype=np.float64)[None, :])
        return _row(s)

    def update_one(self, x: float, t: float) -> Score:
        return self.update_many(np.array([x]), np.array([t])).at(0)

    def score_one(self, x: float, t: float) -> Score:
        return self.score_many(np.array([x]), np.array([t])).at(0)

    def learn_one(self, x: float, t: float) -> None:
        self.update_one(x, t)


def _blank(shape: tuple[int, ...], like: np.ndarray) -> np.ndarray:
    """An output column block for a Scores field: NaN for floats, 0 for counts and signs."""
    like = np.asarray(like)
    return np.full(shape, np.nan) if like.dtype.kind == "f" else np.zeros(shape, dtype=like.dtype)


def _row(s: Scores) -> Scores:
    return type(s)(**{f.name: getattr(s, f.name)[0] for f in dataclasses.fields(s)})


class OnlineDetector:
    """Base for a one-series model kept as a Python object (``iforest``): subclasses write ``score_one``
    and ``learn_one``; the batch forms are loops over them (a subclass may replace ``update_many`` with a
    faster one). It reaches the monitor, the registry and the evaluation through :class:`PerSeries`.

    >>> class Above(OnlineDetector):  # flags values more than 10 above the previous one
    ...     last = float("nan")
    ...     def score_one(self, x, t):
    ...         return Score(max(x - self.last, 0.0) / 10.0 if self.last == self.last else 0.0)
    ...     def learn_one(self, x, t):
    ...         self.last = x
    >>> Above().update_many(np.array([1.0, 5.0, 30.0]), np.array([0.0, 1.0, 2.0])).score.tolist()
    [0.0, 0.4, 2.5]
    """

    def score_one(self, x: float, t: float) -> Score:
        raise NotImplementedError

    def learn_one(self, x: float, t: float) -> None:
        raise NotImplementedError

    def update_one(self, x: float, t: float) -> Score:
        s = self.score_one(x, t)
        self.learn_one(x, t)
        return s

    def update_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        return Scores.of([self.update_one(float(x), float(t)) for x, t in zip(xs, ts, strict=True)])

    def score_many(self, xs: np.ndarray, ts: np.ndarray) -> Scores:
        return Scores.of([self.score_one(float(x), float(t)) for x, t in zip(xs, ts, strict=True)])


class PerSeries(Detector):
    """A columnar face over one-series detectors kept in a list, for a model that cannot be written over
    arrays (``iforest``'s scikit-learn trees): correct, but one Python call per series per cycle, and no
    snapshot (``arrays`` raises, so such a query is retrained at start). Absurd values never reach a
    member (``learning.sane``, as for every detector); members cap nothing else.

    >>> d = PerSeries(OnlineDetector, rows=0)
    >>> d.rows
    0
    """

    def __init__(
        self,
        factory: Callable[[], OnlineDetector],
        rows: int = 1,
        params: Any = None,
        warmup: int = 0,
    ) -> None:
        self.factory = factory
        self.members: list[OnlineDetector] = [factory() for _ in range(rows)]
        self._warmup = warmup
        if params is None:
            params = getattr(self.members[0] if rows else factory(), "p", None)
        super().__init__(params, rows)

    @property
    def warmup(self) -> int:
        return self._warmup

    def _each(self, x: np.ndarray, t: np.ndarray, learn: bool) -> tuple[Scores, np.ndarray]:
        """Each member's row through ``update_many`` (``learn``) or ``score_many``: sane values only,
        +inf where an absurd value was, NaN where there is no sample; and where values were sane."""
        cols = [np.full(x.shape, np.nan) for _ in range(4)]
        ok_all = learning.sane(x)
        for i, member in enumerate(self.members):
            ok = ok_all[i]
            if ok.any():
                call = member.update_many if learn else member.score_many
                s = call(x[i, ok], t[i, ok])
                for c, v in zip(cols, (s.score, s.expected, s.lower, s.upper), strict=True):
                    c[i, ok] = v
        cols[0][~np.isnan(x) & ~ok_all] = np.inf
        return Scores(*cols), ok_all

    def _update(self, x: np.ndarray, t: np.ndarray) -> Scores:
        scores, ok = self._each(x, t, learn=True)
        self._own["n"] += ok.sum(axis=1)
        return scores

    def score(self, x: np.ndarray, t: np.ndarray) -> Scores:
        # Each member scores its row's points without learning: no copy of a model per time column.
        x = np.asarray(x, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        column = x.ndim == 1
        x2, t2 = (x[:, None], t[:, None]) if column else (x, t)
        s, _ = self._each(x2, t2, learn=False)
        return Scores(*(c[:, 0] if column else c for c in (s.score, s.expected, s.lower, s.upper)))

    def resize(self, n: int) -> None:
        self.members = self.members[:n] + [self.factory() for _ in range(n - len(self.members))]
        super().resize(n)

    def reset(self, rows: np.ndarray | Sequence[int]) -> None:
        for r in np.asarray(rows, dtype=np.intp).tolist():
            self.members[r] = self.factory()
        super().reset(rows)

    def take(self, rows: np.ndarray | Sequence[int]) -> Self:
        out = super().take(rows)
        out.members = [copy.deepcopy(self.members[r]) for r in np.asarray(rows, dtype=np.intp).tolist()]
        return out

    def put(self, rows: np.ndarray | Sequence[int], other: Detector) -> None:
        if not isinstance(other, PerSeries):
            raise TypeError("a per-series detector takes rows from another per-series detector only")
        for r, m in zip(np.asarray(rows, dtype=np.intp).tolist(), other.members, strict=True):
            self.members[r] = copy.deepcopy(m)  # ``other`` may go on learning (a seed kept for re-use)
        super().put(rows, other)

    def copy(self) -> Self:
        out = super().copy()
        out.members = copy.deepcopy(self.members)
        return out

    def copy_empty(self) -> Self:
        return type(self)(self.factory, rows=0, params=self.p, warmup=self._warmup)

    def arrays(self) -> State:
        raise ValueError("this detector keeps one model object per series and has no array snapshot")
