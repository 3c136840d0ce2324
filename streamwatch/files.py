"""Reading a user's file with one clear error line for every way it can fail to be there, and a bound.

Only regular files are read: ``/dev/zero`` or a FIFO given as a config or training file once grew the
process to 6.8 GB or blocked forever. And the bytes read stop at ``max_bytes`` (checked while reading,
not from ``stat``, which a growing file or a device defeats), so no file can take more memory than that.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from streamwatch.errors import UserError

# A config file is a few KiB (a watch.toml with hundreds of queries stays far below this), a labels or
# data file for the evaluation below 1 MiB: whatever is larger is refused, not read into memory.
DEFAULT_MAX_BYTES = 16 * 2**20
_CHUNK = 1 << 20


def open_regular(path: str | os.PathLike[str], what: str, error: type[UserError] = UserError) -> int:
    """A descriptor open for reading on ``path``, or ``error`` naming the file: missing, a directory,
    unreadable, or not a regular file. Opened without blocking, so a FIFO cannot hang the caller."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise error(f"{p}: is a directory, not a {what}")
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{p}: not a regular file (a device, FIFO or socket cannot be a {what})")
    os.set_blocking(fd, True)
    return fd


def read_bytes(
    path: str | os.PathLike[str],
    what: str,
    error: type[UserError] = UserError,
    max_bytes: int = DEFAULT_MAX_BYTES,
    hint: str = "",
) -> bytes:
    """The file's bytes, or ``error`` naming the file: missing, a directory, not a regular file,
    unreadable, or larger than ``max_bytes`` (``hint`` says how to allow more).

    ``what`` says what the file was meant to be ("training file", "config file") so the one line the
    user sees tells them which argument to fix.
    """
    p = Path(path)
    fd = open_regular(p, what, error)
    chunks: list[bytes] = []
    size = 0
    try:
        with os.fdopen(fd, "rb", buffering=0) as fh:
            while size <= max_bytes:
                chunk = fh.read(min(_CHUNK, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror}") from None
    if size > max_bytes:
        more = f"; {hint}" if hint else ""
        raise error(f"{p}: {what} is larger than {max_bytes:,} bytes{more}")
    return b"".join(chunks)


def read_text(
    path: str | os.PathLike[str],
    what: str,
    error: type[UserError] = UserError,
    max_bytes: int = DEFAULT_MAX_BYTES,
    hint: str = "",
) -> str:
    """``read_bytes`` decoded as UTF-8; a binary file is the same kind of one-line error."""
    data = read_bytes(path, what, error, max_bytes, hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{Path(path)}: {what} is not UTF-8 text") from None
