"""`[monitor]` with `[[monitor.queries]]`: the issue's TOML loads, defaults are the documented ones,
and every mistake is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import assert_one_line_error, run_python
from monitor.config import MonitorConfig, QueryConfig, load_file
from streamwatch.errors import ConfigError

ISSUE_TOML = """
[monitor]
port = 8200
prometheus_url = "http://127.0.0.1:9090"
interval = 30

[[monitor.queries]]
name = "cpu"                                   # becomes the `metric` label
expr = 'rate(node_cpu_seconds_total{mode!="idle"}[1m])'
detector = "ema"                               # any registered detector; params = { ... }
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "watch.toml"
    p.write_text(text)
    return p


def test_the_issues_toml_loads_with_the_documented_defaults(tmp_path):
    cfg = load_file(write(tmp_path, ISSUE_TOML))
    assert cfg.port == 8200 and cfg.interval == 30.0 and cfg.shard is None
    (q,) = cfg.queries
    assert q == QueryConfig(name="cpu", expr='rate(node_cpu_seconds_total{mode!="idle"}[1m])', detector="ema")
    assert (q.fit_window, q.stale_after, q.max_series, q.params) == (3600.0, 600.0, 10_000, {})
    assert cfg.workers >= 1


def test_params_shard_and_several_queries(tmp_path):
    text = (
        ISSUE_TOML
        + """
params = { alpha = 0.2, threshold = 4 }
step = 5

[[monitor.queries]]
name = "price"
expr = "energy_price_metric"
detector = "prophet"
params = { k = 5, direction = "above" }
max_series = 10
stale_after = 60
"""
    )
    cfg = load_file(write(tmp_path, text.replace("interval = 30", 'interval = 30\nshard = "1/4"')))
    cpu, price = cfg.queries
    assert cpu.params == {"alpha": 0.2, "threshold": 4} and cpu.step == 5.0
    assert (price.detector, price.max_series, price.stale_after) == ("prophet", 10, 60.0)
    assert cfg.shard == "1/4"


@pytest.mark.parametrize(
    "extra, message",
    [
        ('detector = "nope"', "unknown detector 'nope'"),
        ("params = { alpah = 0.2 }", "unknown key 'alpah'"),
        ("params = { alpha = 2.0 }", "alpha must be in (0, 1]"),
        ("max_series = 0", "max_series must be 1 to 1,000,000, got 0"),
        ("stale_after = -1", "stale_after must be 1 to 604,800 s"),
        ("stale_after = 1e-9", "stale_after must be 1 to 604,800 s, got 1e-09"),
        ("step = 0.1", "at most 11000"),
        ("colour = 1", "unknown key 'colour'"),
    ],
)
def test_a_bad_query_is_one_line_naming_it(tmp_path, extra, message):
    text = ISSUE_TOML.replace('detector = "ema"', extra) if "detector" in extra else ISSUE_TOML + extra + "\n"
    with pytest.raises(ConfigError, match=r"cpu|queries") as err:
        load_file(write(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_query_names_must_be_unique_label_values():
    q = QueryConfig(name="a", expr="up")
    with pytest.raises(ValueError, match="unique"):
        MonitorConfig(queries=[q, q])
    with pytest.raises(ValueError, match="query name"):
        QueryConfig(name="a b", expr="up")


def test_monitor_py_config_without_queries_or_port_exits_2_with_one_line(tmp_path):
    no_port = write(tmp_path, ISSUE_TOML.replace("port = 8200\n", ""))
    assert_one_line_error(run_python("monitor.py", "--config", str(no_port)), "needs port", prog="monitor.py")
    no_queries = write(tmp_path, "[monitor]\nport = 8200\n")
    assert_one_line_error(run_python("monitor.py", "--config", str(no_queries)), "no [[monitor.queries]]")
    assert_one_line_error(run_python("monitor.py"), "--config")
    assert_one_line_error(run_python("monitor.py", "energy_price"), "METRIC TRAIN_FILE PORT")
    ok = write(tmp_path, ISSUE_TOML)
    assert_one_line_error(run_python("monitor.py", "--config", str(ok), "--param", "alpha=0.5"), "--param")


@pytest.mark.parametrize(
    "expr, message",
    [
        ("", "expr must not be empty"),
        ("rate(", "is not closed (')' missing)"),
        ("up{", "is not closed ('}' missing)"),
        ("x]", "unbalanced ']'"),
        ('up{job="a', "is not closed ('\"' missing)"),
    ],
)
def test_an_expression_that_cannot_be_promql_is_refused_at_load_even_without_prometheus(
    tmp_path, expr, message
):
    text = ISSUE_TOML.replace(
        """expr = 'rate(node_cpu_seconds_total{mode!="idle"}[1m])'""", f"expr = '{expr}'"
    )
    with pytest.raises(ConfigError, match="cpu") as err:
        load_file(write(tmp_path, text))
    assert message in str(err.value)
    # Brackets and quotes inside label values are not the expression's own.
    QueryConfig(name="ok", expr='sum by (a) (rate(x{job=~"a(b|c]"}[1m]))')


def test_an_empty_query_or_shard_is_one_line_not_ignored(tmp_path):
    done = run_python("monitor.py", "energy_price", "datasets/energy_price_train.json", "8090", "--query", "")
    assert_one_line_error(done, "query must not be empty", prog="monitor.py")
    with pytest.raises(ConfigError, match="shard must be INDEX/COUNT"):
        load_file(write(tmp_path, ISSUE_TOML.replace("interval = 30", 'interval = 30\nshard = ""')))
