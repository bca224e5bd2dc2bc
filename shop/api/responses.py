"""The one way a route answers with a JSON document it built itself (responses that flask-smorest does not
serialize: documents made once, for the answer and for replays)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=dict(headers or {}))
