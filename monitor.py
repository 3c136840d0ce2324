"""Root script: ``python monitor.py METRIC TRAIN_FILE PORT [options]`` (see ``--help``)."""

import sys

from streamwatch.cli import lazy_main, run

if __name__ == "__main__":
    sys.exit(run(lazy_main("monitor.cli"), prog="monitor.py"))
