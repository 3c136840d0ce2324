"""``python monitor.py METRIC TRAIN_FILE PORT``: fit (or load) a model, then score new samples forever."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config import DEFAULT_MODEL_DIR, MonitorConfig, QueryConfig, load_file, model_dir_for
from monitor.detectors import registry
from monitor.engine import Engine, Seed
from monitor.export import MonitorMetrics
from monitor.forecast import UselessBandError, check_band_can_flag
from monitor.loader import load_training
from monitor.period import PeriodError, check_period, sampling_step
from monitor.prophet_profile import fit_profile
from monitor.shard import belongs, parse_shard
from streamwatch import config as swconfig
from streamwatch.cli import ArgumentParser
from streamwatch.clock import SystemClock
from streamwatch.errors import DataError, UserError
from streamwatch.logs import setup_logging
from streamwatch.net import require_free_port, start_metrics_server
from streamwatch.promapi import PrometheusClient
from streamwatch.series import Series

log = logging.getLogger("monitor")


def build_parser() -> argparse.ArgumentParser:
    d = MonitorConfig()
    p = ArgumentParser(
        prog="monitor.py",
        description="Forecast one Prometheus metric with Prophet; export its band, anomalies, MAE and MAPE. "
        "Or, with no positional arguments and --config FILE holding [[monitor.queries]] tables: watch every "
        "series of any PromQL queries, one detector each (docs/many-series.md). "
        "`monitor.py backtest --config FILE --since 24h` replays history through those queries first "
        '(docs/backtest.md). `monitor.py presets` lists ready-made queries (preset = "node_exporter" in '
        "[monitor]; docs/watch.md).",
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
    p.add_argument(
        "--model-dir",
        type=Path,
        help=f"where models and snapshots are kept (default {DEFAULT_MODEL_DIR}; with --config, a folder of "
        "its own in it, named after the config file, see docs/many-series.md)",
    )
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
    cfg = swconfig.load(MonitorConfig, args.config, section="monitor", overrides=overrides)
    return cfg if cfg.model_dir is not None else dataclasses.replace(cfg, model_dir=DEFAULT_MODEL_DIR)


def load_watch_config(args: argparse.Namespace) -> MonitorConfig:
    """The ``--config`` form's settings: every ``[[monitor.queries]]`` table, checked."""
    if args.config is None:
        raise UserError("give METRIC TRAIN_FILE PORT, or --config FILE with [[monitor.queries]] tables")
    # Flags of the one-series form would be silently ignored here: each query says its own.
    for flag, given in (
        ("--query", args.query),
        ("--param", args.param),
        ("--period", args.period),
        ("--detector", args.detector),
    ):
        if given:
            raise UserError(f"{flag} is for the METRIC TRAIN_FILE PORT form; set it in [[monitor.queries]]")
    cfg = load_file(
        args.config,
        prometheus_url=args.prometheus_url,
        interval=args.interval,
        host=args.host,
        log_format=args.log_format,
        port=args.port_option,
        shard=args.shard,
        model_dir=str(args.model_dir) if args.model_dir else None,
        retrain_every=args.retrain_every,
    )
    if not cfg.queries:
        raise UserError(f"{args.config}: no [[monitor.queries]] table: nothing to watch")
    if cfg.port is None:
        raise UserError(f"{args.config}: [monitor] needs port = N (where /metrics is served)")
    if cfg.model_dir is None:  # a folder per config file and port: two monitors never share snapshots
        cfg = dataclasses.replace(cfg, model_dir=model_dir_for(args.config, cfg.port))
    return cfg


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
    """Create the model folder now: a folder that cannot hold snapshots must not surface later."""
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"model folder {model_dir} is not a folder (--model-dir)") from None
    except OSError as exc:
        raise UserError(f"cannot create the model folder {model_dir}: {exc.strerror or exc}") from None
    if not os.access(model_dir, os.W_OK | os.X_OK):
        raise UserError(f"cannot write models into {model_dir}: permission denied (--model-dir)")


def detector_params(cfg: MonitorConfig, name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """The detector's parameters: ``--param`` pairs over, for a detector fitted on training data, the
    ``k``, ``fourier_order`` and ``period`` settings of the ``[monitor]`` table. Checked here, so a bad
    one is reported before the training file is read."""
    raw: dict[str, Any] = dict(registry.parse_params(pairs))
    if registry.needs_fit(name):
        raw = {"k": cfg.k, "fourier_order": cfg.fourier_order, "period": cfg.period or 0.0, **raw}
    registry.make_params(name, raw)
    return raw


# The positional form watches its one series for good: a week without a point, and it is forgotten.
POSITIONAL_STALE_AFTER_S = 7 * 86400.0


def positional_config(
    args: argparse.Namespace, cfg: MonitorConfig, params: dict[str, Any], step: float
) -> MonitorConfig:
    """The positional form as the one-query configuration it is: the query's series (the one whose
    labels are the training file's, else the first), its band exported, read every ``interval``."""
    query = QueryConfig(
        name=args.metric,
        expr=cfg.query_for(args.metric),
        detector=args.detector or "prophet",
        params=params,
        step=step,
        fit_window=max(cfg.retrain_window, step),
        stale_after=POSITIONAL_STALE_AFTER_S,
        max_series=1,
        export_band=True,
    )
    return dataclasses.replace(cfg, port=args.port, queries=[query])


def training_seed(
    q: QueryConfig, training: Series, cfg: MonitorConfig, metrics: MonitorMetrics, train_file: Path
) -> Seed:
    """The model the training file makes: a streaming detector that has learnt it, or a Prophet band
    fitted on it (in this process, before the monitor serves: a bad file is an error at once)."""
    ts, vs = training.timestamps, training.values
    if not registry.needs_fit(q.detector):
        detector = registry.create(q.detector, q.params, rows=1)
        detector.update_many(vs, ts)
        return Seed(detector, float(ts[-1]))
    p = registry.make_params(q.detector, q.params)
    try:
        if p.period:
            check_period(p.period, ts)
        profile = fit_profile(ts, vs, p)
        if profile.period and p.period:  # a period the user gave: a band that can never flag is their error
            check_band_can_flag(profile.half_width, p.period, vs)
    except (PeriodError, UselessBandError) as exc:
        hint = "; leave out --period to detect the season" if p.period else ""
        raise DataError(f"{train_file}: {exc}{hint}") from None
    if profile.no_season:
        log.info(
            "%s has no repeating shape (%s): watching it with a flat band, no season",
            train_file,
            profile.no_season,
        )
    else:
        log.info(
            "model: period %.6g s, band +/- %.4g, fitted in %.2f s",
            profile.period,
            profile.half_width,
            profile.fit_seconds,
        )
    metrics.fit_duration.labels(q.name).set(profile.fit_seconds)
    return Seed(registry.from_profile(q.detector, q.params, profile), float(ts[-1]))


def training_fingerprint(training: Series) -> str:
    """The training samples' hash: a snapshot made from another file is not restored."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(training.timestamps, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(training.values, dtype=np.float64).tobytes())
    return h.hexdigest()[:20]


def presets_main(argv: Sequence[str]) -> int:
    """``monitor.py presets [NAME [--var KEY=VALUE ...]]``: list the presets, or print one's queries as a
    ``--config`` file to edit (docs/watch.md)."""
    from monitor import presets

    p = ArgumentParser(
        prog="monitor.py presets",
        description="List the query presets, or print one expanded as a --config file to copy and edit.",
    )
    p.add_argument("name", nargs="?", choices=list(presets.PRESETS), help="the preset to print")
    p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a preset variable, repeatable (e.g. selector='job=\"node\"'); `monitor.py presets` lists them",
    )
    args = p.parse_args(argv)
    if args.name is None:
        if args.var:
            raise UserError("--var needs a preset NAME")
        print(presets.listing())
        return 0
    variables = {}
    for pair in args.var:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--var must look like KEY=VALUE, got {pair!r}")
        variables[key.strip()] = value
    print(presets.to_toml(args.name, variables), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["backtest"]:  # a subcommand: the monitor's history replayed (docs/backtest.md)
        from monitor import backtest_cli

        return backtest_cli.main(argv[1:])
    if argv[:1] == ["presets"]:  # a subcommand: the query presets (monitor.presets)
        return presets_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.metric is None:
        cfg = load_watch_config(args)
        return serve(cfg, args)
    if args.shard is not None or args.port_option is not None:
        raise UserError(
            "--shard and --port go with --config and [[monitor.queries]], not METRIC TRAIN_FILE PORT"
        )
    if args.train_file is None or args.port is None:
        raise UserError("give all of METRIC TRAIN_FILE PORT (or none, with --config and [[monitor.queries]])")
    if not 0 < args.port < 65536:
        raise UserError(f"port must be between 1 and 65535, got {args.port}")
    cfg = load_config(args)
    detector = args.detector or "prophet"
    params = detector_params(cfg, detector, args.param)
    # Cheap checks first: a busy port or a bad file must not wait for a fit.
    require_free_port(cfg.host, args.port, "monitor")
    training = load_training(args.train_file, cfg.min_train_points, cfg.max_train_points)
    query = cfg.query_for(args.metric)
    check_series_name(args.metric, query, training, args.train_file)
    try:
        step = sampling_step(training.timestamps)
    except PeriodError as exc:
        raise DataError(f"{args.train_file}: {exc}") from None
    cfg = positional_config(args, cfg, params, step)
    return serve(cfg, args, training=training)


def serve(cfg: MonitorConfig, args: argparse.Namespace, training: Series | None = None) -> int:
    """Run the engine on ``cfg`` until SIGTERM or Ctrl-C: both forms end here."""
    setup_logging(cfg.log_format)
    logging.getLogger("prophet.plot").disabled = True  # "Importing plotly failed": we never plot
    assert cfg.port is not None
    shard = parse_shard(cfg.shard, socket.gethostname()) if cfg.shard else None
    require_free_port(cfg.host, cfg.port, "monitor")
    assert cfg.model_dir is not None  # both forms' loaders set it
    prepare_model_dir(cfg.model_dir)  # snapshots go there: a folder that cannot hold them fails now
    metrics = MonitorMetrics([q.name for q in cfg.queries])
    index, count = shard or (0, 1)
    metrics.shard_info.labels(str(index), str(count)).set(1)
    clock = SystemClock()
    accept = (lambda labels: belongs(labels, index, count)) if count > 1 else None
    extra = {"training": training_fingerprint(training)} if training is not None else None
    engine = Engine(
        cfg,
        PrometheusClient(cfg.prometheus_url),
        clock,
        metrics,
        accept=accept,
        prefer=training.labels if training is not None else None,
        out=sys.stdout if training is not None else None,
        shard=shard,
        snapshot_extra=extra,
    )
    engine.probe()
    engine.restore()
    if training is not None:
        w = engine.watches[0]
        if w.seed is None:
            w.seed = training_seed(w.query, training, cfg, metrics, args.train_file)
            engine.snapshot()  # a restart with the same file loads this model instead of fitting again
        else:
            fit_s = w.seed.detector.state.get("fit_seconds")
            if fit_s is not None:
                metrics.fit_duration.labels(w.query.name).set(float(fit_s[0]))
            log.info("model of %s loaded from %s", args.train_file, engine.snapshot_path(w))
    server = start_metrics_server(metrics.registry, cfg.host, cfg.port, "monitor", body=metrics.exposition)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: clock.stop())
    names = ", ".join(f"{q.name} = {q.expr} ({q.detector})" for q in cfg.queries)
    where = f", shard {index}/{count}" if count > 1 else ""
    log.info(
        "watching %s every %g s%s, serving http://%s:%d/metrics",
        names,
        cfg.interval,
        where,
        cfg.host,
        cfg.port,
    )
    try:
        engine.run()
    finally:
        engine.snapshot()  # on SIGTERM too: a restart resumes from here instead of retraining
        server[0].shutdown()
    log.info("stopped")
    return 0
