"""The Makefile's targets call modules and scripts that exist (a renamed module breaks `make bench`)."""

from __future__ import annotations

import importlib.util
import re

from harness import ROOT


def test_every_python_module_and_script_the_makefile_runs_exists() -> None:
    text = (ROOT / "Makefile").read_text()
    modules = re.findall(r"\$\(PY\) -m ([\w.]+)", text)
    assert {"bench.monitor", "bench.detectors", "stack"} <= set(modules)
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
    for script in re.findall(r"(scripts/[\w./-]+)", text):
        assert (ROOT / script).is_file(), script
