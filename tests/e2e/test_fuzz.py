"""OpenAPI-driven fuzzing of the gateway: whatever a client sends, never a 500."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from scripts.gateway_local import GatewayServer

pytestmark = pytest.mark.triton


@pytest.fixture()
def api_schema(gateway: GatewayServer):
    return schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_gateway_fail(case):
    case.call_and_validate(checks=[not_a_server_error], timeout=60)
