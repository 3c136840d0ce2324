"""``python monitor.py METRIC TRAIN_FILE PORT``: fit (or load) a model, then score new samples forever."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monitor import forecast, position
from monitor.config import MonitorConfig
from monitor.detectors import registry
from monitor.detectors.base import SeriesDetector
from monitor.detectors.prophet import ModelStore
from monitor.exporter import MonitorMetrics
from monitor.loader import load_training
from monitor.period import NoSeasonError, PeriodError
from monitor.runner import Runner, RunnerSettings
from monitor.source import PrometheusSource
from streamwatch import config as swconfig
from streamwatch.cli import ArgumentParser
from streamwatch.clock import SystemClock
from streamwatch.errors import ConfigError, DataError, UserError
from streamwatch.logs import setup_logging
from streamwatch.net import require_free_port, start_metrics_server
from streamwatch.promapi import FormatError, PrometheusClient, PrometheusError
from streamwatch.series import Series

log = logging.getLogger("monitor")


def build_parser() -> argparse.ArgumentParser:
    d = MonitorConfig()
    p = ArgumentParser(
        prog="monitor.py",
        description="Forecast one Prometheus metric with Prophet; export its band, anomalies, MAE and MAPE. "
        "Or, with no positional arguments and --config FILE holding [[monitor.queries]] tables: watch every "
        "series of any PromQL queries, one detector each (docs/many-series.md).",
    )
    # All three, or none with a --config whose [[monitor.queries]] watch every series (monitor.fleetcli).
    p.add_argument(
        "metric", nargs="?", help="short name of the watched metric, e.g. energy_price (the `metric` label)"
    )
    p.add_argument(
        "train_file", nargs="?", type=Path, help="training data: Prometheus API JSON (matrix/vector) or CSV"
    )
    p.add_argument("port", nargs="?", type=int, help="port to serve /metrics on")
    p.add_argument("--prometheus-url", help=f"Prometheus to read samples from (default {d.prometheus_url})")
    p.add_argument("--query", help="PromQL selector to watch (default <metric>_metric)")
    p.add_argument("--interval", type=float, help=f"seconds between cycles (default {d.interval:g})")
    p.add_argument("--host", help=f"address to serve /metrics on (default {d.host})")
    p.add_argument("--period", type=float, help="season length in seconds (default: detected from the data)")
    p.add_argument(
        "--retrain-every",
        type=float,
        help="refit every N seconds on recent Prometheus data minus flagged samples (default 0: never)",
    )
    p.add_argument("--model-dir", type=Path, help=f"where fitted models are kept (default {d.model_dir})")
    p.add_argument(
        "--shard",
        help="with --config: watch only the series whose label-set hash modulo COUNT is INDEX; INDEX/COUNT, "
        "or auto/COUNT to take INDEX from the host name's trailing -N (a StatefulSet pod)",
    )
    p.add_argument(
        "--port",
        dest="port_option",
        type=int,
        help="with --config: port to serve /metrics on (instead of [monitor] port)",
    )
    p.add_argument("--log-format", choices=("text", "json"), help="log line format on stderr (default text)")
    p.add_argument(
        "--config",
        type=Path,
        help="TOML file with a [monitor] table of the same settings; with [[monitor.queries]] tables and no "
        "positional arguments, every series of each query is watched (docs/many-series.md)",
    )
    p.add_argument(
        "--detector",
        choices=registry.NAMES,
        default="prophet",
        help="anomaly detector (default prophet); the others are streaming detectors warmed on TRAIN_FILE",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="detector parameter, repeatable (e.g. window=20, sma.threshold=3; prophet: k, fourier_order, "
        "period, direction, min_deviation, over the [monitor] settings)",
    )
    return p


def load_config(args: argparse.Namespace) -> MonitorConfig:
    overrides: dict[str, Any] = {
        "prometheus_url": args.prometheus_url,
        "query": args.query,
        "interval": args.interval,
        "host": args.host,
        "period": args.period,
        "retrain_every": args.retrain_every,
        "model_dir": str(args.model_dir) if args.model_dir else None,
        "log_format": args.log_format,
    }
    return swconfig.load(MonitorConfig, args.config, section="monitor", overrides=overrides)


def check_series_name(metric: str, query: str, training: Series, train_file: Path) -> None:
    """The training file must be about the watched metric, when its series says which metric it is.

    An operator who starts the price monitor with the consumption file gets an error, not a model of
    the wrong wave. Files without a ``__name__`` (CSV, expression results) cannot be checked.
    """
    name = training.name
    if name is None:
        return
    accepted = {metric, f"{metric}_metric", query}
    if name not in accepted:
        raise DataError(
            f"{train_file}: holds series {name!r}, not the metric {metric!r} "
            f"(expected {metric}_metric or the --query {query!r})"
        )


def prepare_model_dir(model_dir: Path) -> None:
    """Create the model folder now: a folder that cannot hold models must not surface after the fit."""
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"model folder {model_dir} is not a folder (--model-dir)") from None
    except OSError as exc:
        raise UserError(f"cannot create the model folder {model_dir}: {exc.strerror or exc}") from None
    if not os.access(model_dir, os.W_OK | os.X_OK):
        raise UserError(f"cannot write models into {model_dir}: permission denied (--model-dir)")


def check_query(source: PrometheusSource, url: str) -> None:
    """Ask Prometheus once whether it accepts the query: a refused one is a config error (exit 2), where
    it would otherwise look like an outage forever. Prometheus down at start is an outage: the loop
    retries it with backoff (and logs it once)."""
    try:
        source.probe(time.time())
    except PrometheusError as exc:
        if exc.bad_query:
            raise ConfigError(
                f"Prometheus at {url} refuses the query {source.query!r} ({exc}); the monitor reads raw "
                f"samples as {source.expression(1.0)}, so --query must be a series selector"
            ) from None
    except FormatError:
        pass  # an answer we cannot parse is counted and retried by the loop, as ever


def detector_params(cfg: MonitorConfig, name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """The detector's parameters: ``--param`` pairs over, for a detector fitted on training data, the
    ``k``, ``fourier_order`` and ``period`` settings of the ``[monitor]`` table. Checked here, so a bad
    one is reported before the training file is read."""
    raw: dict[str, Any] = dict(registry.parse_params(pairs))
    if registry.needs_fit(name):
        raw = {"k": cfg.k, "fourier_order": cfg.fourier_order, "period": cfg.period or 0.0, **raw}
    registry.make_params(name, raw)
    return raw


def effective_params(detector: SeriesDetector, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with what the detector settled on (the period Prophet detected): a refit on an hour of
    live data keeps the season the training file showed instead of wandering to another one."""
    p = getattr(detector, "p", None)
    chosen = dataclasses.asdict(p) if dataclasses.is_dataclass(p) and not isinstance(p, type) else {}
    return {**params, **chosen}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.metric is None:
        from monitor import fleetcli

        return fleetcli.main(args)
    if args.shard is not None or args.port_option is not None:
        raise UserError(
            "--shard and --port go with --config and [[monitor.queries]], not METRIC TRAIN_FILE PORT"
        )
    if args.train_file is None or args.port is None:
        raise UserError("give all of METRIC TRAIN_FILE PORT (or none, with --config and [[monitor.queries]])")
    cfg = load_config(args)
    setup_logging(cfg.log_format)
    logging.getLogger("prophet.plot").disabled = True  # "Importing plotly failed": we never plot
    if not 0 < args.port < 65536:
        raise UserError(f"port must be between 1 and 65535, got {args.port}")
    metric = args.metric
    query = cfg.query_for(metric)
    # Cheap checks first: a busy port or a bad file must not wait for a fit.
    require_free_port(cfg.host, args.port, "monitor")
    prepare_model_dir(cfg.model_dir)  # fitted models (Prophet) and every detector's read position
    params = detector_params(cfg, args.detector, args.param)
    training = load_training(args.train_file, cfg.min_train_points, cfg.max_train_points)
    check_series_name(metric, query, training, args.train_file)
    metrics = MonitorMetrics(metric)
    position_file = position.position_path(cfg.model_dir, metric)
    source = PrometheusSource(
        PrometheusClient(cfg.prometheus_url),
        query,
        first_window=cfg.interval,
        max_window=cfg.max_catchup,
        last_ts=position.load(position_file, query),
        on_skipped=metrics.record_skipped,
    )
    check_query(source, cfg.prometheus_url)
    store = ModelStore(cfg.model_dir, metric, on_save_error=lambda: metrics.record_save_error("model"))
    try:
        detector = registry.build(
            args.detector, params, training.timestamps, training.values, store=store, horizon=cfg.horizon
        )
    except NoSeasonError as exc:
        raise DataError(
            f"{args.train_file}: {exc}; pass --period if the data has a season you know, or use a detector "
            "that needs none (--detector ema, sma, iqr)"
        ) from None
    except forecast.UselessBandError as exc:
        hint = "leave out --period to detect the season" if cfg.period is not None else "use --detector ema"
        raise DataError(f"{args.train_file}: {exc}; {hint}") from None
    except PeriodError as exc:
        raise DataError(f"{args.train_file}: {exc}") from None
    fit_seconds = getattr(detector, "fit_seconds", None)
    if fit_seconds is not None:
        metrics.record_fit(fit_seconds)
    server = start_metrics_server(metrics.registry, cfg.host, args.port, "monitor")
    clock = SystemClock()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: clock.stop())
    refit = effective_params(detector, params)
    runner = Runner(
        detector,
        source,
        metrics,
        clock,
        RunnerSettings(
            interval=cfg.interval,
            retrain_every=cfg.retrain_every,
            retrain_window=cfg.retrain_window,
            backoff_max=cfg.backoff_max,
            min_train_points=cfg.min_train_points,
        ),
        rebuild=lambda s: registry.build(args.detector, refit, s.timestamps, s.values, horizon=cfg.horizon),
        prefer=training.labels,
        save_position=lambda: position.save(position_file, query, source.last_ts),
    )
    log.info("watching %s every %g s, serving http://%s:%d/metrics", query, cfg.interval, cfg.host, args.port)
    try:
        runner.run()
    finally:
        server[0].shutdown()
    log.info("stopped")
    return 0
