"""Tritonserver stops at once after a fuzz run (found by the short fuzz run: the session's
tritonserver then took its whole 30 s exit timeout to stop). Both Python clients
cancelled a stream that had ended with an error, and tritonserver 2.51 keeps a request
cancelled after its last response, so layout-parsing-stream could not unload. An error
is the last response of a stream: nothing is left to cancel."""

from __future__ import annotations

import time

import httpx
import pytest

from bench.fuzz.inputs import plan
from bench.fuzz.run import Target, fuzz
from scripts.triton_local import TritonServer
from tests.conftest import triton_env

pytestmark = pytest.mark.triton

INPUTS = 300
STOP_BOUND = 15.0  # seconds; a clean stop takes about 3, one that waits for held requests 30


def test_triton_stops_at_once_after_a_fuzz_run(start_gateway, tiny_layout_dir, vlm_server, tmp_path):
    triton = TritonServer(env=triton_env(tiny_layout_dir, vlm_server), log_path=tmp_path / "tritonserver.log",
                          ready_timeout=180).start()
    try:
        gateway = start_gateway(triton_url=triton.grpc_url)
        spec = httpx.get(f"{gateway.url}/openapi.json", timeout=30).json()
        result = fuzz(Target(gateway.url), plan(spec, INPUTS, seed=5), INPUTS, concurrency=3, bound=30.0)
        assert result.tally.failures == [] and result.tally.sent == INPUTS
    finally:
        started = time.monotonic()
        triton.stop(timeout=60)
        stopped_in = time.monotonic() - started
    log = triton.log_tail(200)
    assert "successfully unloaded 'layout-parsing-stream'" in log, log
    assert stopped_in < STOP_BOUND, f"tritonserver took {stopped_in:.1f} s to stop:\n{log}"
