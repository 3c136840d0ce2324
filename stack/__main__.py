"""``python -m stack``: run the local stack (``make demo``), or re-render the committed files.

python -m stack [--config stack.toml]           start everything, Ctrl-C stops it
python -m stack --watch watch.toml              the watch stack (`make watch`): a node exporter, a
                                                --config monitor on FILE, the incident detector and
                                                alerting, its data in var/watch/ (docs/watch.md)
python -m stack render [--config stack.toml]    rewrite prometheus/prometheus.yml and
                                                docker-compose.yml from stack.toml
python -m stack credentials --data-dir DIR      make (or keep) Alertmanager's credential in DIR
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from stack import credentials, render
from stack.config import DEFAULT_CONFIG, ROOT, load_stack
from stack.runner import Stack
from streamwatch.atomic import atomic_write_text
from streamwatch.cli import ArgumentParser, run
from streamwatch.errors import UserError


def committed_files(config: Path | None = None) -> dict[Path, str]:
    """The generated files the repository commits, keyed by path, as stack.toml says they should read."""
    cfg = load_stack(config)
    return {
        ROOT / "prometheus" / "prometheus.yml": render.dump_yaml(
            render.compose_prometheus_config(cfg),
            header=render.GENERATED_HEADER
            + "# docker-compose's Prometheus config (targets are service names); `make demo` writes its own\n"
            "# copy with 127.0.0.1 targets to var/prometheus.yml from the same stack.toml.\n",
        ),
        ROOT / "docker-compose.yml": render.dump_yaml(render.compose_file(cfg)),
        ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml": render.dump_yaml(
            render.grafana_datasource(cfg)
        ),
    }


def check_watch_config(path: Path) -> None:
    """The watch stack's monitor config, checked before anything starts: a typo is one line, not a
    monitor that dies after Prometheus came up."""
    from monitor.config import load_file  # late: only the watch stack needs the monitor's config

    if not load_file(path).queries:
        raise UserError(
            f'{path}: no queries: give [monitor] preset = "node_exporter", or [[monitor.queries]]'
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=["run", "render", "credentials"], default="run")
    parser.add_argument("--config", type=Path, default=None, help=f"default: {DEFAULT_CONFIG.name}")
    parser.add_argument("--data-dir", type=Path, help="credentials: the folder to keep them in")
    parser.add_argument(
        "--watch",
        type=Path,
        metavar="FILE",
        help="run the watch stack, its monitor on this --config file (docs/watch.md), not the demo",
    )
    args = parser.parse_args(argv)
    if args.watch is not None and args.action != "run":
        parser.error("--watch goes with run (the default action)")
    if args.action == "credentials":
        if args.data_dir is None:
            parser.error("credentials needs --data-dir")
        made = credentials.ensure(args.data_dir)
        print(f"Alertmanager credential for user {made.user} in {made.password_file}")
        return 0
    if args.action == "render":
        for path, text in committed_files(args.config).items():
            atomic_write_text(path, text)
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if args.watch is None:
        return Stack(load_stack(args.config)).run()
    watch = args.watch.resolve()
    check_watch_config(watch)
    return Stack(load_stack(args.config, profile="watch"), watch_config=watch).run()


if __name__ == "__main__":
    sys.exit(run(main, prog="stack"))
