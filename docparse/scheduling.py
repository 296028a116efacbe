"""Fair shares of a bounded resource across documents (GitHub issue #19).

A plain ``asyncio.Semaphore`` serves its waiters first come, first served: a one-page
request's single VLM call waited behind every queued region of eight 17-page documents
(0.93 s alone, 4.7 s under that load). ``FairSlots`` keeps the same bound but, each time
a slot frees, hands it to the waiter whose document

1. is of the best priority class (``Priority``: synchronous requests before jobs, strictly);
2. holds the fewest slots right now (max-min fairness: a newcomer with nothing in flight
   goes first, so the one-page request gets the very next free slot);
3. was served least recently (round robin among equals);

and within one document, first come, first served. It never leaves a slot free while
anyone waits, so utilisation is what a FIFO semaphore gives. No maintained library
does this (the asyncio semaphores on PyPI are FIFO, per-priority or distributed).

Who is asking travels as a ``Ticket`` (one per document run, hashed by identity: two
requests with the same logId are still two documents) in a context variable: the
pipeline starts each document's work in a task holding it (``ticket_task``) and
every task started from there copies it, so the VLM client finds it without every layer
in between (recognisers, page retries, the CPU engines) passing it along. Calls outside
a document share ``UNTRACKED``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import enum
import itertools
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Coroutine, TypeVar

from docparse.errors import InvalidRequestError


class Priority(enum.IntEnum):
    """Service classes, best first; also vLLM's request ``priority`` (lower runs first)."""

    INTERACTIVE = 0  # synchronous requests: someone is waiting for the answer
    BATCH = 1  # jobs (the async jobs API): served only when no synchronous work waits

    @classmethod
    def parse(cls, value: object) -> "Priority":
        """A priority from its name (``interactive``/``batch``, any case); a clear error else."""
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        names = ", ".join(name.lower() for name in cls.__members__)
        raise ValueError(f"unknown priority {value!r}; known: {names}")


#: The Triton request parameter that marks a document's class (``batch``: the jobs runner
#: sets it). Not part of the public API: the gateway's routes never set it, and a client
#: calling Triton itself can only lower its own rank with it (nothing ranks above the
#: default, ``interactive``).
PRIORITY_PARAMETER = "docparse_priority"


def priority_of(parameters: dict) -> Priority:
    """The class a Triton request's parameters give (``interactive`` when unset); a value
    that names none is refused by name."""
    value = parameters.get(PRIORITY_PARAMETER)
    if value is None:
        return Priority.INTERACTIVE
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise InvalidRequestError(f"request parameter {PRIORITY_PARAMETER}: {exc}") from None


@dataclass(frozen=True, eq=False)
class Ticket:
    """One document's claim on shared slots; equal only to itself."""

    name: str = ""  # the logId, for logs
    priority: Priority = Priority.INTERACTIVE


UNTRACKED = Ticket("untracked")
T = TypeVar("T")
_current: contextvars.ContextVar[Ticket] = contextvars.ContextVar("docparse_ticket", default=UNTRACKED)


def current_ticket() -> Ticket:
    """The ticket of the document this code works for (``UNTRACKED`` outside any)."""
    return _current.get()


def ticket_task(ticket: Ticket, coroutine: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
    """A task running ``coroutine`` with ``ticket`` current: it, and every task it starts,
    work on ``ticket``'s account. (Started inside a copied context rather than with
    ``create_task(context=...)``, which needs Python 3.11: the Triton image runs 3.10.)"""
    context = contextvars.copy_context()
    context.run(_current.set, ticket)
    return context.run(asyncio.create_task, coroutine)


@dataclass
class _Account:
    """What FairSlots knows of one ticket: slots held, waiters, when last served."""

    last_served: int  # the sequence number of its last grant, or of its arrival
    held: int = 0
    waiters: collections.deque[asyncio.Future] = field(default_factory=collections.deque)  # FIFO


class FairSlots:
    """At most ``limit`` holders at once, the free slot going to the fairest waiter (the
    module's docstring). Not thread-safe: one event loop, like ``asyncio.Semaphore``.

    Invariant: someone waits only while every slot is taken (a release hands its slot
    straight to a waiter), so a free slot is taken at once."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"FairSlots needs a limit >= 1, got {limit}")
        self.limit = limit
        self.in_use = 0
        self._accounts: dict[Ticket, _Account] = {}
        self._order = itertools.count()  # newcomers' arrivals and grants, one sequence

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now."""
        return sum(not w.done() for account in self._accounts.values() for w in account.waiters)

    def held_by(self, ticket: Ticket) -> int:
        account = self._accounts.get(ticket)
        return account.held if account else 0

    @asynccontextmanager
    async def hold(self, ticket: Ticket | None = None) -> AsyncIterator[None]:
        """One slot for the block, on ``ticket``'s account (the current one by default)."""
        ticket = current_ticket() if ticket is None else ticket
        await self.acquire(ticket)
        try:
            yield
        finally:
            self.release(ticket)

    async def acquire(self, ticket: Ticket) -> None:
        """Wait for a slot. Cancelled while waiting, the caller holds nothing, whether or
        not the slot had already been handed to it."""
        account = self._accounts.get(ticket)
        if account is None:  # a newcomer counts as served when it arrives (round robin)
            account = self._accounts[ticket] = _Account(last_served=next(self._order))
        if self.in_use < self.limit:
            self._grant(account)
            return
        waiter = asyncio.get_running_loop().create_future()
        account.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(ticket)  # handed a slot, cancelled before it could run: pass it on
            else:
                account.waiters.remove(waiter)
                self._forget_if_idle(ticket)
            raise

    def release(self, ticket: Ticket) -> None:
        """Give back one of ``ticket``'s slots: to the fairest waiter, if any."""
        account = self._accounts.get(ticket)
        if account is None or account.held == 0:
            raise RuntimeError(f"FairSlots.release: {ticket.name or 'the ticket'} holds no slot")
        account.held -= 1
        self.in_use -= 1
        self._forget_if_idle(ticket)
        self._hand_out()

    def set_limit(self, limit: int) -> None:
        """A new bound (the VLM servers behind it came or went, ``recognition.endpoints``):
        a higher one serves waiters at once; under a lower one, holders above it keep
        their slots and releases are not handed on until the count is under it."""
        if limit < 1:
            raise ValueError(f"FairSlots needs a limit >= 1, got {limit}")
        self.limit = limit
        self._hand_out()

    def _hand_out(self) -> None:
        """Free slots to the fairest waiters, while any are free."""
        while self.in_use < self.limit and (chosen := self._next_waiter()) is not None:
            chosen_account, waiter = chosen
            chosen_account.waiters.remove(waiter)
            self._grant(chosen_account)
            waiter.set_result(None)

    def _grant(self, account: _Account) -> None:
        account.held += 1
        account.last_served = next(self._order)
        self.in_use += 1

    def _next_waiter(self) -> tuple[_Account, asyncio.Future] | None:
        """The first live waiter of the best account: priority, fewest held, least
        recently served. A waiter cancelled but not yet run is skipped (it leaves by itself)."""
        best: tuple | None = None
        chosen = None
        for ticket, account in self._accounts.items():
            waiter = next((w for w in account.waiters if not w.done()), None)
            if waiter is None:
                continue
            rank = (ticket.priority, account.held, account.last_served)
            if best is None or rank < best:
                best, chosen = rank, (account, waiter)
        return chosen

    def _forget_if_idle(self, ticket: Ticket) -> None:
        """A ticket holding and awaiting nothing is dropped (documents come and go)."""
        account = self._accounts.get(ticket)
        if account is not None and account.held == 0 and not account.waiters:
            del self._accounts[ticket]
