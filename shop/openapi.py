"""flask-smorest's Api, told that errors are problem+json documents answered by shop.errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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


def json_numbers(self: Any, field: ma.fields.Field[Any], ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """An apispec attribute function: bounds as JSON numbers, and none on text.

    apispec copies a Decimal field's Range as Decimal values, which the JSON encoder writes as strings
    ("maximum": "9999999999.99"): not a number, and schema-driven tools refused the operations. A price is sent
    as text ("19.99"), where minimum and maximum mean nothing; it gets a pattern instead.
    """
    changed: dict[str, Any] = {}
    for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        value = ret.get(bound)
        if isinstance(value, Decimal):
            changed[bound] = int(value) if value == value.to_integral_value() else float(value)
    if ret.get("type") == "string" and isinstance(field, ma.fields.Decimal):
        for bound in ("minimum", "maximum"):
            ret.pop(bound, None)
            changed.pop(bound, None)
        changed["pattern"] = DECIMAL_TEXT
    return changed


DECIMAL_TEXT = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
