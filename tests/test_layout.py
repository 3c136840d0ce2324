"""Where code lives: the harness beside the product, imported by tests, bench and scripts, never shipped."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from harness import ROOT

PRODUCT = ("streamwatch", "simulator", "monitor", "incident", "dashboard", "stack")
IMPORT = re.compile(r"^\s*(?:from|import)\s+([\w.]+)", re.M)


def imported(folder: str) -> dict[Path, set[str]]:
    """Each Python file under ``folder`` and the top-level modules it imports."""
    return {
        p: {m.split(".")[0] for m in IMPORT.findall(p.read_text())} | set(IMPORT.findall(p.read_text()))
        for p in sorted((ROOT / folder).rglob("*.py"))
    }


def test_no_test_module_imports_another() -> None:
    # Shared helpers live in harness/, fixtures in conftest.py (which pytest loads; nobody imports it).
    assert [p.name for p, mods in imported("tests").items() if "tests" in mods] == []


def test_bench_scripts_and_the_harness_do_not_import_the_tests() -> None:
    for folder in ("bench", "scripts", "harness"):
        assert [p.name for p, mods in imported(folder).items() if "tests" in mods] == [], folder


def test_the_product_does_not_import_the_harness() -> None:
    for folder in PRODUCT:
        assert [p.name for p, mods in imported(folder).items() if "harness" in mods] == [], folder


def test_the_harness_is_not_shipped_in_the_wheel() -> None:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert set(PRODUCT) <= {p for p in PRODUCT if any(fnmatch(p, pat) for pat in find["include"])}
    assert not any(fnmatch(name, pat) for name in ("harness", "tests") for pat in find["include"])


# One implementation of each shared thing, in streamwatch/ (prose says "above 1", so code is what matches).
SHARED = ("streamwatch", "simulator", "monitor", "incident", "dashboard", "stack", "harness")
COPIES = {
    "/healthz answered": re.compile(r'[(=]=?\s*"/healthz"|get\("/healthz"\)'),
    'the k="v" label text': re.compile(r"""f'\{\w+\}="\{\w+\}"'"""),
    "the series key": re.compile(r"tuple\(sorted\(\(?\w*\.?(?:labels\.)?items\(\)"),
    "the anomaly threshold": re.compile(r"score\w*\s*>\s*1(?:\.0)?\b"),
}


@pytest.mark.parametrize("thing", COPIES)
def test_shared_things_are_written_once_in_streamwatch(thing: str) -> None:
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for folder in SHARED
        for p in sorted((ROOT / folder).rglob("*.py"))
        if p.name not in ("healthz.py", "series.py", "scores.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if COPIES[thing].search(line)
    ]
    assert found == [], f"{thing} is written again (use streamwatch's): {found}"
