"""Per-key quotas: the token bucket, the limits of one key in the shared store (requests
at once, requests and pages per minute, each with a Retry-After), and one count for
several processes."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import pytest

from docparse.errors import QuotaExceededError
from gateway.keys import Limits
from gateway.quotas import Quota, QuotaStore, Rate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(tmp_path, clock) -> QuotaStore:
    store = QuotaStore(str(tmp_path / "quotas.sqlite"), clock=clock)
    yield store
    store.close()


def refused(store: QuotaStore, name: str, quota: Quota) -> QuotaExceededError:
    with pytest.raises(QuotaExceededError) as refusal:
        store.admit(name, quota)
    return refusal.value


def test_a_bucket_refills_at_its_rate_up_to_its_burst():
    rate = Rate(per_minute=60, burst=10)
    assert rate.refilled(0, 2.5) == 2.5
    assert rate.refilled(9, 60) == 10
    assert rate.refilled(-3, 1) == -2  # a debt is paid back at the same rate
    assert rate.seconds_until(0.5) == 0.5 and rate.seconds_until(-2) == 3 and rate.seconds_until(4) == 0


def test_limits_become_a_quota():
    quota = Quota.of(Limits(concurrent_requests=2, requests_per_minute=30, requests_burst=0, pages_per_minute=0))
    assert quota == Quota(concurrent=2, requests=Rate(30, 30), pages=None)
    assert Quota.of(Limits(requests_per_minute=0.5)).requests == Rate(0.5, 1)  # at least one request
    assert not Quota.of(Limits()).active


def test_the_request_rate_refuses_once_the_burst_is_spent_then_admits_after_the_refill(store, clock):
    quota = Quota(requests=Rate(per_minute=6, burst=2))  # one request every 10 s
    store.admit("alice", quota)
    store.admit("alice", quota)
    refusal = refused(store, "alice", quota)
    assert refusal.status == 429 and refusal.retry_after == 10
    assert refusal.message == "the API key 'alice' has used up its quota (requests per minute: 6); retry in 10 s"
    store.admit("bob", quota)  # each key has its own buckets
    clock.now += 4
    assert refused(store, "alice", quota).retry_after == 6  # a refusal costs nothing
    clock.now += 6
    store.admit("alice", quota)


def test_requests_at_once_are_limited_until_one_ends(store, clock):
    quota = Quota(concurrent=2)
    store.admit("alice", quota)
    store.admit("alice", quota)
    refusal = refused(store, "alice", quota)
    assert "requests at once: 2 (2 in progress)" in refusal.message and refusal.retry_after == 1
    store.release("alice", quota, held=8.0, pages=0)
    store.admit("alice", quota)
    # Retry-After: how long the key's requests take, shared by its places.
    assert refused(store, "alice", quota).retry_after == 4


def test_pages_are_charged_when_a_request_ends_and_a_debt_waits_for_the_refill(store, clock):
    quota = Quota(pages=Rate(per_minute=60, burst=60))  # a page a second
    store.admit("alice", quota)
    store.release("alice", quota, held=1.0, pages=70)  # a long document: 10 pages in debt
    refusal = refused(store, "alice", quota)
    assert "pages per minute: 60" in refusal.message and refusal.retry_after == 11
    clock.now += 11
    store.admit("alice", quota)


def test_every_limit_over_is_named_and_retry_after_is_the_longest_wait(store, clock):
    quota = Quota(concurrent=1, requests=Rate(per_minute=1, burst=1))
    store.admit("alice", quota)
    refusal = refused(store, "alice", quota)
    assert "(requests at once: 1 (1 in progress); requests per minute: 1)" in refusal.message
    assert refusal.retry_after == 60


def test_what_a_dead_worker_held_is_freed(tmp_path, clock):
    path = str(tmp_path / "quotas.sqlite")
    store = QuotaStore(path, clock=clock)
    quota = Quota(concurrent=1)
    store.admit("alice", quota)
    QuotaStore.forget_process(path, os.getpid())  # gunicorn's child_exit for this worker
    store.admit("alice", quota)
    store.close()


def take_all(path: str, start: Event, tries: int, results: Queue) -> None:
    """In a process of its own: how many of ``tries`` requests the shared store admits."""
    store = QuotaStore(path)
    quota = Quota(requests=Rate(per_minute=0.001, burst=5))  # 5, then none for hours
    start.wait(10)
    admitted = 0
    for _ in range(tries):
        try:
            store.admit("alice", quota)
            admitted += 1
        except QuotaExceededError:
            pass
    store.close()
    results.put(admitted)


def test_processes_share_one_count(tmp_path):
    """What gateway workers see: 5 requests in all, not 5 each."""
    path = str(tmp_path / "quotas.sqlite")
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=take_all, args=(path, start, 20, results)) for _ in range(3)]
    for process in processes:
        process.start()
    start.set()
    admitted = [results.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(10)
    assert sum(admitted) == 5, admitted
