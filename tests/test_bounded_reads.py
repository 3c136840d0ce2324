"""Issue 22, item 7: reading a user's file is bounded: regular files only, and a byte limit checked
while reading, so no training file or config can take more memory than its cap allows.

A training file of 5,000,000 points reached 8 GiB; 5,000,001 was refused only after 2.2 GiB; /dev/zero
as a training file or config reached 6.8 GB or died with MemoryError.
"""

from __future__ import annotations

import contextlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from harness.cli import assert_one_line_error, run_python
from monitor.loader import load_training
from streamwatch.atomic import atomic_write_text
from streamwatch.config import read_toml
from streamwatch.errors import ConfigError, DataError, UserError
from streamwatch.files import read_bytes


def peak_bytes(fn: object) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(UserError):
            fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_file_is_refused_at_the_limit_without_reading_the_rest(tmp_path: Path) -> None:
    f = tmp_path / "huge"
    with f.open("wb") as fh:  # sparse: 2 GB that take no disk
        fh.truncate(2_000_000_000)
    with pytest.raises(UserError, match="larger than 1,048,576 bytes"):
        read_bytes(f, "config file", max_bytes=2**20)
    assert peak_bytes(lambda: read_bytes(f, "config file", max_bytes=2**20)) < 4 * 2**20


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_non_regular_files_are_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)  # opening it for reading would block until a writer came
    with pytest.raises(DataError, match="not a regular file"):
        load_training(path)
    with pytest.raises(UserError, match="not a regular file"):
        read_bytes(path, "config file")


def test_json_with_more_values_than_the_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    # 200,000 compact points is 3.2 MB of text, within the 100-bytes-a-point limit of a 50,000-point cap,
    # but parsed it would be 200,000 lists and strings: refused from its commas, before json.loads.
    values = [[1_700_000_000 + i, "1"] for i in range(200_000)]
    doc = {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]},
    }
    f = tmp_path / "t.json"
    f.write_text(json.dumps(doc, separators=(",", ":")))
    size = f.stat().st_size
    with pytest.raises(DataError, match="holds more than 50,000 points"):
        load_training(f, max_points=50_000)
    assert peak_bytes(lambda: load_training(f, max_points=50_000)) < 4 * size


def test_a_csv_stops_at_the_first_row_past_the_cap(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("".join(f"{1_700_000_000 + i},1\n" for i in range(1200)))
    with pytest.raises(DataError, match="more than 1000: max_train_points"):
        load_training(f, max_points=1000)


@pytest.mark.e2e
def test_the_services_refuse_dev_zero_and_fifos_in_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        proc = run_python(
            "monitor.py", "energy_price", path, "8999", "--model-dir", str(tmp_path / "models"), timeout=60
        )
        assert_one_line_error(proc, "not a regular file")
        proc = run_python(
            "incident_detector.py", "--config", path, "--log", str(tmp_path / "i.log"), timeout=60
        )
        assert_one_line_error(proc, "not a regular file")


def test_a_deeply_nested_toml_is_one_config_error(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")  # tomllib recursed into RecursionError
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_toml(f)


def test_an_atomic_write_never_replaces_a_device(tmp_path: Path) -> None:
    # `simulator.py generate --out /dev/full`, run as root, renamed a JSON file over the device.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        atomic_write_text(fifo, "x")
    assert fifo.is_fifo()
    with pytest.raises(OSError, match="not a regular file"):
        atomic_write_text("/dev/null", "x")
    assert Path("/dev/null").is_char_device()
