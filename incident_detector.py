"""Streamwatch incident detector: ``python incident_detector.py --help``."""

import sys

from streamwatch.cli import lazy_main, run

if __name__ == "__main__":
    sys.exit(run(lazy_main("incident.cli"), prog="incident_detector.py"))
