"""``python monitor.py backtest --config watch.toml --since 24h``: what the monitor would have flagged.

Reads every query's history from Prometheus (``monitor.replay.record``), replays it through the monitor's
own engine (``monitor.backtest.replay``) and writes ``report.json`` and ``report.html`` into ``--out``
(docs/backtest.md). Bad input (no config, a bad time, Prometheus unreachable or refusing a query, no
data) is one line and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from monitor.backtest import INCIDENT_GAP_CYCLES, cycle_times, replay, summarise
from monitor.backtest_report import chart, report_document, report_html, to_json
from monitor.config import MonitorConfig, load_file
from monitor.reader import QueryReader
from monitor.replay import Recording, record
from streamwatch import config as swconfig
from streamwatch.atomic import atomic_write_text
from streamwatch.cli import ArgumentParser
from streamwatch.durations import parse_duration
from streamwatch.errors import ConfigError, UserError
from streamwatch.logs import setup_logging
from streamwatch.promapi import FormatError, PrometheusClient, PrometheusError, ResultTypeError
from streamwatch.ranges import Range, check_ranges
from streamwatch.series import label_text

DEFAULT_SINCE = "24h"
# Long reads (a day of thousands of series) take a while for Prometheus to answer.
READ_TIMEOUT_S = 120.0


@dataclass
class BacktestOptions:
    """The backtest's own numeric flags (``--top``, ``--incident-gap``); the rest is the monitor's file."""

    top: int = 10  # series listed and charted per query, and overall
    incident_gap: float = float(INCIDENT_GAP_CYCLES)  # cycles without a flagged point that end an incident

    RANGES: ClassVar[dict[str, Range]] = {
        "top": Range(1, 1000),
        "incident_gap": Range(1, 10_000, "cycles"),
    }

    def __post_init__(self) -> None:
        check_ranges(self)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="monitor.py backtest",
        description="Replay the history of every [[monitor.queries]] of a --config file through the "
        "monitor's own engine and report what it would have flagged: per query, series, flagged points "
        "and incidents, the top series, a chart of each (report.html) and a JSON summary (report.json). "
        "See docs/backtest.md.",
    )
    p.add_argument("--config", type=Path, help="the monitor's TOML file ([monitor] and [[monitor.queries]])")
    p.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help=f"start: a duration back from now (24h, 90m) or an RFC 3339 time (default {DEFAULT_SINCE})",
    )
    p.add_argument("--until", default="now", help="end: now (default), a duration back from now, or a time")
    p.add_argument(
        "--out", type=Path, help="folder for report.html and report.json (default var/backtest/<stem>)"
    )
    p.add_argument("--prometheus-url", help="Prometheus to read (default: the config's prometheus_url)")
    d = BacktestOptions()
    p.add_argument(
        "--top", type=int, help=f"series listed and charted per query (default {d.top}, 1 to 1000)"
    )
    p.add_argument(
        "--incident-gap",
        type=float,
        help=f"cycles without a flagged point that end a series' incident (default {d.incident_gap:g}, "
        "1 to 10000)",
    )
    p.add_argument("--verbose", action="store_true", help="log the engine's cycles and fits on stderr")
    return p


def parse_time(text: str, now: float, what: str) -> float:
    """Epoch seconds of ``now``, a duration back from ``now`` (``24h``), or an RFC 3339 time (a time
    without a zone is UTC).

    >>> parse_time("1h", 7200.0, "--since"), parse_time("1970-01-01T01:00:00Z", 0.0, "--since")
    (3600.0, 3600.0)
    """
    text = text.strip()
    if text == "now":
        return now
    if text[:1].isdigit() and "-" not in text and ":" not in text:
        return now - parse_duration(text, what)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(
            f"{what}: {text!r} is neither a duration (24h, 90m) nor an RFC 3339 time (2024-05-01T12:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def load_config(args: argparse.Namespace) -> MonitorConfig:
    if args.config is None:
        raise UserError("give --config FILE: the monitor's TOML file with [[monitor.queries]] tables")
    cfg = load_file(args.config, prometheus_url=args.prometheus_url)
    if not cfg.queries:
        raise UserError(f"{args.config}: no [[monitor.queries]] table: nothing to backtest")
    return cfg


def probe(client: PrometheusClient, cfg: MonitorConfig, at: float) -> None:
    """Each query once, as the live monitor does at start: an expression Prometheus refuses is the
    config's error; Prometheus unreachable is the user's to fix before anything is read."""
    for q in cfg.queries:
        try:
            QueryReader(client, q, cfg.max_catchup).probe(at)
        except PrometheusError as exc:
            if exc.bad_query:
                raise ConfigError(f"query {q.name}: Prometheus refuses {q.expr!r}: {exc}") from None
            raise UserError(f"cannot read Prometheus at {cfg.prometheus_url}: {exc}") from None
        except ResultTypeError as exc:
            raise ConfigError(f"query {q.name}: {q.expr!r}: {exc}") from None
        except FormatError as exc:
            raise UserError(f"{cfg.prometheus_url} does not answer like Prometheus: {exc}") from None


def record_all(client: PrometheusClient, cfg: MonitorConfig, since: float, until: float) -> list[Recording]:
    recordings = []
    for q in cfg.queries:
        began = time.perf_counter()
        try:
            rec = record(client, cfg, q, since, until)
        except (PrometheusError, FormatError) as exc:
            raise UserError(
                f"query {q.name}: reading its history from {cfg.prometheus_url} failed: {exc}"
            ) from None
        print(
            f"read {q.name}: {rec.series} series, {rec.points} points in {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        recordings.append(rec)
    return recordings


def when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = swconfig.load(BacktestOptions, overrides={"top": args.top, "incident_gap": args.incident_gap})
    now = time.time()
    since = parse_time(args.since, now, "--since")
    until = parse_time(args.until, now, "--until")
    if until > now:
        raise UserError(f"--until {args.until!r} is in the future ({when(until)})")
    if not since < until:
        raise UserError(f"--since ({when(since)}) must be before --until ({when(until)})")
    cfg = load_config(args)
    out = args.out or Path("var") / "backtest" / args.config.stem
    setup_logging(cfg.log_format)
    if not args.verbose:  # one line per cycle for a day of cycles says nothing here
        logging.getLogger("monitor").setLevel(logging.WARNING)
    client = PrometheusClient(cfg.prometheus_url, timeout_s=READ_TIMEOUT_S)
    probe(client, cfg, until)
    recordings = record_all(client, cfg, since, until)
    if not any(r.series for r in recordings):
        names = ", ".join(q.name for q in cfg.queries)
        raise UserError(
            f"no data: no query ({names}) returned a series between {when(since)} and {when(until)}"
        )
    began = time.perf_counter()
    gap = opts.incident_gap * cfg.interval
    outcomes = replay(cfg, recordings, since, until, gap=gap)
    elapsed = time.perf_counter() - began
    summary = summarise(outcomes, opts.top)
    meta = {
        "config": str(args.config.resolve()),
        "prometheus_url": cfg.prometheus_url,
        "since": since,
        "until": until,
        "interval": cfg.interval,
        "cycles": len(cycle_times(since, until, cfg.interval)),
        "retrain_every": cfg.retrain_every,
        "incident_gap_s": gap,
        "replay_seconds": round(elapsed, 3),
    }
    doc = report_document(meta, summary)
    charts = [chart(o, i) for o in outcomes for i in o.ranking()[: opts.top]]
    write(out, doc, charts)
    print_summary(doc, out)
    return 0


def write(out: Path, doc: dict[str, Any], charts: list[dict[str, Any]]) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "report.json", to_json(doc))
        atomic_write_text(out / "report.html", report_html(doc, charts))
    except OSError as exc:
        raise UserError(f"cannot write the report into {out}: {exc.strerror or exc}") from None


def print_summary(doc: dict[str, Any], out: Path, shown: int = 5) -> None:
    """The figures a user reads first, on stdout; the rest is in the report."""
    print(
        f"backtest {when(doc['since'])} to {when(doc['until'])}: "
        f"{doc['cycles']} cycles of {doc['interval']:g} s"
    )
    for q in doc["queries"]:
        ratio = f" ({q['flagged_ratio'] * 100:.2f} %)" if q["points_scored"] else ""
        print(
            f"  {q['name']} ({q['detector']}): {q['series_flagged']} of {q['series']} series flagged "
            f"{q['points_flagged']} of {q['points_scored']} points{ratio} in {q['incidents']} incidents"
        )
    if doc["top"]:
        print("top series:")
    for n, s in enumerate(doc["top"][:shown], 1):
        labels = "{" + label_text(s["labels"]) + "}"
        print(f"  {n}. {s['query']} {labels}: {s['points_flagged']} flagged, {s['incidents']} incidents")
    print(f"report: {out / 'report.html'} (summary: {out / 'report.json'})")
