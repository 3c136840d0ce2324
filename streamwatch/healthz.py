"""``/healthz``, answered the same way by every server: 200, ``{"status": "ok"}`` as JSON, plus whatever
the server adds (the simulator names its metrics). Liveness and readiness probes read the status code;
people read the body.

>>> body()
b'{"status": "ok"}'
>>> body({"metrics": ["cpu"]})
b'{"status": "ok", "metrics": ["cpu"]}'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

PATH = "/healthz"
CONTENT_TYPE = "application/json"


def body(extra: Mapping[str, Any] | None = None) -> bytes:
    return json.dumps({"status": "ok", **(extra or {})}).encode()


def add_route(app: Any, extra: Callable[[], Mapping[str, Any]] | None = None) -> None:
    """Answer ``GET /healthz`` on a Flask ``app``."""
    from flask import Response  # only the Flask servers pay for the import

    def healthz() -> Response:
        return Response(body(extra() if extra else None), content_type=CONTENT_TYPE)

    app.add_url_rule(PATH, "healthz", healthz, methods=["GET"])
