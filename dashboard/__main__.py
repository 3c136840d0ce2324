import sys

from dashboard.cli import run

sys.exit(run())
