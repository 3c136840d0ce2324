"""Presets: ready-made ``[[monitor.queries]]`` for what every SRE already exports, as data.

``preset = "node_exporter"`` in ``[monitor]`` (or a list of names), or a ``[[monitor.queries]]`` table
holding ``preset = "NAME"`` (with ``vars``, ``prefix`` and the timing keys of a query), expands into the
preset's queries, each a ``QueryConfig`` like any other: its detector (``ema``, the one the presets were
measured with, unless the metric needs another), the side that is trouble (``direction``) and the
smallest move worth an alert (``min_deviation``, in the query's unit), chosen for what the metric
means; ``why`` says so.
``python monitor.py presets`` lists them and ``python monitor.py presets NAME`` prints the expanded TOML
to copy and edit (``to_toml``; it loads back to the same queries). docs/watch.md explains each choice.

Every series selector of a preset's expressions (``name{...}``) gets the preset's ``selector`` variable
added to its matchers, so ``vars = { selector = 'job="node"' }`` confines the whole preset to one job.

>>> [q.name for q in expand("prometheus")]
['up', 'scrape_duration', 'rule_failures', 'tsdb_head_series']
>>> expand("node_exporter", {"selector": 'job="node"'})[2].expr
'node_load5{job="node"} / count without (cpu, mode) (node_cpu_seconds_total{mode="idle",job="node"})'
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from monitor.config import QueryConfig
from streamwatch.errors import ConfigError
from streamwatch.ranges import Range, check_ranges

# What a variable may hold: one pattern per kind, so a value cannot break out of its place in PromQL.
_KINDS: dict[str, tuple[re.Pattern[str], str]] = {
    "metric": (re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"), "a metric name"),
    "labels": (
        re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*(\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*)*$"),
        "label names separated by commas",
    ),
    "duration": (re.compile(r"^[0-9]+(ms|s|m|h|d|w)$"), "a PromQL duration such as 1m"),
    "quantile": (re.compile(r"^0?\.[0-9]+$"), "a quantile between 0 and 1, such as 0.99"),
    # Matchers (job="node", env=~"prod|staging"): no braces, so the selector stays one selector.
    "matchers": (re.compile(r"^[^{}\n]*$"), 'label matchers without braces, such as job="node"'),
    "regex": (re.compile(r'^[^"\\\n]*$'), "a regular expression without quotes or backslashes"),
}
_SELECTOR = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Var:
    default: str
    kind: str
    help: str


@dataclass(frozen=True)
class PresetQuery:
    """One query of a preset: ``expr`` is a ``string.Template`` over the preset's variables."""

    name: str
    expr: str
    why: str  # what the query measures and why this detector, direction and min_deviation
    params: Mapping[str, Any]  # direction, min_deviation (every detector takes both), detector options
    # ema unless the metric needs another: the detector the presets were measured with
    # (docs/benchmarks.md#presets-on-a-busy-host), named so a change of the --config default does not
    # change a preset silently.
    detector: str = "ema"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    queries: tuple[PresetQuery, ...]
    variables: Mapping[str, Var] = field(default_factory=dict)


_SELECTOR_VAR = Var("", "matchers", 'label matchers added to every series selector, e.g. job="node"')

# Filesystems and devices that are not storage or a network: memory-backed and virtual ones.
_VIRTUAL_FS = 'fstype!~"tmpfs|devtmpfs|ramfs|squashfs|nsfs|autofs|overlay|fuse.lxcfs"'
_VIRTUAL_NIC = 'device!~"lo|veth.*|docker.*|br-.*|virbr.*|cni.*|flannel.*|ifb.*"'
_VIRTUAL_DISK = 'device!~"ram.*|loop.*|zram.*|fd.*|sr.*|nbd.*"'

NODE_EXPORTER = Preset(
    "node_exporter",
    "a host, from the node exporter (Debian's prometheus-node-exporter): CPU, load, memory, "
    "filesystems, network and disks; one series per host (and per mode, filesystem or device)",
    (
        PresetQuery(
            "cpu_busy",
            "avg without (cpu) (sum without (mode) "
            '(rate(node_cpu_seconds_total{mode!~"idle|iowait|steal"}[$rate_window])))',
            "fraction of the host's CPU time doing work (all CPUs averaged): only high is trouble, and a "
            "rise under a quarter of the host's capacity is an ordinary busy spell. IQR over the last 40 "
            "points (10 minutes at a 15 s step): its fences do not follow a saturation that lasts, so every "
            "point of it is flagged for about half the window",
            {"direction": "above", "min_deviation": 0.25, "window": 40},
            detector="iqr",
        ),
        PresetQuery(
            "cpu_waiting",
            'avg without (cpu) (rate(node_cpu_seconds_total{mode=~"iowait|steal"}[$rate_window]))',
            "per mode, the modes that mean something else than work: iowait (CPUs idle waiting on a disk) "
            "and steal (the hypervisor ran someone else); only high is trouble, from a tenth of the host's "
            "CPU time",
            {"direction": "above", "min_deviation": 0.1},
        ),
        PresetQuery(
            "load_per_core",
            'node_load5{} / count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})',
            "the 5-minute load average per CPU: runnable tasks queueing for a CPU for minutes (a burst "
            "shows in cpu_busy, not here); only high is trouble, from one more waiting task per CPU",
            {"direction": "above", "min_deviation": 1.0},
        ),
        PresetQuery(
            "memory_available",
            "node_memory_MemAvailable_bytes{} / node_memory_MemTotal_bytes{}",
            "fraction of memory available without swapping: only low is trouble, from a tenth of the "
            "host's memory",
            {"direction": "below", "min_deviation": 0.1},
        ),
        PresetQuery(
            "filesystem_free",
            f"node_filesystem_avail_bytes{{{_VIRTUAL_FS}}} / node_filesystem_size_bytes{{{_VIRTUAL_FS}}}",
            "fraction of each filesystem free for unprivileged users: only low is trouble, from 5 % of "
            "the filesystem (it moves slowly, so its learnt band is narrow)",
            {"direction": "below", "min_deviation": 0.05},
        ),
        PresetQuery(
            "filesystem_filling",
            f"-deriv(node_filesystem_avail_bytes{{{_VIRTUAL_FS}}}[$fill_window]) * 3600 "
            f"/ node_filesystem_size_bytes{{{_VIRTUAL_FS}}}",
            "fraction of each filesystem filled per hour, over $fill_window: only filling is trouble, "
            "from 5 % an hour (full within a day at that rate); relative to the size, so one figure "
            "suits a 20 GB and a 10 TB disk",
            {"direction": "above", "min_deviation": 0.05},
        ),
        PresetQuery(
            "network_receive",
            f"rate(node_network_receive_bytes_total{{{_VIRTUAL_NIC}}}[$rate_window])",
            "bytes per second received per interface: a surge or a sudden silence are both news, from "
            "5 MB/s (40 Mbit/s): below that a quiet host's traffic doubling is not",
            {"direction": "both", "min_deviation": 5e6},
        ),
        PresetQuery(
            "network_transmit",
            f"rate(node_network_transmit_bytes_total{{{_VIRTUAL_NIC}}}[$rate_window])",
            "bytes per second sent per interface, as network_receive",
            {"direction": "both", "min_deviation": 5e6},
        ),
        PresetQuery(
            "disk_read",
            f"rate(node_disk_read_bytes_total{{{_VIRTUAL_DISK}}}[$rate_window])",
            "bytes per second read per disk: only a surge is trouble (a disk saturating), from 20 MB/s",
            {"direction": "above", "min_deviation": 2e7},
        ),
        PresetQuery(
            "disk_write",
            f"rate(node_disk_written_bytes_total{{{_VIRTUAL_DISK}}}[$rate_window])",
            "bytes per second written per disk, as disk_read",
            {"direction": "above", "min_deviation": 2e7},
        ),
    ),
    {
        "selector": _SELECTOR_VAR,
        "rate_window": Var("1m", "duration", "range of rate(): at least 4 scrape intervals"),
        "fill_window": Var("30m", "duration", "range over which the filesystems' fill rate is measured"),
    },
)

PROMETHEUS = Preset(
    "prometheus",
    "Prometheus' own health: its targets, scrape durations, rule evaluation failures, TSDB head series",
    (
        PresetQuery(
            "up",
            "up{}",
            "1 while a target is scraped, 0 when it is down: only a fall is trouble (a flat 1 has no "
            "spread, so min_deviation 0.5 is the band)",
            {"direction": "below", "min_deviation": 0.5},
        ),
        PresetQuery(
            "scrape_duration",
            "scrape_duration_seconds{}",
            "seconds each scrape took: only slower is trouble, from half a second (a target nearing "
            "its scrape timeout)",
            {"direction": "above", "min_deviation": 0.5},
        ),
        PresetQuery(
            "rule_failures",
            "rate(prometheus_rule_evaluation_failures_total{}[$rate_window])",
            "rule evaluation failures per second, per rule group: any failure is news, so the floor is "
            "small (0.001/s: one failure in $rate_window shows as about 0.003)",
            {"direction": "above", "min_deviation": 0.001},
        ),
        PresetQuery(
            "tsdb_head_series",
            "prometheus_tsdb_head_series{}",
            "series in the head block: only growth is trouble (a label with unbounded values), from "
            "5,000 more series than expected",
            {"direction": "above", "min_deviation": 5000.0},
        ),
    ),
    {
        "selector": _SELECTOR_VAR,
        "rate_window": Var("5m", "duration", "range of rate()"),
    },
)

HTTP = Preset(
    "http",
    "an HTTP service's request rate, error ratio and latency quantile (a request counter with a status "
    "code label, and a request duration histogram), per $by",
    (
        PresetQuery(
            "http_request_rate",
            "sum by ($by) (rate(${requests}{}[$rate_window]))",
            "requests per second: a surge and a drop (an outage upstream) are both news, from 1 request "
            "per second",
            {"direction": "both", "min_deviation": 1.0},
        ),
        PresetQuery(
            "http_error_ratio",
            # `or ... * 0`: a service without errors has a ratio of 0, not no series (a series that appears
            # only when errors start has no history to be compared with).
            'sum by ($by) (rate(${requests}{$code_label=~"$errors"}[$rate_window])) '
            "/ sum by ($by) (rate(${requests}{}[$rate_window])) "
            "or sum by ($by) (rate(${requests}{}[$rate_window])) * 0",
            "fraction of requests answered with an error code: only high is trouble, from 5 points",
            {"direction": "above", "min_deviation": 0.05},
        ),
        PresetQuery(
            "http_latency",
            "histogram_quantile($quantile, sum by ($by, le) (rate(${duration}_bucket{}[$rate_window])))",
            "the $quantile quantile of request duration in seconds, from the histogram: only slower is "
            "trouble, from a quarter of a second",
            {"direction": "above", "min_deviation": 0.25},
        ),
    ),
    {
        "selector": _SELECTOR_VAR,
        "requests": Var("http_requests_total", "metric", "the request counter"),
        "code_label": Var("code", "labels", "the counter's label holding the status code"),
        "errors": Var("5..", "regex", "status codes that are errors"),
        "duration": Var(
            "http_request_duration_seconds", "metric", "the duration histogram (without _bucket)"
        ),
        "quantile": Var("0.99", "quantile", "the latency quantile"),
        "by": Var("job", "labels", "labels each series is kept per (a service, an endpoint)"),
        "rate_window": Var("5m", "duration", "range of rate()"),
    },
)

PRESETS: dict[str, Preset] = {p.name: p for p in (NODE_EXPORTER, PROMETHEUS, HTTP)}


def get(name: str) -> Preset:
    preset = PRESETS.get(name)
    if preset is None:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return preset


def _values(preset: Preset, given: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(given) - set(preset.variables))
    if unknown:
        known = ", ".join(preset.variables) or "none"
        raise ConfigError(f"preset {preset.name}: unknown variable {unknown[0]!r} (known: {known})")
    out = {}
    for name, var in preset.variables.items():
        value = str(given.get(name, var.default)).strip()
        pattern, what = _KINDS[var.kind]
        if not pattern.match(value):
            raise ConfigError(f"preset {preset.name}: {name} must be {what}, got {value!r}")
        out[name] = value
    return out


def _add_selector(expr: str, selector: str) -> str:
    """Add ``selector``'s matchers to every ``{...}`` of ``expr``; an empty ``{}`` left is dropped."""

    def one(m: re.Match[str]) -> str:
        inner = ",".join(part for part in (m.group(1), selector) if part)
        return "{" + inner + "}" if inner else ""

    return _SELECTOR.sub(one, expr)


def render_expr(preset: Preset, q: PresetQuery, values: Mapping[str, str]) -> str:
    return _add_selector(string.Template(q.expr).substitute(values), values.get("selector", ""))


def expand(
    name: str,
    variables: Mapping[str, str] | None = None,
    prefix: str = "",
    **query_settings: Any,
) -> list[QueryConfig]:
    """Preset ``name``'s queries, with ``variables`` over its defaults, ``prefix`` before every query name,
    and ``query_settings`` (``step``, ``fit_window``, ``stale_after``, ``max_series``) given to each."""
    preset = get(name)
    values = _values(preset, variables or {})
    out = []
    for q in preset.queries:
        kwargs: dict[str, Any] = {"params": dict(q.params), "detector": q.detector, **query_settings}
        try:
            out.append(QueryConfig(name=prefix + q.name, expr=render_expr(preset, q, values), **kwargs))
        except ValueError as exc:
            raise ConfigError(f"preset {name}: {exc}") from None
    return out


def describe(q: PresetQuery, values: Mapping[str, str]) -> str:
    return string.Template(q.why).safe_substitute(values)


@dataclass
class PresetRef:
    """A ``[[monitor.queries]]`` table naming a preset instead of one query."""

    preset: str
    vars: dict[str, str] = field(default_factory=dict)
    prefix: str = ""  # before every query name: two presets of one kind (two HTTP services) side by side
    # Given to each of the preset's queries when set (QueryConfig's meaning and range).
    step: float | None = None
    fit_window: float | None = None
    stale_after: float | None = None
    max_series: int | None = None

    RANGES: ClassVar[dict[str, Range]] = {
        k: QueryConfig.RANGES[k] for k in ("step", "fit_window", "stale_after", "max_series")
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        get(self.preset)
        if self.prefix and not self.prefix.replace("_", "a").isalnum():
            raise ValueError(f"prefix must be letters, digits and _, got {self.prefix!r}")

    def expand(self) -> list[QueryConfig]:
        settings = {
            k: getattr(self, k)
            for k in ("step", "fit_window", "stale_after", "max_series")
            if getattr(self, k) is not None
        }
        return expand(self.preset, self.vars, self.prefix, **settings)


def expand_section(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The raw ``[monitor]`` table with its presets expanded: ``preset = NAME`` (or a list of names) and
    every ``[[monitor.queries]]`` table holding ``preset``, each replaced by the preset's queries (those of
    ``[monitor] preset`` first). Everything else is left for the loader to check."""
    from streamwatch.config import from_mapping  # the loader's own typing and one-line errors

    if "preset" not in data and not any(
        isinstance(q, Mapping) and "preset" in q for q in data.get("queries", []) or []
    ):
        return data
    out = dict(data)
    names = out.pop("preset", [])
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: 'preset' must be a preset name or a list of them, got {names!r}")
    queries: list[Any] = []
    try:
        for n in names:
            queries += expand(n)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    raw = out.get("queries", [])
    if not isinstance(raw, list):
        return out  # the loader says what is wrong with it
    for i, q in enumerate(raw):
        if isinstance(q, Mapping) and "preset" in q:
            ref = from_mapping(PresetRef, q, f"{where} queries[{i}]")
            try:
                queries += ref.expand()
            except ConfigError as exc:
                raise ConfigError(f"{where} queries[{i}]: {exc}") from None
        else:
            queries.append(q)
    out["queries"] = queries
    return out


# --- TOML, for `monitor.py presets NAME` ------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def toml_value(v: Any) -> str:
    """One TOML value: strings literal when they can be (PromQL is full of double quotes).

    >>> toml_value('rate(x{a="b"}[1m])'), toml_value({"direction": "above", "min_deviation": 0.25})
    ('\\'rate(x{a="b"}[1m])\\'', '{ direction = "above", min_deviation = 0.25 }')
    """
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        control = any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in v)
        if "'" not in v and '"' in v and not control:
            return f"'{v}'"
        escaped = "".join(
            _ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or c == "\x7f" else c) for c in v
        )
        return f'"{escaped}"'
    if isinstance(v, Mapping):
        items = ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else toml_value(k)


def _comment(text: str, width: int = 100) -> list[str]:
    words, lines, line = text.split(), [], "#"
    for w in words:
        if len(line) + 1 + len(w) > width:
            lines.append(line)
            line = "#"
        line += " " + w
    return [*lines, line]


def to_toml(name: str, variables: Mapping[str, str] | None = None, port: int = 8200) -> str:
    """A whole ``--config`` file holding preset ``name``'s queries, each with its reason as a comment."""
    from monitor.config import MonitorConfig

    preset = get(name)
    values = _values(preset, variables or {})
    queries = expand(name, variables)
    d = MonitorConfig()
    lines = _comment(f"Preset {name}: {string.Template(preset.description).safe_substitute(values)}.")
    lines += _comment(
        f'Written by `python monitor.py presets {name}`: the same queries as `preset = "{name}"` in '
        "[monitor], to edit. Run it with: python monitor.py --config FILE"
    )
    lines += [
        "",
        "[monitor]",
        f"port = {port}                          # where /metrics is served (Prometheus must scrape it)",
        f"prometheus_url = {toml_value(d.prometheus_url)}",
        f"interval = {d.interval:g}",
    ]
    defaults = {f.name: f.default for f in dataclasses.fields(QueryConfig)}
    for q, cfg in zip(preset.queries, queries, strict=True):
        lines += ["", *_comment(describe(q, values)), "[[monitor.queries]]"]
        for key in ("name", "expr", "detector", "params"):
            lines.append(f"{key} = {toml_value(getattr(cfg, key))}")
        for f in ("step", "fit_window", "stale_after", "max_series", "export_band"):
            if getattr(cfg, f) != defaults[f]:
                lines.append(f"{f} = {toml_value(getattr(cfg, f))}")
    return "\n".join(lines) + "\n"


def listing() -> str:
    """``monitor.py presets``: each preset, its queries and its variables."""
    lines = []
    for p in PRESETS.values():
        lines.append(f"{p.name}: {string.Template(p.description).safe_substitute(by='job')}")
        lines.append(f"  queries: {', '.join(q.name for q in p.queries)}")
        for v, var in p.variables.items():
            lines.append(f"  vars.{v} = {var.default!r}: {var.help}")
        lines.append("")
    lines.append(
        'Use one with `preset = "NAME"` in [monitor], or print its queries to edit with '
        "`monitor.py presets NAME [--var KEY=VALUE ...]` (docs/watch.md)."
    )
    return "\n".join(lines)
