"""Logging set-up shared by every service: aligned text for people, JSON lines for log shippers."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Literal

LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            doc.update(extra)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escape_control(text: str) -> str:
    """``text`` with every control character written as an escape: one message stays one line.

    An alert label holding a newline once printed as a forged second line of the receiver's log.

    >>> escape_control("ok\\nFIRING forged\\x1b[31m")
    'ok\\\\nFIRING forged\\\\x1b[31m'
    """
    return _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class TextFormatter(logging.Formatter):
    """One line per record (a traceback still follows it): control characters in the message and its
    arguments, which can come from a request, are escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        self.converter = time.localtime

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.message)
        return super().formatMessage(record)


def setup_logging(fmt: LogFormat = "text", level: int = logging.INFO) -> None:
    """Send every log line to stderr in ``fmt``; silence the chatty libraries we depend on."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # cmdstanpy logs every fit at INFO; werkzeug logs every request. Neither helps an operator.
    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
