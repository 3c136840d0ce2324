"""Root script: ``python monitor.py METRIC TRAIN_FILE PORT [options]`` (see ``--help``)."""

import sys

from monitor.cli import main
from streamwatch.cli import run

if __name__ == "__main__":
    sys.exit(run(main, prog="monitor.py"))
