"""The seasonal metric source Streamwatch watches.

``wave`` and ``anomalies`` are the pure core (plain functions of absolute time); ``app`` is the Flask
shell that serves them as Prometheus metrics, ``cli`` the command line (serve, generate, capture).
"""
