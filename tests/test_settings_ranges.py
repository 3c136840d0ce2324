"""Every numeric setting has a documented range, checked at load (issue 22, item 8).

The ranges live once, in each config dataclass's RANGES; scripts/render_settings_docs.py writes them
into the services' pages under docs/. These tests fail when a numeric field has no range, a range is
not enforced, a default lies outside its own range, or a page's table and the code disagree.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import ROOT
from streamwatch.config import from_mapping
from streamwatch.errors import ConfigError
from streamwatch.ranges import Range, numeric_fields

sys.path.insert(0, str(ROOT / "scripts"))
import render_settings_docs

CLASSES = {name: render_settings_docs.config_class(name) for name in render_settings_docs.CONFIGS}
# What each class needs besides the field under test (its required fields).
REQUIRED: dict[str, dict[str, Any]] = {
    "simulator.config.MetricSpec": {"name": "m", "min": 0.0, "max": 10.0, "step": 1.0},
    "monitor.config.QueryConfig": {"name": "q", "expr": "up"},
    "stack.config.ServiceConfig": {"port": 8000, "command": ["x"]},
    "stack.config.StackConfig": {
        "services": {"prometheus": {"port": 9090, "command": ["prometheus"], "kind": "prometheus"}}
    },
}


def ranges_of(cls: type) -> dict[str, Range]:
    return dict(getattr(cls, "RANGES", {}))


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_numeric_setting_has_a_range(name: str) -> None:
    cls = CLASSES[name]
    numeric = set(numeric_fields(cls))
    ranged = set(ranges_of(cls))
    assert numeric - ranged == set(), f"{name}: numeric settings without a range"
    assert ranged - {f.name for f in dataclasses.fields(cls)} == set(), f"{name}: ranges of no field"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_the_defaults_lie_in_their_ranges(name: str) -> None:
    cls = CLASSES[name]
    for field in dataclasses.fields(cls):
        rng = ranges_of(cls).get(field.name)
        if rng is not None and field.default is not dataclasses.MISSING and field.default is not None:
            assert rng.contains(field.default), (name, field.name, field.default)


def _outside(rng: Range, is_int: bool) -> list[float]:
    below = rng.low if rng.low_open else rng.low - (1 if is_int else max(0.5, abs(rng.low) / 2))
    values = [below, rng.high * 2 + 1, 1e300]
    return [int(v) if is_int else float(v) for v in values if v != rng.off]


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_a_value_outside_its_range_is_one_config_error_naming_it(name: str) -> None:
    cls = CLASSES[name]
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, rng in ranges_of(cls).items():
        is_int = "int" in str(hints[key]) and "float" not in str(hints[key])
        for bad in _outside(rng, is_int):
            with pytest.raises(ConfigError, match=rf"{key} must be {re.escape(rng.text())}, got") as err:
                from_mapping(cls, {**REQUIRED.get(name, {}), key: bad}, "test")
            assert "\n" not in str(err.value)


def test_the_docs_show_the_ranges_of_the_code() -> None:
    for page in sorted(set(render_settings_docs.CONFIGS.values())):
        text = (ROOT / page).read_text(encoding="utf-8")
        assert render_settings_docs.render(text) == text, f"{page}: run scripts/render_settings_docs.py"
        for name, where in render_settings_docs.CONFIGS.items():
            if where == page:
                assert name in render_settings_docs.blocks(text), f"{page} has no table for {name}"


def test_the_check_mode_fails_on_a_stale_table(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "incidents.md").read_text(encoding="utf-8")
    stale = text.replace("| 1 to 86,400 s |", "| 1 to 86,401 s |", 1)
    assert stale != text and render_settings_docs.render(stale) == text


@pytest.mark.parametrize(
    "name", [n for n in sorted(CLASSES) if "host" in {f.name for f in dataclasses.fields(CLASSES[n])}]
)
def test_an_empty_host_is_refused(name: str) -> None:
    # The sweep (issue 22): --host '' started the simulator on every interface.
    with pytest.raises(ConfigError, match="host must name an address to listen on"):
        from_mapping(CLASSES[name], {**REQUIRED.get(name, {}), "host": ""}, "test")
