"""What may leave the process in a log line or an error report: text with personal data taken out.

Personal data reaches error text by three roads, each closed here:
- emails and bearer tokens quoted in a message;
- PostgreSQL's DETAIL of a failed row or key ("Failing row contains (7, Ann, 1 Main St, ...)",
  "Key (email)=(ann@example.com) already exists"), which psycopg2 puts in the exception's text;
- SQLAlchemy's "[parameters: ...]" suffix (the engine is also built with hide_parameters=True, so it
  should never appear; this is the second lock on that door).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
ARGON2_HASH = re.compile(r"\$argon2(?:id|i|d)\$[^\s'\",)]+")
# a webhook signing secret (shop/webhooks/secrets.py), and one sealed with Fernet (they start "gAAAAA")
WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9_-]+|gAAAAA[A-Za-z0-9_=-]{20,}")
FAILING_ROW = re.compile(r"(Failing row contains )\(.*?\)(?=\.?\s*$|\.?\n)", re.MULTILINE | re.DOTALL)
KEY_VALUES = re.compile(r"(Key \([^)]*\))=\(.*?\)( already exists| is not present| conflicts)", re.DOTALL)
SQL_PARAMETERS = re.compile(r"\[parameters: .*?\]\n?(?=\(Background|$)", re.DOTALL)


def redact(text: str) -> str:
    """`text` with every email, token, password hash, webhook secret, row and key value and statement parameter
    replaced."""
    text = FAILING_ROW.sub(r"\1([row withheld])", text)
    text = KEY_VALUES.sub(r"\1=([withheld])\2", text)
    text = SQL_PARAMETERS.sub("[parameters withheld]\n", text)
    text = ARGON2_HASH.sub("[password hash]", text)
    text = WEBHOOK_SECRET.sub("[webhook secret]", text)
    return EMAIL.sub("[email]", BEARER.sub("Bearer [token]", text))


def redact_value(value: Any) -> Any:
    """`redact` applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """On a handler: the message and the traceback of every record it writes, redacted.

    The traceback is formatted here into `exc_text`, which logging's formatters use as it is, so that the
    exception's own text, where PostgreSQL's DETAIL ends up, is redacted too. `exc_info` stays: error
    reporters read the exception itself (and scrub it themselves).
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger formats `exc_info` again itself, past `exc_text`: redact what it makes."""

    def formatException(self, ei: Any) -> str | list[str]:  # type: ignore[override]  # a list with exc_info_as_array
        formatted = super().formatException(ei)
        return redact(formatted) if isinstance(formatted, str) else [redact(line) for line in formatted]
