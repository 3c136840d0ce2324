"""Start the simulator: ``python simulator.py [serve|generate|capture] ...`` (README, simulator)."""

import sys

from streamwatch.cli import lazy_main, run

if __name__ == "__main__":
    sys.exit(run(lazy_main("simulator.cli"), prog="simulator.py"))
