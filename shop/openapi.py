"""flask-smorest's Api, told that errors are problem+json documents answered by shop.errors."""

from __future__ import annotations

import marshmallow as ma
from flask_smorest import Api


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, the body of every error response (documentation only)."""

    type = ma.fields.String(metadata={"description": "URI reference naming the kind of problem"})
    title = ma.fields.String(metadata={"description": "Short summary of the kind of problem"})
    status = ma.fields.Integer(metadata={"description": "HTTP status code"})
    detail = ma.fields.String(metadata={"description": "What went wrong with this request"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Validation failures: field name to messages"},
    )


class ProblemApi(Api):  # type: ignore[misc]  # flask-smorest ships no type information
    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """shop.errors registers one handler for every error, these included."""
