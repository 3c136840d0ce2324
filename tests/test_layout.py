"""Where code lives: the harness beside the product, imported by tests, bench and scripts, never shipped."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

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
