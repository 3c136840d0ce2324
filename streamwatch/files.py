"""Reading a user's file with one clear error line for every way it can fail to be there."""

from __future__ import annotations

import os
from pathlib import Path

from streamwatch.errors import UserError


def read_bytes(path: str | os.PathLike[str], what: str, error: type[UserError] = UserError) -> bytes:
    """The file's bytes, or ``error`` naming the file: missing, a directory, or unreadable.

    ``what`` says what the file was meant to be ("training file", "config file") so the one line the
    user sees tells them which argument to fix.
    """
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror}") from None


def read_text(path: str | os.PathLike[str], what: str, error: type[UserError] = UserError) -> str:
    """``read_bytes`` decoded as UTF-8; a binary file is the same kind of one-line error."""
    data = read_bytes(path, what, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{Path(path)}: {what} is not UTF-8 text") from None
