"""Continuous batching, reduced to GPU time: the pure scheduler and the engine that runs
it on the event loop (the vllm timing; bench/SIMULATOR.md)."""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Callable

from vlmsim.profiles import BatchingParams


@dataclass(eq=False)
class Sequence:
    """One request inside the simulated engine; times are on the scheduler's clock."""

    prompt_tokens: int
    output_tokens: int
    priority: int = 0  # vLLM's request priority: a lower one is admitted first
    state: str = "new"  # then waiting, prefill, decode, and finished or aborted
    scheduled: float | None = None  # admitted into the running batch (its prefill starts)
    finished: float | None = None
    prefill_left: float = 0.0  # seconds
    last_token_at: float = 0.0  # the scheduler's decode progress at which it is done


class BatchScheduler:
    """vLLM's continuous batching, reduced to GPU time. At most ``max_num_seqs``
    sequences run, the others wait in FIFO. An admitted sequence is prefilled (sequences
    one after another, decoding paused meanwhile: the GPU time chunked prefill would add
    to mixed steps), then it decodes one token per step, and a step with n sequences
    decoding takes ``params.step_seconds(n)``.

    Between two events (a prefill ending, a sequence finishing, an arrival, an abort)
    every decoding sequence advances at the same rate, so the scheduler keeps one shared
    progress count and jumps from event to event instead of stepping token by token: its
    cost is per event, not per token. Pure: callers pass the time (``advance(now)``
    before ``submit``/``abort``), so tests drive it with any clock."""

    TIME_EPSILON = 1e-6  # seconds: an event this close to now is due
    TOKEN_EPSILON = 1e-6  # tokens: float rounding of the shared progress

    def __init__(self, params: BatchingParams, max_num_seqs: int, now: float = 0.0) -> None:
        self.params = params
        self.max_num_seqs = max_num_seqs
        self.now = now
        self.progress = 0.0  # tokens every decoding sequence has advanced since the start
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.prefilling: collections.deque[Sequence] = collections.deque()
        self.decoding = 0
        self._by_last_token: list[tuple[float, int, Sequence]] = []  # heap; aborted ones linger
        self._arrival_order = itertools.count()
        self.busy_slot_seconds = 0.0  # integral of running sequences over time
        self.peak = 0

    @property
    def running(self) -> int:
        return len(self.prefilling) + self.decoding

    def submit(self, sequence: Sequence) -> None:
        """Queue ``sequence`` behind every waiting one of its priority or a better one
        (vLLM's priority policy; with one priority, first come first served)."""
        sequence.state = "waiting"
        behind = next((i for i, other in enumerate(self.waiting) if other.priority > sequence.priority), None)
        if behind is None:
            self.waiting.append(sequence)
        else:
            self.waiting.insert(behind, sequence)
        self._admit()

    def abort(self, sequence: Sequence) -> None:
        """Drop a sequence whose client went away, freeing its slot."""
        if sequence.state == "waiting":
            self.waiting.remove(sequence)
        elif sequence.state == "prefill":
            self.prefilling.remove(sequence)
        elif sequence.state == "decode":
            self.decoding -= 1
        else:
            return
        sequence.state = "aborted"
        self._admit()

    def set_limit(self, max_num_seqs: int) -> None:
        """A lower limit lets running sequences finish (no preemption)."""
        self.max_num_seqs = max_num_seqs
        self._admit()

    def reset_totals(self) -> None:
        self.busy_slot_seconds = 0.0
        self.peak = self.running

    def next_event(self) -> float | None:
        """When the state changes next by itself (None: idle until an arrival)."""
        if self.prefilling:
            return self.now + self.prefilling[0].prefill_left
        first = self._next_to_finish()
        if first is None:
            return None
        return self.now + (first.last_token_at - self.progress) * self.params.step_seconds(self.decoding)

    def advance(self, now: float) -> list[Sequence]:
        """Run the engine up to ``now``; the sequences that finished on the way."""
        finished: list[Sequence] = []
        while (event := self.next_event()) is not None and event <= now + self.TIME_EPSILON:
            self._run_until(event)
            finished += self._complete_due()
        self._run_until(now)
        return finished

    def _run_until(self, moment: float) -> None:
        elapsed = moment - self.now
        if elapsed <= 0:
            return
        self.busy_slot_seconds += self.running * elapsed
        if self.prefilling:
            self.prefilling[0].prefill_left -= elapsed
        elif self.decoding:
            self.progress += elapsed / self.params.step_seconds(self.decoding)
        self.now = moment

    def _complete_due(self) -> list[Sequence]:
        if self.prefilling and self.prefilling[0].prefill_left <= self.TIME_EPSILON:
            sequence = self.prefilling.popleft()
            sequence.state = "decode"
            sequence.last_token_at = self.progress + sequence.output_tokens
            heapq.heappush(self._by_last_token, (sequence.last_token_at, next(self._arrival_order), sequence))
            self.decoding += 1
        finished = []
        while (first := self._next_to_finish()) is not None and (
            first.last_token_at - self.progress <= self.TOKEN_EPSILON
        ):
            heapq.heappop(self._by_last_token)
            first.state, first.finished = "finished", self.now
            self.decoding -= 1
            finished.append(first)
        self._admit()
        return finished

    def _next_to_finish(self) -> Sequence | None:
        while self._by_last_token and self._by_last_token[0][2].state == "aborted":
            heapq.heappop(self._by_last_token)
        return self._by_last_token[0][2] if self._by_last_token else None

    def _admit(self) -> None:
        while self.waiting and self.running < self.max_num_seqs:
            sequence = self.waiting.popleft()
            sequence.state, sequence.scheduled = "prefill", self.now
            sequence.prefill_left = self.params.prefill_seconds_per_token * sequence.prompt_tokens
            self.prefilling.append(sequence)
        self.peak = max(self.peak, self.running)


class BatchingEngine:
    """Runs a BatchScheduler on the event loop: it sleeps until the next event or until
    a call arrives or leaves, so its CPU use grows with events, not with tokens."""

    def __init__(self, scheduler: BatchScheduler, clock: Callable[[], float] = time.monotonic) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self._done: dict[Sequence, asyncio.Future] = {}
        self._wake = asyncio.Event()
        self._runner: asyncio.Task | None = None

    async def generate(self, sequence: Sequence) -> None:
        """Returns when ``sequence`` has its last token; cancelling it aborts the sequence."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        done = asyncio.get_running_loop().create_future()
        self._done[sequence] = done
        self.sync()
        self.scheduler.submit(sequence)
        self._wake.set()
        try:
            await done
        except asyncio.CancelledError:
            self.sync()
            self.scheduler.abort(sequence)
            self._wake.set()
            raise
        finally:
            self._done.pop(sequence, None)

    def sync(self) -> None:
        """Bring the scheduler up to now and wake the callers whose sequences finished."""
        for sequence in self.scheduler.advance(self.clock()):
            done = self._done.get(sequence)
            if done is not None and not done.done():
                done.set_result(None)

    def reconfigure(self, params: BatchingParams, max_num_seqs: int) -> None:
        """New step costs apply from now on; sequences already admitted keep their prefill."""
        self.sync()
        self.scheduler.params = params
        self.scheduler.set_limit(max_num_seqs)
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            self.sync()
            event = self.scheduler.next_event()
            timer = None if event is None else loop.call_later(max(0.0, event - self.clock()), self._wake.set)
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()
