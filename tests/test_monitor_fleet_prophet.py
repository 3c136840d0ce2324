"""Prophet for many series: fitted in worker processes off the cycle, kept as one period of forecast;
a series with no repeating shape gets a flat band instead of an error."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from harness.services import ScrapeTarget
from harness.waves import PRICE, grid
from monitor.detectors.prophet import ProphetParams
from monitor.fitpool import FitPool
from monitor.prophet_profile import ProfileBand, fit_profile
from streamwatch.net import wait_until

T0 = 1_700_000_000.0


def test_a_seasonal_series_gets_its_period_and_a_band_that_holds_clean_data():
    ts = grid(T0, 1200.0)
    profile = fit_profile(ts, PRICE.noisy(ts, seed=1), ProphetParams())
    assert profile.period == pytest.approx(PRICE.period_s, abs=0.5) and not profile.no_season
    later = grid(T0 + 3600.0, 600.0)
    det = ProfileBand.of(profile)
    clean = det.update_many(PRICE.noisy(later, seed=2), later)
    assert clean.anomalous.mean() < 0.01
    shifted = det.update_many(PRICE.noisy(later, seed=2) + PRICE.range / 2, later)
    assert shifted.anomalous.mean() > 0.9


def test_a_series_without_season_gets_a_flat_band_and_the_reason():
    ts = grid(T0, 600.0)
    flat = np.full(ts.size, 5.0)
    profile = fit_profile(ts, flat, ProphetParams())
    assert profile.period == 0.0 and "constant" in profile.no_season
    det = ProfileBand.of(profile)
    assert det.update_many(np.array([5.0, 50.0]), ts[:2]).anomalous.tolist() == [False, True]


def test_the_pool_fits_in_workers_and_reports_what_finished():
    pool = FitPool(workers=2)
    try:
        ts = grid(T0, 1200.0)
        for i in range(3):
            pool.submit(("q", i), ts, PRICE.noisy(ts, seed=i), ProphetParams())
        assert pool.pending == 3
        done: list = []
        assert wait_until(lambda: bool(done.extend(pool.collect())) or len(done) == 3, 120, 0.2)
        assert sorted(tag for tag, _ in done) == [("q", 0), ("q", 1), ("q", 2)] and pool.pending == 0
        assert all(r.period == pytest.approx(PRICE.period_s, abs=0.5) for _, r in done)
    finally:
        pool.close()


@pytest.mark.e2e
def test_prophet_queries_fit_off_the_cycle_and_fall_back_without_season(
    start_simulator, start_prometheus, start_fleet_monitor, tmp_path
):
    # A fast wave (10 s period) so a few periods of history exist within a minute.
    cfg = tmp_path / "sim.toml"
    cfg.write_text("tick_s = 0.25\n")
    sim = start_simulator(cfg, "--series", "3")
    prom = start_prometheus([ScrapeTarget("simulator", sim.address)])
    assert wait_until(
        lambda: min((len(s) for s in prom.client.query("energy_price_metric[60s]")), default=0) >= 40, 90
    )
    mon = start_fleet_monitor(
        prom.url,
        [
            {
                "name": "price",
                "expr": "energy_price_metric",
                "detector": "prophet",
                "step": 1,
                "fit_window": 60,
                "export_band": True,
            },
            {
                "name": "quiet",
                "expr": "sum by (metric) (rate(streamwatch_simulator_anomalies_injected_total[10s]))",
                "detector": "prophet",
                "step": 1,
                "fit_window": 60,
            },
        ],
    )

    def fitted() -> bool:
        text = requests.get(mon.url, timeout=5).text
        return 'streamwatch_monitor_fits_total{metric="price"} 3.0' in text and (
            'streamwatch_monitor_fits_total{metric="quiet"} 2.0' in text
        )

    assert wait_until(fitted, 120, 0.5), mon.process.log_tail()
    log = mon.process.log_tail(500)
    assert "no repeating shape" in log and "flat band" in log and "Traceback" not in log
    assert wait_until(
        lambda: 'streamwatch_monitor_forecast{instance="' in requests.get(mon.url, timeout=5).text, 30, 0.5
    )
