"""``python -m bench.detectors``: every detector's cycle cost at the issue's sizes, and every row it promises.

Only the shape of the report is checked here; speed is measured by the benchmark, never asserted.
"""

from __future__ import annotations

import pytest

from bench import detectors as bench
from monitor.detectors import registry


def test_defaults_are_the_issues_sizes() -> None:
    args = bench.build_parser().parse_args([])
    assert args.series == "10000,100000" and args.points == 15
    assert set(args.detectors.split(",")) == {*registry.NAMES, "prophet normalised"}


def test_short_run_reports_every_detector_size_and_the_load(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "PER_SERIES_MAX", 40)  # per-series objects: measured up to a cap
    argv = ["--series", "30,50", "--cycles", "1", "--one-n", "300", "--stream-n", "20"]
    assert bench.main([*argv, "--detectors", "sma,seasonal,prophet normalised,iforest"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("load average before: ") and "load average after: " in out
    rows = [
        [c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")
    ]
    by = {(r[0], r[1]): r for r in rows[1:]}
    for name in ("sma", "seasonal", "prophet normalised", "iforest"):
        for size in ("30", "50"):
            r = by[(name, size)]
            assert r[2] == f"{int(size) * 15:,}", r
            if name == "iforest" and size == "50":
                assert r[3].startswith("not measured"), r
                continue
            assert r[3].endswith(")") and " ms (" in r[3], r
            assert r[5].endswith(("B", "KiB")) and float(r[5].split()[0].replace(",", "")) > 0, r
            assert r[6].endswith("points/s"), r
    assert "seasonal: the column that ends a series' warm-up costs" in out


def test_bad_arguments_are_refused() -> None:
    for argv in (["--series", "ten"], ["--detectors", "nope"], ["--points", "0"]):
        with pytest.raises(SystemExit):
            bench.main(argv)
