"""Bounded concurrency with a bounded wait: past the wait the answer is 503, never an
unbounded queue that turns a burst into timeouts for everybody."""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from docparse.errors import OverloadedError
from gateway import metrics

MAX_RETRY_AFTER = 600  # seconds; a longer hint is no better than "later"
HOLD_SMOOTHING = 0.2  # weight of the newest hold time in the running mean


class Slots:
    """At most ``size`` holders at once in this worker; a caller waits at most
    ``wait_timeout`` seconds for a slot."""

    def __init__(
        self, kind: str, size: int, wait_timeout: float, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.kind = kind
        self.size = size
        self.wait_timeout = wait_timeout
        self._clock = clock
        self._semaphore = asyncio.Semaphore(size)
        self._waiting = 0
        self._mean_hold: float | None = None  # seconds a slot is held, recent requests

    def retry_after(self) -> int:
        """Seconds after which a refused request can expect a slot: at the pace slots
        were freed lately (``size`` slots, each held ``mean_hold`` seconds), the time
        for everyone waiting now and the caller to get one. Before any request has
        finished, the wait the caller just gave up after."""
        if self._mean_hold is None:
            estimate = self.wait_timeout
        else:
            estimate = (self._waiting + 1) * self._mean_hold / self.size
        return max(1, min(math.ceil(estimate), MAX_RETRY_AFTER))

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        taken = await self.acquire()
        try:
            yield
        finally:
            self.release(taken)

    async def acquire(self) -> float:
        """Take a slot, or raise OverloadedError (503) when none frees up in time.
        Returns when it was taken, for ``release``."""
        started = time.perf_counter()
        if not await self._acquire():
            metrics.REJECTIONS.labels(reason=f"{self.kind}_busy").inc()
            retry_after = self.retry_after()
            raise OverloadedError(
                f"the server is busy: {self.size} {self.kind} requests are in progress in "
                f"this worker and no slot freed up within {self.wait_timeout:g} s; "
                f"retry in {retry_after} s",
                retry_after=retry_after,
            )
        metrics.SLOT_WAIT.labels(kind=self.kind).observe(time.perf_counter() - started)
        return self._clock()

    def release(self, taken: float) -> None:
        """Give the slot taken at ``taken`` back; how long it was held feeds the
        Retry-After estimate."""
        self._semaphore.release()
        held = self._clock() - taken
        previous = held if self._mean_hold is None else self._mean_hold
        self._mean_hold = (1 - HOLD_SMOOTHING) * previous + HOLD_SMOOTHING * held

    async def _acquire(self) -> bool:
        if not self._semaphore.locked():
            await self._semaphore.acquire()  # free now: never lost to a zero wait
            return True
        self._waiting += 1
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self.wait_timeout)
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1
        return True
