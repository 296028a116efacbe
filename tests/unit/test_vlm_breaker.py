"""The VLM's circuit breaker: found down, the VLM is left alone and every call fails at
once with 503 and Retry-After instead of spending retries; found back (its /health
answers), calls go through again by themselves."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from docparse.errors import RecognitionError, RecognitionUnavailableError
from docparse.recognition.breaker import CircuitBreaker
from docparse.recognition.crops import encode_jpeg_data_uri
from docparse.recognition.vlm import VlmClient
from docparse.settings import VlmSettings
from scripts.processes import free_port
from vlmsim import SimulatorProcess


IMAGE = encode_jpeg_data_uri(np.full((28, 28, 3), 255, dtype=np.uint8))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def healthy() -> bool:
    return True


async def unhealthy() -> bool:
    return False


async def test_it_opens_after_the_failures_in_a_row_and_says_when_to_retry():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, open_seconds=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()  # a success in between: not in a row
    for _ in range(2):
        breaker.record_failure()
    await breaker.admit("the VLM", unhealthy)  # still closed: no probe needed
    breaker.record_failure()
    clock.now += 4
    with pytest.raises(RecognitionUnavailableError) as refused:
        await breaker.admit("the VLM", healthy)
    assert (refused.value.status, refused.value.retry_after) == (503, 6)
    assert "the VLM is down: 3 calls in a row failed" in refused.value.message


async def test_after_its_open_time_a_probe_decides():
    clock = Clock()
    breaker = CircuitBreaker(failures=2, open_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 10
    with pytest.raises(RecognitionUnavailableError):
        await breaker.admit("the VLM", unhealthy)  # still down: open for another 10 s
    assert breaker.retry_after() == 10
    clock.now += 10
    await breaker.admit("the VLM", healthy)  # back: calls go through
    breaker.record_failure()  # but the first failure opens it again at once
    assert breaker.is_open
    clock.now += 10
    await breaker.admit("the VLM", healthy)
    breaker.record_success()
    breaker.record_failure()
    assert not breaker.is_open  # a success closed it: one failure is not enough


async def test_a_vlm_that_is_gone_fails_calls_at_once_and_is_used_again_when_back():
    port = free_port()
    settings = VlmSettings(
        url=f"http://127.0.0.1:{port}/v1", max_retries=5, retry_backoff=0.01, retry_backoff_max=0.02,
        connect_timeout=1, circuit_failures=3, circuit_open_seconds=0.5,
    )
    client = VlmClient(settings)
    try:
        with pytest.raises(RecognitionUnavailableError, match="not calling it again") as first:
            await client.complete(IMAGE, "Text Recognition:", max_tokens=10, temperature=0.0)
        assert first.value.retry_after == 1  # three attempts opened it; the other three were not made
        with pytest.raises(RecognitionUnavailableError, match="is down"):
            await client.complete(IMAGE, "Text Recognition:", max_tokens=10, temperature=0.0)
        with SimulatorProcess(port=port, latency=0.0) as sim:
            answer = await eventually_answered(client)
            assert answer and sim.calls()
    finally:
        await client.aclose()


async def eventually_answered(client: VlmClient, timeout: float = 10.0) -> str:
    """The first answer once the circuit lets calls through again (it was open)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await client.complete(IMAGE, "Text Recognition:", max_tokens=10, temperature=0.0)
        except RecognitionUnavailableError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_errors_the_vlm_answers_do_not_open_it(sim):
    sim.configure(failures=[{"status": 500}])
    settings = VlmSettings(url=sim.url, max_retries=0, circuit_failures=2)
    client = VlmClient(settings)
    try:
        for _ in range(4):  # a 500 may be one bad input: the VLM is up
            with pytest.raises(RecognitionError) as failed:
                await client.complete(IMAGE, "Text Recognition:", max_tokens=10, temperature=0.0)
            assert failed.value.status == 502
        assert [e.state for e in client.pool.endpoints] == ["up"]
    finally:
        await client.aclose()
