"""Forecasting anomaly monitors: one process per watched query, exporting bands and anomaly counts."""
