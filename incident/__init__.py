"""Incident detection: decaying per-series anomaly scores become Sev 1 / Sev 2 incidents per metric.

Pure core: ``decay`` (half-life scores), ``counts`` (counter increases), ``severity`` (the incident state
machine). Shell: ``config``, ``log`` (append-only incident log), ``exporter`` (metrics), ``service``
(``IncidentWatcher``, the poll loop, and HTTP), ``cli``.
"""
