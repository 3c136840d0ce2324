"""The edge of every command: turn user errors into one line on stderr and an exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from streamwatch.errors import UserError

Main = Callable[[Sequence[str] | None], int | None]


def run(main: Main, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run ``main`` and return its exit status; a ``UserError`` becomes ``prog: error: msg`` and status 2.

    Ctrl-C is a normal way to stop a long-running service, so it ends quietly with status 130.
    """
    name = prog or _prog_name()
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"{name}: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are ``UserError``s: one line and exit 2 through ``run``, like every
    other bad input, instead of argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see --help)")


def one_line(text: str) -> str:
    """Collapse a message onto a single line so logs and terminals stay readable."""
    return " ".join(text.split())


def _prog_name() -> str:
    import os

    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "streamwatch"
