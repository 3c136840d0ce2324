"""The test harness: real services on free loopback ports, started as `make demo` starts them.

Imported by ``tests/``, ``bench/`` and ``scripts/``; never by the product, and not shipped in the wheel
(pyproject's package list leaves it out). One module per job:

- ``procs``: ManagedProcess (a child with its log, stopped without leftovers) and the command lines.
- ``services``: Prometheus, the simulator, node exporter and the many-series monitor on free ports.
- ``stack_variant``: a fast copy of stack.toml; ``stack_run`` runs it as `make demo` (or `make watch`) does;
  ``hostload``: the host's CPU load from /proc, and CPU-bound processes (the quiet_cpu tests);
  ``quickstack``: that stack with the dashboard, for the browser test and the screenshot script.
- ``fleet``: a many-series exporter (``python -m harness.fleet``); ``service_metrics``: the monitors' and
  the detector's gauges on a free port; ``fake_monitors``: the monitors' anomaly counters, fast.
- ``cli``: running an entry point as a user would; ``net``: busy ports, a server answering garbage.
- ``grafana``: the dashboards' queries as Grafana fills them; ``waves``: the simulator's waves in numpy;
  ``monitor_doubles``: a band detector over a flat forecast; ``incidents``: a sample incident lifecycle.
"""

from __future__ import annotations

from stack.config import ROOT

__all__ = ["ROOT"]
