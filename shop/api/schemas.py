"""Reading requests: the blueprint and parser every API route uses, and the base of every request schema.

A JSON body nested deeper than Python's recursion limit made the parser raise RecursionError, a 500: it is
a 400 here, like any other body that is not JSON shop can read.

Text PostgreSQL cannot store is refused before any field.

PostgreSQL's text types hold no NUL character, and a lone UTF-16 surrogate ("\\ud800", which JSON can
spell) cannot be encoded as UTF-8 at all: either reached the database as a 500. Every string anywhere in a
request's arguments or body is checked here, so a new field is covered without anyone remembering to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, cast

import flask
import marshmallow as ma
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Blueprint as SmorestBlueprint
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Must not contain NUL characters or unpaired surrogates."
UNSTORABLE_NAME_MESSAGE = "Field names must not contain NUL characters or unpaired surrogates."


def unstorable_text(value: Any, path: str = "") -> dict[str, list[str]]:
    """Where in `value` (a parsed JSON document or a mapping of arguments) a string holds unstorable text."""
    found: dict[str, list[str]] = {}
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            found[path or "_request"] = [UNSTORABLE_MESSAGE]
    elif isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and UNSTORABLE.search(key):
                found[path or "_request"] = [UNSTORABLE_NAME_MESSAGE]
            found.update(unstorable_text(item, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.update(unstorable_text(item, f"{path}.{index}" if path else str(index)))
    return found


BODY_CHECKED = "shop_body_checked"


class InputSchema(ma.Schema):
    """Every request schema derives from this one."""

    @ma.pre_load
    def refuse_unstorable_text(self, data: Any, **kwargs: Any) -> Any:
        in_request = flask.has_request_context()
        if in_request and not isinstance(data, MultiDictProxy) and flask.g.get(BODY_CHECKED):
            # a nested schema's part of a body the outer schema checked whole, a moment ago (the outer one's
            # pre_load runs first): walking it again cost an order's request a few per cent of its CPU
            return data
        if isinstance(data, MultiDictProxy):
            # query arguments: every value of a repeated one, each reported under the argument's name
            found = {
                name: [UNSTORABLE_MESSAGE]
                for name, values in cast(MultiDict[str, str], data.data).to_dict(flat=False).items()
                if unstorable_text([name, *values])
            }
        else:
            found = unstorable_text(data)
            if in_request and not found:
                flask.g.setdefault(BODY_CHECKED, True)
        if found:
            raise ma.ValidationError(found)
        return data


def parse_json_body(body: bytes) -> Any:
    """A request body as JSON; a JSONDecodeError (a 400) for one nested too deeply to parse."""
    try:
        return core.parse_json(body)
    except RecursionError:
        # not an empty document: webargs reads that as "no body"
        raise json.JSONDecodeError("The JSON body is nested too deeply.", "<body>", 0) from None


class RequestParser(FlaskParser):
    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return parse_json_body(req.get_data(cache=True))


class Blueprint(SmorestBlueprint):  # type: ignore[misc]  # flask-smorest ships no type information
    """flask-smorest's Blueprint with shop's request parser."""

    ARGUMENTS_PARSER = RequestParser()


class JSONProvider(DefaultJSONProvider):
    """Flask's own JSON reading (request.get_json, used by the rate limits' keys) with the same 400 for depth."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("The JSON body is nested too deeply.") from None
