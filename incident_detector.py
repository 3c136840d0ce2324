"""Streamwatch incident detector: ``python incident_detector.py --help``."""

from incident.cli import entry

if __name__ == "__main__":
    entry()
