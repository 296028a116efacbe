"""The shapes of load: a closed loop (N clients, each sending when its last request
ends) or an open loop (arrivals at a rate whatever the service does), and the loop that
sends requests in that shape."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator

from bench.senders import RequestRecord


@dataclass(frozen=True)
class ClosedLoop:
    """``concurrency`` clients, each sending its next request when the last one ends;
    client k starts ``k * stagger`` seconds after the first (clients that start together
    may stay in step: a service that answers them together gets their next requests
    together)."""

    concurrency: int
    stagger: float = 0.0

    def describe(self) -> dict:
        described = {"mode": "closed", "concurrency": self.concurrency}
        return {**described, "stagger_s": self.stagger} if self.stagger else described


@dataclass(frozen=True)
class OpenLoop:
    """Requests arriving at ``rate`` per second whatever the service does; at most
    ``max_in_flight`` at once, the others wait (and that wait is recorded)."""

    rate: float
    arrival: str  # "poisson" or "uniform"
    max_in_flight: int
    seed: int = 1

    def describe(self) -> dict:
        return {"mode": "open", "rate": self.rate, "arrival": self.arrival, "max_in_flight": self.max_in_flight}


def arrival_offsets(rate: float, arrival: str, rng: random.Random) -> Iterator[float]:
    """Seconds after the start at which requests arrive, forever: evenly spaced
    (``uniform``) or with exponential gaps of mean 1/rate (``poisson``)."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if arrival == "uniform":
        yield from (i / rate for i in itertools.count())
    elif arrival == "poisson":
        offset = 0.0
        while True:
            yield offset
            offset += rng.expovariate(rate)
    else:
        raise ValueError(f"arrival must be poisson or uniform, got {arrival!r}")


Issue = Callable[[float], Awaitable[RequestRecord]]


async def generate(load: ClosedLoop | OpenLoop, issue: Issue, on_done: Callable[[RequestRecord], None],
                   stop: asyncio.Event) -> None:
    """Send requests in ``load``'s shape until ``stop`` is set, then wait for those in
    flight. Cancelling it cancels them."""
    if isinstance(load, ClosedLoop):
        async def client(number: int) -> None:
            try:  # its start, unless stopped first
                await asyncio.wait_for(stop.wait(), number * load.stagger)
            except TimeoutError:
                pass
            while not stop.is_set():
                on_done(await issue(time.perf_counter()))

        await asyncio.gather(*(client(number) for number in range(load.concurrency)))
        return
    slots = asyncio.Semaphore(load.max_in_flight)
    running: set[asyncio.Task] = set()

    async def one(scheduled: float) -> None:
        try:
            on_done(await issue(scheduled))
        finally:
            slots.release()

    start = time.perf_counter()
    try:
        for offset in arrival_offsets(load.rate, load.arrival, random.Random(load.seed)):
            try:  # sleep until the arrival, unless stopped first
                await asyncio.wait_for(stop.wait(), max(0.0, start + offset - time.perf_counter()))
            except TimeoutError:
                pass
            if stop.is_set():
                break
            await slots.acquire()  # a full house delays the send; the record keeps the delay
            task = asyncio.create_task(one(start + offset))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
