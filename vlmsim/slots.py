"""The fixed timing's bound on running calls: vLLM's ``--max-num-seqs`` without the
batching model, and the busy slot-seconds that utilisation is computed from."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable


class Slots:
    """vLLM's ``--max-num-seqs`` for the fixed timing: at most ``limit`` calls run, the
    others wait. The limit can change while calls wait."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.running = 0
        self.waiting = 0
        self.peak = 0
        self.clock = clock
        self._busy = 0.0  # slot-seconds up to _busy_since
        self._busy_since = clock()
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._changed:
            self.waiting += 1
            try:
                await self._changed.wait_for(lambda: self.running < self.limit)
            finally:
                self.waiting -= 1
            self._count_busy()
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            async with self._changed:
                self._count_busy()
                self.running -= 1
                self._changed.notify_all()

    async def set_limit(self, limit: int) -> None:
        async with self._changed:
            self.limit = limit
            self._changed.notify_all()

    def busy_slot_seconds(self) -> float:
        self._count_busy()
        return self._busy

    def reset_totals(self) -> None:
        self._count_busy()
        self._busy = 0.0
        self.peak = self.running

    def _count_busy(self) -> None:
        now = self.clock()
        self._busy += self.running * (now - self._busy_since)
        self._busy_since = now
