"""The edge of every command: turn user errors into one line on stderr and an exit status."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
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
    except ModuleNotFoundError as exc:
        if not is_missing_dependency(exc):
            raise  # one of our own modules: a bug, worth its traceback
        print(f"{name}: error: {missing_dependency_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def lazy_main(module: str) -> Main:
    """``module``'s ``main``, imported only when called: a root script started by a Python without the
    dependencies (the system's, not the venv's) then fails inside ``run``, as one line."""

    def main(argv: Sequence[str] | None = None) -> int | None:
        return importlib.import_module(module).main(argv)  # type: ignore[no-any-return]

    return main


# Streamwatch's own top-level packages sit beside this one (in the checkout or in site-packages).
_OURS = Path(__file__).resolve().parent.parent


def is_missing_dependency(exc: ModuleNotFoundError) -> bool:
    """True when the missing module is a third-party one (pandas, flask...), not one of ours."""
    if not exc.name:
        return False
    top = exc.name.split(".")[0]
    return not ((_OURS / top).is_dir() or (_OURS / f"{top}.py").is_file())


def missing_dependency_message(exc: ModuleNotFoundError) -> str:
    return (
        f"this Python ({sys.executable}) has no module {exc.name!r}: Streamwatch runs in its venv; "
        "run `make setup` once, then use .venv/bin/python (or `source .venv/bin/activate` first)"
    )


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
