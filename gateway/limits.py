"""Bounded concurrency with a bounded wait: past the wait the answer is 503, never an
unbounded queue that turns a burst into timeouts for everybody."""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from docparse.errors import OverloadedError
from gateway import metrics


class Slots:
    """At most ``size`` holders at once in this worker; a caller waits at most
    ``wait_timeout`` seconds for a slot."""

    def __init__(self, kind: str, size: int, wait_timeout: float) -> None:
        self.kind = kind
        self.size = size
        self.wait_timeout = wait_timeout
        self._semaphore = asyncio.Semaphore(size)

    @property
    def retry_after(self) -> int:
        """The Retry-After hint, in whole seconds, given with a 503."""
        return max(1, math.ceil(self.wait_timeout))

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    async def acquire(self) -> None:
        """Take a slot, or raise OverloadedError (503) when none frees up in time."""
        started = time.perf_counter()
        if not await self._acquire():
            metrics.REJECTIONS.labels(reason=f"{self.kind}_busy").inc()
            raise OverloadedError(
                f"the server is busy: {self.size} {self.kind} requests are in progress in "
                f"this worker and no slot freed up within {self.wait_timeout:g} s; "
                f"retry in {self.retry_after} s"
            )
        metrics.SLOT_WAIT.labels(kind=self.kind).observe(time.perf_counter() - started)

    def release(self) -> None:
        self._semaphore.release()

    async def _acquire(self) -> bool:
        if not self._semaphore.locked():
            await self._semaphore.acquire()  # free now: never lost to a zero wait
            return True
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self.wait_timeout)
        except TimeoutError:
            return False
        return True
