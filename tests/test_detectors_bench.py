"""``python -m bench.detectors``: a million points per path by default, and every row it promises.

Only the shape of the report is checked here; speed is measured by the benchmark, never asserted.
"""

from __future__ import annotations

import pytest

from bench.detectors import STREAM_CAP, build_parser, main
from monitor.detectors.registry import DETECTORS


def test_defaults_are_a_million_points_streaming_and_vectorised() -> None:
    args = build_parser().parse_args([])
    assert args.n == args.stream_n == 1_000_000


def test_short_run_reports_every_detector_and_the_prophet_band_memory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--n", "10000", "--stream-n", "12000"]) == 0
    rows = [
        [c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()[2:]
    ]
    by_path = {(r[0], r[1]): r for r in rows}
    for name in [*DETECTORS, "prophet"]:
        prefix = "streaming update_one" if name != "prophet" else "streaming update_one (band lookup)"
        stream = by_path[(name, prefix)]
        want = f"{min(12_000, STREAM_CAP.get(name, 12_000)):,}"
        assert stream[2] == want and stream[5].endswith(("KiB", "KiB (model + 6 h grid)")), stream
        assert float(stream[5].split()[0]) > 0, stream
        vectorised = next(r for (n, p), r in by_path.items() if n == name and p.startswith("vectorised"))
        assert vectorised[2] == "10,000", vectorised


def test_too_few_points_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--stream-n", "100"])
