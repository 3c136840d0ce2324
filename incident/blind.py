"""Series we cannot see: those of a monitor replica that is down hold their scores until it is back."""

from __future__ import annotations

from collections.abc import Container, Mapping

from incident.severity import SeriesId, SeriesState

Target = tuple[str, str]  # a monitor replica: the (job, instance) Prometheus scrapes it as


def target_of(sid: SeriesId) -> Target:
    labels = dict(sid.labels)
    return labels.get("job", ""), labels.get("instance", "")


class BlindSeries:
    """Which series' scores hold this cycle (``IncidentTracker.hold(ts, only=...)``).

    A series gone from the reading since the last cycle is blind: its monitor replica is down (Prometheus
    marks a failed target's series stale at once), and not seeing its anomalies does not mean it has none.
    It holds until it is back *and* its replica has completed a cycle since (its last success newer than
    the return), or for ``catchup_max_s`` after the return. A series gone longer than ``forget_after_s`` is
    let go, so one gone for good (moved to another replica, no longer watched) decays and resolves.
    """

    def __init__(self, catchup_max_s: float, forget_after_s: float):
        self.catchup_max_s = catchup_max_s
        self.forget_after_s = forget_after_s
        self.spells: dict[SeriesId, tuple[float, float | None]] = {}  # when gone, when back (None: not yet)

    def update(
        self,
        now: float,
        last_ts: float | None,
        series: Mapping[SeriesId, SeriesState],
        seen: Container[SeriesId],
    ) -> None:
        """Note the series gone and back in this reading (``seen``); ``series`` are the tracker's."""
        if last_ts is None:
            return
        for sid, st in series.items():
            # Seen (or held) in the last cycle: a series already let go does not start a new spell.
            if sid not in seen and sid not in self.spells and st.last_seen >= last_ts - 1e-6:
                self.spells[sid] = (now, None)
        for sid, (gone, back) in list(self.spells.items()):
            if sid not in series or (back is None and now - gone > self.forget_after_s):
                del self.spells[sid]
            elif back is None and sid in seen:
                self.spells[sid] = (gone, now)
            elif back is not None and sid not in seen:  # gone again before its replica caught up
                self.spells[sid] = (now, None)

    def waiting(self) -> bool:
        """Are series back whose replica may not have completed a cycle yet (``release`` needs ``done``)?"""
        return any(back is not None for _, back in self.spells.values())

    def release(self, now: float, done: Mapping[Target, float]) -> list[SeriesId]:
        """Let go the series back whose replica completed a cycle since (``done``: its last success) or
        that waited ``catchup_max_s``; return the series that still hold."""
        anyone = max(done.values(), default=float("-inf"))  # for a series without job/instance labels
        for sid, (_, back) in list(self.spells.items()):
            if back is not None and (
                done.get(target_of(sid), anyone) > back or now - back >= self.catchup_max_s
            ):
                del self.spells[sid]
        return list(self.spells)
