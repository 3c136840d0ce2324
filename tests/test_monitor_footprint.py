"""A monitor loads the heavy libraries only for the detectors that need them (issue 19's RSS budget):
pandas (~60 MiB, Prophet's frames) and scikit-learn (~100 MiB, the Isolation Forest) are imported at
their first use, so a monitor watching 10,000 series with `adaptive` does not carry them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from monitor.detectors import registry


def loaded_after(code: str) -> set[str]:
    """The heavy top-level modules a fresh interpreter has loaded after running ``code``."""
    heavy = "('pandas', 'sklearn', 'prophet')"
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(out.stdout.split())


def test_the_engine_and_a_streaming_detector_load_neither_pandas_nor_scikit_learn() -> None:
    code = (
        "import numpy as np, monitor.cli, monitor.engine\n"
        "from monitor.detectors import registry\n"
        "d = registry.create('adaptive', {}, rows=3)\n"
        "d.update(np.ones((3, 20)), np.tile(np.arange(20.0), (3, 1)))"
    )
    assert loaded_after(code) == set()


def test_the_isolation_forest_loads_scikit_learn_when_it_first_fits() -> None:
    code = (
        "import numpy as np\nfrom monitor.detectors import registry\n"
        "d = registry.create('iforest', {'history': 32, 'refit': 16})\n"
        "d.update_many(np.arange(80.0), np.arange(80.0))"
    )
    assert "sklearn" in loaded_after(code)
    d = registry.create("iforest", {"history": 32, "refit": 16})
    assert np.isfinite(d.update_many(np.sin(np.arange(80.0)), np.arange(80.0)).score[40:]).all()  # it fitted
