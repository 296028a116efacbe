"""The gateway's slots: a bounded wait, then 503 with a Retry-After that means something."""

from __future__ import annotations

import asyncio

import pytest

from docparse.errors import OverloadedError
from gateway.limits import Slots


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_full_worker_refuses_after_the_wait_with_a_retry_after():
    slots = Slots("inference", size=1, wait_timeout=0.05)
    async with slots.hold():
        with pytest.raises(OverloadedError) as refused:
            await slots.acquire()
    assert refused.value.status == 503
    # Nothing has finished yet: the hint is the wait the caller just gave up after.
    assert refused.value.retry_after == 1
    assert "retry in 1 s" in refused.value.message


async def test_retry_after_follows_how_long_requests_hold_their_slot():
    clock = Clock()
    slots = Slots("inference", size=2, wait_timeout=5, clock=clock)
    for _ in range(2):  # two requests that took 10 s each
        async with slots.hold():
            clock.now += 10
    assert slots.retry_after() == 5  # two slots, 10 s each: one frees every 5 s

    async with slots.hold(), slots.hold():
        waiter = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        assert slots.retry_after() == 10  # behind the one already waiting: 2 x 5 s
        waiter.cancel()


async def test_the_hint_is_capped():
    clock = Clock()
    slots = Slots("inference", size=1, wait_timeout=0.01, clock=clock)
    async with slots.hold():
        clock.now += 10_000
    assert slots.retry_after() == 600
