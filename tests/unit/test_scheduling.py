"""docparse.scheduling: who gets a freed slot (a newcomer with nothing in flight first,
round robin among equals, synchronous requests before jobs), the bound held, and no slot
lost to a waiter cancelled at any moment."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docparse.scheduling import UNTRACKED, FairSlots, Priority, Ticket, current_ticket, ticket_task


async def settle() -> None:
    """Let every runnable task run until it waits (no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


class Log:
    """Tasks that take a slot and note who got it, in order."""

    def __init__(self, slots: FairSlots) -> None:
        self.slots = slots
        self.granted: list[str] = []
        self.tasks: dict[str, asyncio.Task] = {}

    def ask(self, ticket: Ticket, label: str) -> asyncio.Task:
        async def take() -> None:
            await self.slots.acquire(ticket)
            self.granted.append(label)

        self.tasks[label] = asyncio.create_task(take())
        return self.tasks[label]


async def test_a_newcomer_gets_the_next_free_slot_before_a_big_documents_queue():
    slots = FairSlots(2)
    big, small = Ticket("big"), Ticket("small")
    log = Log(slots)
    for n in range(5):
        log.ask(big, f"big{n}")
    await settle()
    log.ask(small, "small")
    await settle()
    assert log.granted == ["big0", "big1"] and slots.waiting == 4

    slots.release(big)
    await settle()
    assert log.granted[-1] == "small"  # not big2, which had waited longer
    assert (slots.held_by(big), slots.held_by(small)) == (1, 1)


async def test_documents_holding_as_much_take_turns():
    slots = FairSlots(1)
    holder = Ticket("holder")
    await slots.acquire(holder)
    log = Log(slots)
    tickets = {name: Ticket(name) for name in "abc"}
    for n in range(3):
        for name, ticket in tickets.items():
            log.ask(ticket, f"{name}{n}")
    await settle()

    slots.release(holder)
    for _ in range(9):
        await settle()
        slots.release(tickets[log.granted[-1][0]])
    assert log.granted == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    assert slots.in_use == 0


async def test_synchronous_requests_go_before_jobs_whatever_they_hold():
    slots = FairSlots(2)
    job, user = Ticket("job", Priority.BATCH), Ticket("user", Priority.INTERACTIVE)
    log = Log(slots)
    for n in range(4):
        log.ask(user, f"user{n}")
    log.ask(job, "job0")  # asked before user's later calls were served
    await settle()
    assert log.granted == ["user0", "user1"]

    for _ in range(2):
        slots.release(user)
        await settle()
    assert log.granted == ["user0", "user1", "user2", "user3"]  # user holds 2, job 0: still user first

    slots.release(user)
    await settle()
    assert log.granted[-1] == "job0"


async def test_the_bound_holds_and_everyone_is_served():
    slots = FairSlots(3)
    running = peak = 0
    rng = random.Random(7)

    async def call(ticket: Ticket) -> None:
        nonlocal running, peak
        async with slots.hold(ticket):
            running += 1
            peak = max(peak, running)
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            running -= 1

    tickets = [Ticket(str(n), Priority(n % 2)) for n in range(5)]
    await asyncio.gather(*(call(tickets[n % 5]) for n in range(60)))
    assert peak == 3 and slots.in_use == 0 and slots.waiting == 0


async def test_a_waiter_cancelled_in_the_queue_holds_nothing_and_the_slot_stays_usable():
    slots = FairSlots(1)
    holder, gone = Ticket("holder"), Ticket("gone")
    await slots.acquire(holder)
    log = Log(slots)
    log.ask(gone, "gone")
    await settle()
    log.tasks["gone"].cancel()
    await settle()
    assert slots.waiting == 0 and slots.held_by(gone) == 0

    slots.release(holder)
    assert slots.in_use == 0
    await asyncio.wait_for(slots.acquire(Ticket("next")), 1)  # at once, not stuck
    assert slots.in_use == 1


async def one_slot_two_waiters() -> tuple[FairSlots, Ticket, Log]:
    """One slot held by "holder"; "first", then "second" (each its own document) wait."""
    slots = FairSlots(1)
    holder = Ticket("holder")
    await slots.acquire(holder)
    log = Log(slots)
    for label in ("first", "second"):
        log.ask(Ticket(label), label)
        await settle()
    return slots, holder, log


async def test_a_waiter_cancelled_after_being_handed_the_slot_passes_it_on():
    slots, holder, log = await one_slot_two_waiters()
    slots.release(holder)  # hands the slot to "first" (it waited longer, held as much) ...
    log.tasks["first"].cancel()  # ... which is cancelled before it could run
    await settle()
    assert log.tasks["first"].cancelled()
    assert log.granted == ["second"] and slots.in_use == 1 and slots.waiting == 0


async def test_a_cancelled_waiter_not_yet_run_is_skipped_by_a_release():
    slots, holder, log = await one_slot_two_waiters()
    log.tasks["first"].cancel()  # its future is cancelled now; its task runs later
    slots.release(holder)  # must not hand the slot to the cancelled one
    await settle()
    assert log.tasks["first"].cancelled()
    assert log.granted == ["second"] and slots.in_use == 1 and slots.waiting == 0


def test_release_without_a_slot_is_refused_by_name():
    slots = FairSlots(1)
    with pytest.raises(RuntimeError, match="doc-7 holds no slot"):
        slots.release(Ticket("doc-7"))
    with pytest.raises(ValueError, match="limit >= 1"):
        FairSlots(0)


async def test_a_task_started_for_a_ticket_and_its_own_tasks_work_on_its_account():
    ticket = Ticket("doc", Priority.BATCH)

    async def started_there() -> tuple[Ticket, Ticket]:
        in_thread = await asyncio.to_thread(current_ticket)
        in_child = await asyncio.create_task(_current_in_task())
        return in_thread, in_child

    assert await ticket_task(ticket, started_there()) == (ticket, ticket)
    assert current_ticket() is UNTRACKED


async def _current_in_task() -> Ticket:
    return current_ticket()


def test_two_documents_with_one_log_id_are_two_tickets():
    assert Ticket("same") != Ticket("same")


def test_priorities_are_read_by_name_and_a_wrong_one_is_named():
    assert Priority.parse("batch") is Priority.BATCH and Priority.parse("INTERACTIVE") is Priority.INTERACTIVE
    with pytest.raises(ValueError, match="unknown priority 'urgent'; known: interactive, batch"):
        Priority.parse("urgent")


# (ticket index, cancel it after this many loop turns or never, turns it holds the slot)
CALLS = st.lists(st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 4)), st.integers(0, 3)),
                 min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(limit=st.integers(1, 4), calls=CALLS)
def test_no_slot_is_ever_lost_or_left_free_while_someone_waits(limit, calls):
    """Any mix of calls, some cancelled at any moment (queued, just granted, holding):
    the bound holds, a free slot never sits beside a live waiter, and at the end every
    slot is free and no ticket is remembered."""

    async def scenario() -> None:
        slots = FairSlots(limit)
        tickets = [Ticket(str(n), Priority(n % 2)) for n in range(4)]
        violations: list[str] = []

        def check() -> None:
            if slots.in_use > limit:
                violations.append(f"{slots.in_use} in use, limit {limit}")
            if slots.in_use < limit and slots.waiting:
                violations.append(f"{slots.in_use} of {limit} in use while {slots.waiting} wait")

        async def call(index: int, turns: int) -> None:
            async with slots.hold(tickets[index]):
                for _ in range(turns):
                    check()
                    await asyncio.sleep(0)

        async def cancel_later(task: asyncio.Task, after: int) -> None:
            for _ in range(after):
                await asyncio.sleep(0)
            task.cancel()

        tasks, cancellers = [], []
        for index, cancel_after, turns in calls:
            task = asyncio.create_task(call(index, turns))
            tasks.append(task)
            if cancel_after is not None:
                cancellers.append(asyncio.create_task(cancel_later(task, cancel_after)))
        while not all(task.done() for task in tasks):
            check()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks, *cancellers, return_exceptions=True)
        assert violations == []
        assert slots.in_use == 0 and slots.waiting == 0 and slots._accounts == {}

    asyncio.run(scenario())
