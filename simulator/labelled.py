"""``python -m simulator.labelled``: a labelled data set made by the simulator, in the NAB layout.

    python -m simulator.labelled --out DIR [--hours 6] [--seed 0]

Normal traffic for every configured metric (``simulator.wave``: the triangle wave plus its noise, one
value per tick), with anomalies of each kind laid over it by ``simulator.anomalies`` at random times
(seeded). Kinds take turns (each round of four is shuffled) with realistic sizes and durations:

| kind  | size                               | duration    |
|-------|------------------------------------|-------------|
| spike | value x 2.5 to 4                   | 6 to 20 s   |
| shift | +/- 25% to 40% of the range        | 2 to 5 min  |
| drop  | falls to the metric's minimum      | 20 to 90 s  |
| drift | ramp to +/- 40% to 60% of the range | 10 to 20 min |

Anomalies are 8 to 15 minutes apart and none starts in NAB's probationary period. Each is labelled with
the window ``[start, end + 30 s]``: the return to normal when it ends belongs to the same incident.
Writes ``DIR/data/simulator/<metric>.csv`` (``timestamp,value``), ``DIR/labels/combined_windows.json``
(windows, as NAB's), ``DIR/labels/anomalies.json`` (what was injected) and ``DIR/labels/prolonged.json``
(the rows inside anomalies of a minute or more where the value is out of its course by a tenth of the
range, as windows: ``monitor.evaluate --prolonged`` reports the fraction of them flagged), so
``python -m monitor.evaluate --detector NAME DIR/data DIR/labels/combined_windows.json --out RESULTS``
evaluates it like NAB. Timestamps start at 2026-01-01 00:00:00 (UTC, no zone, as NAB writes them).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from simulator import anomalies, wave
from simulator.config import MetricSpec, SimulatorConfig
from streamwatch.atomic import atomic_write_text
from streamwatch.cli import ArgumentParser, run
from streamwatch.errors import UserError

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
CATEGORY = "simulator"
TAIL_S = 30.0  # the return to normal after an anomaly ends belongs to its window
GAP_S = (8 * 60.0, 15 * 60.0)
PROBATION_FRACTION = 0.15  # NAB's: min(15% of rows, 750 rows) are not scored
PROBATION_MAX_ROWS = 750
PROLONGED_S = 60.0  # an anomaly this long or longer is prolonged: it should stay flagged while it lasts
OUT_FRACTION = 0.1  # ... at the rows where it moves the value by this fraction of the metric's range


@dataclass(frozen=True)
class KindPlan:
    duration_s: tuple[float, float]
    size: tuple[float, float]  # factor for spike, fraction of the range otherwise
    signed: bool  # shift and drift go either way


PLANS: dict[str, KindPlan] = {
    "spike": KindPlan((6.0, 20.0), (2.5, 4.0), False),
    "shift": KindPlan((120.0, 300.0), (0.25, 0.40), True),
    "drop": KindPlan((20.0, 90.0), (0.0, 0.0), False),
    "drift": KindPlan((600.0, 1200.0), (0.40, 0.60), True),
}


def schedule(spec: MetricSpec, start: float, end: float, first: float, rng: np.random.Generator) -> list:
    """Anomalies for one metric between ``first`` and ``end``: kinds in shuffled rounds, random gaps."""
    out: list[anomalies.Anomaly] = []
    t = first + rng.uniform(*GAP_S) / 2
    kinds: list[str] = []
    while True:
        if not kinds:
            kinds = list(rng.permutation(anomalies.KINDS))
        kind = kinds.pop()
        plan = PLANS[kind]
        duration = float(rng.uniform(*plan.duration_s))
        if t + duration + TAIL_S > end:
            return out
        size = float(rng.uniform(*plan.size))
        if kind in ("shift", "drift"):
            size *= spec.max - spec.min
        if plan.signed and rng.random() < 0.5:
            size = -size
        out.append(anomalies.Anomaly(f"{spec.name}-{len(out)}", spec.name, kind, size, t, duration))
        t += duration + TAIL_S + float(rng.uniform(*GAP_S))


def lay_over(spec: MetricSpec, ts: np.ndarray, injected: list, clean: np.ndarray) -> np.ndarray:
    return np.array(
        [anomalies.apply_all(float(v), float(t), injected, spec) for v, t in zip(clean, ts, strict=True)]
    )


def prolonged_runs(
    spec: MetricSpec, ts: np.ndarray, injected: list, clean: np.ndarray, values: np.ndarray
) -> list[list[str]]:
    """Runs of rows inside a prolonged anomaly (at least ``PROLONGED_S`` long) where the value is out of
    its normal course by at least ``OUT_FRACTION`` of the metric's range: the rows a detector should keep
    flagging for as long as the anomaly lasts (a drift's first tenth, or a drop that lands where the wave
    already was, is not out yet)."""
    out_rows = np.abs(values - clean) >= OUT_FRACTION * (spec.max - spec.min)
    inside = np.zeros(len(ts), dtype=bool)
    for a in injected:
        if a.duration_s >= PROLONGED_S:
            inside |= (ts >= a.start) & (ts < a.end)
    rows = inside & out_rows
    edges = np.flatnonzero(np.diff(np.concatenate(([0], rows.astype(np.int8), [0]))))
    return [
        [stamp(float(ts[s]), True), stamp(float(ts[e - 1]), True)]
        for s, e in zip(edges[::2], edges[1::2], strict=True)
    ]


def stamp(t: float, frac: bool = False) -> str:
    s = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return s + ".000000" if frac else s


def window_of(a: anomalies.Anomaly, ts: np.ndarray) -> list[str] | None:
    inside = ts[(ts >= a.start) & (ts <= a.end + TAIL_S)]
    return [stamp(float(inside[0]), True), stamp(float(inside[-1]), True)] if inside.size else None


def build(out: Path, hours: float, seed: int, config: SimulatorConfig | None = None) -> dict[str, int]:
    cfg = config or SimulatorConfig(seed=seed)
    step = cfg.tick_s
    ts = START + step * np.arange(math.floor(hours * 3600 / step))
    probation = min(math.floor(PROBATION_FRACTION * ts.size), PROBATION_MAX_ROWS)
    first = float(ts[min(probation, ts.size - 1)])
    rng = np.random.default_rng(seed)
    windows: dict[str, list[list[str]]] = {}
    injected_doc: dict[str, list[dict[str, object]]] = {}
    prolonged: dict[str, list[list[str]]] = {}
    counts: dict[str, int] = {}
    for spec in cfg.metrics:
        injected = schedule(spec, float(ts[0]), float(ts[-1]), first, rng)
        clean = wave.values(spec, ts, seed, cfg.tick_s)
        values = lay_over(spec, ts, injected, clean)
        key = f"{CATEGORY}/{spec.name}.csv"
        prolonged[key] = prolonged_runs(spec, ts, injected, clean, values)
        lines = ["timestamp,value", *(f"{stamp(float(t))},{v:.6g}" for t, v in zip(ts, values, strict=True))]
        atomic_write_text(out / "data" / key, "\n".join(lines) + "\n")
        windows[key] = [w for a in injected if (w := window_of(a, ts)) is not None]
        injected_doc[key] = [{**a.to_json(), "window": window_of(a, ts)} for a in injected]
        counts[spec.name] = len(injected)
    docs = (
        ("combined_windows.json", windows),
        ("anomalies.json", injected_doc),
        ("prolonged.json", prolonged),
    )
    for name, doc in docs:
        atomic_write_text(out / "labels" / name, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(
        prog="python -m simulator.labelled",
        description="Write a labelled data set (simulator traffic + injected anomalies) in the NAB layout.",
    )
    ap.add_argument("--out", type=Path, required=True, help="output directory (data/ and labels/ inside)")
    ap.add_argument("--hours", type=float, default=6.0, help="length of each series (default 6)")
    ap.add_argument("--seed", type=int, default=0, help="seed for noise and anomaly placement (default 0)")
    args = ap.parse_args(argv)
    if not 0.5 <= args.hours <= 24 * 14:
        raise UserError(f"--hours must be between 0.5 and 336, got {args.hours:g}")
    if args.seed < 0:
        raise UserError(f"--seed must not be negative, got {args.seed}")
    counts = build(args.out, args.hours, args.seed)
    kinds = ", ".join(f"{m}: {n} anomalies" for m, n in counts.items())
    print(f"wrote {args.out / 'data'} and {args.out / 'labels' / 'combined_windows.json'} ({kinds})")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="python -m simulator.labelled"))
