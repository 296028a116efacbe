"""A circuit breaker for the VLM: once it is known to be down, fail at once instead of
spending every region's retries on it, and find out by itself when it is back.

Closed: calls go through; ``failures`` consecutive failures that say the server is down
(no connection, a timeout, 502/503/504) open it. Open: calls fail at once for
``open_seconds``. Then half-open: the first caller probes the server's health check;
healthy lets calls through again (the first success closes the circuit, a failure
re-opens it), unhealthy re-opens it for another ``open_seconds``.

A small class of our own: the circuit-breaker packages on PyPI are synchronous
(pybreaker) or thinly kept asyncio forks, and none probes a health URL before letting
real traffic through.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Awaitable, Callable

from docparse.errors import RecognitionUnavailableError

Probe = Callable[[], Awaitable[bool]]


class CircuitBreaker:
    def __init__(self, failures: int, open_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.open_seconds = open_seconds
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probe_lock: asyncio.Lock | None = None

    @property
    def is_open(self) -> bool:
        """Open and its time not yet over: calls must not be made."""
        return self._opened_at is not None and self._clock() - self._opened_at < self.open_seconds

    @property
    def tripped(self) -> bool:
        """Found down and not yet found back by a probe (open, or its time over)."""
        return self._opened_at is not None

    def retry_after(self) -> int:
        """Whole seconds until the circuit lets a call through again (its full open time
        when it is not open: the soonest a server found down can be expected back)."""
        if self._opened_at is None:
            return max(1, math.ceil(self.open_seconds))
        remaining = self.open_seconds - (self._clock() - self._opened_at)
        return max(1, math.ceil(remaining))

    def refusal(self, what: str) -> RecognitionUnavailableError:
        return RecognitionUnavailableError(
            f"{what} is down: {self._consecutive} calls in a row failed; not calling it again "
            f"for {self.retry_after()} s (HPS_VLM_CIRCUIT_OPEN_SECONDS)",
            retry_after=self.retry_after(),
        )

    async def admit(self, what: str, probe: Probe) -> None:
        """Return when a call may be made; raise ``RecognitionUnavailableError`` (with
        Retry-After) while the circuit is open or the half-open probe fails."""
        if self._opened_at is None:
            return
        if self.is_open:
            raise self.refusal(what)
        if self._probe_lock is None:
            self._probe_lock = asyncio.Lock()
        async with self._probe_lock:  # one probe for every caller waiting at half-open
            if self._opened_at is None:
                return
            if self.is_open:
                raise self.refusal(what)
            if not await probe():
                self._opened_at = self._clock()
                raise self.refusal(what)
            self._opened_at = None  # half-open: calls go through,
            self._consecutive = self.failures - 1  # and the next failure re-opens at once

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None

    def record_failure(self) -> None:
        """A failure that says the server is down (not one that a bad input causes)."""
        self._consecutive += 1
        if self._consecutive >= self.failures:
            self._opened_at = self._clock()
