"""Query presets (issue 21): QueryConfig tables from `preset = ...`, printed as TOML that loads back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness import ROOT
from harness.cli import assert_one_line_error, run_python
from monitor import presets
from monitor.config import QueryConfig, check_detector, load_file
from streamwatch.errors import ConfigError

DEFAULT_DETECTOR = next(f.default for f in dataclasses.fields(QueryConfig) if f.name == "detector")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watch.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_query_of_a_preset_is_a_checked_query_with_a_side_and_a_floor(name: str) -> None:
    queries = presets.expand(name)
    assert len({q.name for q in queries}) == len(queries) >= 3
    for q, spec in zip(queries, presets.PRESETS[name].queries, strict=True):
        check_detector(q, name)  # the detector takes these parameters
        assert q.params["direction"] in ("above", "below", "both")
        assert q.params["min_deviation"] > 0
        assert q.detector == (spec.detector or DEFAULT_DETECTOR)  # the --config default unless chosen
        assert spec.why and "$" not in presets.describe(spec, presets._values(presets.get(name), {}))


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_the_printed_toml_loads_back_to_the_same_queries(name: str, tmp_path: Path) -> None:
    cfg = load_file(write(tmp_path, presets.to_toml(name)))
    assert cfg.queries == presets.expand(name)
    assert cfg.port == 8200


def test_the_printed_toml_with_variables_loads_back_too(tmp_path: Path) -> None:
    variables = {"selector": 'job="api",env=~"prod|staging"', "by": "job, handler", "quantile": "0.9"}
    cfg = load_file(write(tmp_path, presets.to_toml("http", variables)))
    assert cfg.queries == presets.expand("http", variables)
    assert 'rate(http_requests_total{job="api",env=~"prod|staging"}[5m])' in cfg.queries[0].expr
    assert cfg.queries[2].expr.startswith("histogram_quantile(0.9, sum by (job, handler, le)")


def test_the_selector_reaches_every_series_selector_and_nothing_else() -> None:
    plain = {q.name: q.expr for q in presets.expand("node_exporter")}
    scoped = {q.name: q.expr for q in presets.expand("node_exporter", {"selector": 'job="node"'})}
    assert plain["memory_available"] == "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes"
    assert scoped["memory_available"] == (
        'node_memory_MemAvailable_bytes{job="node"} / node_memory_MemTotal_bytes{job="node"}'
    )
    for name, expr in scoped.items():
        assert expr.count("{") == expr.count('job="node"') == plain[name].count("node_"), name


def test_preset_in_monitor_expands_before_the_tables_queries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[monitor]\npreset = ["prometheus", "node_exporter"]\nport = 8300\n'
        '[[monitor.queries]]\nname = "price"\nexpr = "energy_price_metric"\n',
    )
    cfg = load_file(path)
    names = [q.name for q in cfg.queries]
    assert names == [*(q.name for q in presets.expand("prometheus")),
                     *(q.name for q in presets.expand("node_exporter")), "price"]  # fmt: skip
    assert load_file(write(tmp_path, '[monitor]\npreset = "prometheus"\n')).queries == presets.expand(
        "prometheus"
    )


def test_a_preset_table_takes_variables_a_prefix_and_timing(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[monitor]\n[[monitor.queries]]\n"
        'preset = "http"\nprefix = "api_"\nstep = 5\nfit_window = 600\n'
        'vars = { requests = "api_requests_total", by = "handler" }\n'
        '[[monitor.queries]]\npreset = "http"\nprefix = "web_"\n',
    )
    queries = load_file(path).queries
    api = [q for q in queries if q.name.startswith("api_")]
    assert [q.name for q in api] == ["api_http_request_rate", "api_http_error_ratio", "api_http_latency"]
    assert all(q.step == 5 and q.fit_window == 600 for q in api)
    assert "sum by (handler) (rate(api_requests_total[5m]))" in api[0].expr
    assert {q.name for q in queries} - {q.name for q in api} == {
        "web_http_request_rate", "web_http_error_ratio", "web_http_latency",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('preset = "nginx"', "unknown preset 'nginx' (known: node_exporter, prometheus, http)"),
        ("preset = 3", "'preset' must be a preset name or a list of them"),
        ('[[monitor.queries]]\npreset = "http"\nvars = { nope = "x" }', "unknown variable 'nope'"),
        ('[[monitor.queries]]\npreset = "http"\nvars = { by = "job) or vector(1" }', "by must be label"),
        ('[[monitor.queries]]\npreset = "node_exporter"\nvars = { selector = "a=\\"}\\"" }', "selector must"),
        ('[[monitor.queries]]\npreset = "node_exporter"\nvars = { rate_window = "1 minute" }', "duration"),
        ('[[monitor.queries]]\npreset = "http"\ndetector = "sma"', "unknown key 'detector'"),
        ('[[monitor.queries]]\npreset = "http"\nstep = 0', "step must be 0.1 to 86,400 s"),
        ('[[monitor.queries]]\npreset = "http"\nprefix = "a-b"', "prefix must be letters"),
        ('preset = "prometheus"\n[[monitor.queries]]\nname = "up"\nexpr = "up"', "repeated: up"),
    ],
)
def test_a_bad_preset_is_one_config_error(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, "[monitor]\n" + text + "\n")
    with pytest.raises(ConfigError) as err:
        load_file(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_toml_values_survive_quotes_of_both_kinds(tmp_path: Path) -> None:
    expr = """label_replace(up{job="a"}, "x", "it's", "", "")"""  # both quote kinds: a basic string
    path = write(tmp_path, f'[monitor]\n[[monitor.queries]]\nname = "q"\nexpr = {presets.toml_value(expr)}\n')
    assert load_file(path).queries[0].expr == expr


def test_presets_command_lists_and_prints() -> None:
    listed = run_python("monitor.py", "presets")
    assert listed.returncode == 0, listed.stderr
    for name in presets.PRESETS:
        assert f"{name}: " in listed.stdout
    printed = run_python("monitor.py", "presets", "prometheus", "--var", 'selector=job="prometheus"')
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == presets.to_toml("prometheus", {"selector": 'job="prometheus"'})


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["presets", "nginx"], "invalid choice: 'nginx'"),
        (["presets", "http", "--var", "nope=1"], "unknown variable 'nope'"),
        (["presets", "http", "--var", "by"], "--var must look like KEY=VALUE, got 'by'"),
        (["presets", "--var", "by=job"], "--var needs a preset NAME"),
    ],
)
def test_presets_command_bad_input_is_one_line(argv: list[str], needle: str) -> None:
    assert_one_line_error(run_python("monitor.py", *argv), needle, prog="monitor.py")


def test_docs_watch_has_a_row_for_every_preset_query_with_its_side() -> None:
    text = (ROOT / "docs" / "watch.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| `")}
    for name, preset in presets.PRESETS.items():
        for q in preset.queries:
            row = next((r for key, r in rows.items() if f"`{q.name}`" in key), None)
            assert row is not None, f"docs/watch.md: no row for {name}'s {q.name}"
            assert f"| {q.params['direction']} |" in row, (q.name, row)
            assert q.detector == "ema" or f"`{q.detector}`" in row, (q.name, row)
