"""Fuzzing the gateway, briefly (``make fuzz`` is the same run at scale): requests that
schemathesis generates from the served /openapi.json for every operation (valid and
invalid), odd requests to every path, mutated request bodies, and byte-level mutants of
real PDFs and images (bit flips, insertions, deletions, truncations, spliced objects,
duplicated xref sections, absurd numbers and image sizes), as base64 JSON and as uploads,
to both parsing routes. No answer may be a 5xx or late, every error is the envelope,
every stream ends with ``final`` or ``error``, and no gateway worker or Triton stub
crashes."""

from __future__ import annotations

import httpx
import pytest

from bench.fuzz.inputs import plan
from bench.fuzz.run import Target, fuzz
from scripts.gateway_local import GatewayServer
from scripts.triton_local import TritonServer

pytestmark = pytest.mark.triton

INPUTS = 400  # about 12 s here; `make fuzz` sends 10,000
SEED = 14
ANSWER_BOUND = 30.0  # seconds: a good answer takes well under 1 s


def test_no_input_makes_the_stack_fail(gateway: GatewayServer, triton: TritonServer, vlm, tmp_path):
    assert gateway.process and triton.process
    target = Target(gateway.url, gateway.process.pid, triton.process.pid)
    spec = httpx.get(f"{gateway.url}/openapi.json", timeout=30).json()
    result = fuzz(target, plan(spec, INPUTS, SEED), INPUTS, concurrency=3, bound=ANSWER_BOUND,
                  failures_dir=tmp_path / "failures", max_failures=10)

    assert result.tally.failures == [], result.tally.failures
    assert result.tally.sent == INPUTS
    kinds = set(result.tally.by_kind)
    assert {"openapi positive", "openapi negative", "protocol"} <= kinds
    assert {k for k in kinds if k.startswith("pdf ")} and {k for k in kinds if k.startswith("image ")}
    assert {k for k in kinds if k.startswith("request ")}
    operations = {"POST /layout-parsing", "POST /layout-parsing/stream", "GET /health", "GET /health/ready",
                  "GET /metrics"}
    assert operations <= set(result.tally.by_path)
    statuses = {s for counts in result.tally.by_kind.values() for s in counts}
    assert {"200", "422"} <= statuses  # mutants that still parse, and ones that do not
    assert result.watched >= 6 and not result.lost and not result.replaced  # master, 2 workers, server, stubs
    assert result.ready_status == 200
