"""Start the simulator: ``python simulator.py [serve|generate|capture] ...`` (README, simulator)."""

import sys

from simulator.cli import main
from streamwatch.cli import run

if __name__ == "__main__":
    sys.exit(run(main, prog="simulator.py"))
