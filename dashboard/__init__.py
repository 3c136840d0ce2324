"""Streamwatch's own live page: forecast bands, anomalies, incident scores and severity, without Grafana.

The page reads only from Prometheus' HTTP API, through a small server-side proxy that runs a fixed set of
named queries (``dashboard.queries``); the browser never sends PromQL and talks to one origin only.
"""
