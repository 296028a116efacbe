"""OpenAPI-driven fuzzing of the gateway: whatever a client sends, never a 500.

Schemathesis generates requests from the gateway's own /openapi.json (schemathesis's
pytest plugin does not run under pytest 9, so its strategies are driven by Hypothesis
directly)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from scripts.gateway_local import GatewayServer

pytestmark = pytest.mark.triton

EXAMPLES_PER_OPERATION = 40


def test_no_input_makes_the_gateway_fail(gateway: GatewayServer, vlm):
    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/layout-parsing", "/layout-parsing/stream"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case) -> None:
            case.call_and_validate(checks=[not_a_server_error], timeout=60)

        call()
