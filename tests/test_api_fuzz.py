"""The API fuzzer: schemathesis generates requests from /api/v1/openapi.json, valid and invalid, for every
operation, and sends each as an anonymous caller, a customer and staff. Every answer is checked: never a 5xx,
a status the document lists for the operation, and a body that matches the documented schema.

Bounded: FUZZ_EXAMPLES examples per operation (SHOP_FUZZ_EXAMPLES for a longer run), derandomized, so a
failure in CI is the same failure on a laptop.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.conftest import AuthActions
from tests.helpers import add_product

FUZZ_EXAMPLES = int(os.environ.get("SHOP_FUZZ_EXAMPLES", "30"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_every_operation_answers_every_generated_request_as_documented(
    app: Flask, auth: AuthActions, db_session: Any
) -> None:
    add_product(db_session, "FUZZ-1", name="Fuzzed lamp")
    callers = {
        "anonymous": {},
        "customer": auth.headers("customer@example.com", "customer"),
        "staff": auth.headers("staff@example.com", "staff"),
    }
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]  # Err raises
    assert len(operations) >= 15

    without_inputs: list[str] = []
    for operation, mode in [(operation, mode) for operation in operations for mode in GenerationMode]:

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: Any) -> None:
            for headers in callers.values():
                case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            answers_as_documented()
        except Unsatisfiable:
            # an operation with no parameters and no body (GET /healthz) has nothing to make invalid
            assert mode is GenerationMode.NEGATIVE, operation.label
            without_inputs.append(operation.label)
    assert len(without_inputs) < len(operations) // 2, without_inputs
