"""The job store's behaviour, each test on SQLite and on a real PostgreSQL server
(``job_store_url``): submitting and the queue limit, fair order between owners, leases and
their takeover, pages and their replacement, finishing, expiry, cancelling, listing,
retries, callbacks, concurrent claims; and a full SQLite file."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Iterator

import orjson
import pytest

from docparse.errors import OverloadedError
from docparse.jobs.model import JobError, JobStatus
from docparse.jobs.store import JobStore, JobStoreError, NewJob
from tests.support.processes import wait_for

LONG = 30.0  # a lease that does not run out during a test
SHORT = 0.3  # one that does, soon


@pytest.fixture()
def store(job_store_url: str) -> Iterator[JobStore]:
    opened = JobStore.open(job_store_url)
    try:
        yield opened
    finally:
        opened.close()


def new_job(owner: str = "alice", document: bytes = b"%PDF-1.7 tiny", **changes) -> NewJob:
    fields = dict(owner=owner, log_id=f"log-{owner}", options={"useLayout": True, "pages": [1, 3]},
                  document=document, document_kind="pdf")
    return NewJob(**{**fields, **changes})


def submit(store: JobStore, owner: str = "alice", **changes) -> str:
    return store.submit(new_job(owner, **changes), max_queued=1000).jobId


def wait_past(moment: float) -> None:
    """Return once the wall clock (the store's) is past ``moment`` (a lease's end, a retry's
    time), within 5 s."""
    wait_for(lambda: time.time() > moment, 5, f"the clock past {moment}")


# --- submitting -------------------------------------------------------------------------


def test_submit_stores_the_document_and_options(store: JobStore):
    info = store.submit(new_job(document=b"\x00%PDF\xff" * 100, callback_url="http://hook/x"), 10)

    assert info.status is JobStatus.QUEUED
    assert (info.logId, info.queuePosition, info.attempts) == ("log-alice", 0, 0)
    assert (info.pagesDone, info.pagesFailed, info.pagesTotal) == (0, 0, None)
    assert info.startedAt is None and info.finishedAt is None and info.expiresAt is None
    assert info.callback is not None and info.callback.url == "http://hook/x" and info.callback.attempts == 0
    assert store.document(info.jobId) == b"\x00%PDF\xff" * 100
    record = store.record(info.jobId)
    assert orjson.loads(record["options"]) == {"useLayout": True, "pages": [1, 3]}
    assert (record["owner"], record["document_kind"]) == ("alice", "pdf")
    assert store.info(info.jobId, owner="alice") == info
    assert store.info(info.jobId, owner="bob") is None
    assert store.info("no-such-job") is None


def test_a_full_queue_answers_overloaded(store: JobStore):
    first = store.submit(new_job(), max_queued=2)
    store.submit(new_job("bob"), max_queued=2)

    with pytest.raises(OverloadedError, match="HPS_MAX_QUEUED_JOBS") as raised:
        store.submit(new_job("carol"), max_queued=2)
    assert raised.value.kind.retry  # a 503 to retry (the gateway adds when: Retry-After)
    assert store.list("carol", 10) == ([], None)  # nothing stored

    assert store.claim("w1", LONG)["id"] == first.jobId  # running jobs do not count as waiting
    assert store.submit(new_job("carol"), max_queued=2).status is JobStatus.QUEUED


def test_claims_alternate_between_owners_and_queue_position_agrees(store: JobStore):
    a = [submit(store, "A") for _ in range(5)]
    b = [submit(store, "B") for _ in range(2)]
    owner_of = {**{job: "A" for job in a}, **{job: "B" for job in b}}

    by_position = sorted(a + b, key=lambda job: store.info(job).queuePosition)
    assert [store.info(job).queuePosition for job in by_position] == list(range(7))

    claimed = []
    while (row := store.claim("w", LONG)) is not None:
        waiting = [job for job in a + b if store.info(job).status is JobStatus.QUEUED]
        assert sorted(store.info(job).queuePosition for job in waiting) == list(range(len(waiting)))
        claimed.append(row["id"])
    assert [owner_of[job] for job in claimed] == ["A", "B", "A", "B", "A", "A", "A"]
    assert claimed == by_position
    assert claimed[:2] == [a[0], b[0]] and claimed[4:] == a[2:]  # each owner's own in order


def test_a_late_owner_is_served_next_not_after_the_backlog(store: JobStore):
    a = [submit(store, "A") for _ in range(4)]
    assert store.claim("w", LONG)["id"] == a[0]
    assert store.claim("w", LONG)["id"] == a[1]
    late = submit(store, "B")  # A's backlog is being served at its third job
    assert store.info(late).queuePosition == 1  # A's third (same round, earlier) comes first
    assert [store.claim("w", LONG)["id"] for _ in range(3)] == [a[2], late, a[3]]


# --- leases -----------------------------------------------------------------------------


def test_a_claim_takes_the_lease(store: JobStore):
    job = submit(store)
    row = store.claim("w1", LONG)

    assert (row["id"], row["status"], row["lease_owner"], row["attempts"]) == (job, "running", "w1", 1)
    assert row["lease_until"] > time.time() + LONG - 5
    assert store.claim("w2", LONG) is None
    info = store.info(job)
    assert info.status is JobStatus.RUNNING and info.queuePosition is None and info.startedAt is not None
    assert store.renew(job, "w1", LONG) is True
    assert store.renew(job, "w2", LONG) is False


def test_an_expired_lease_is_taken_over_and_the_loser_can_write_nothing(store: JobStore):
    job = submit(store)
    first = store.claim("w1", SHORT)
    assert store.claim("w2", LONG) is None  # still valid
    wait_past(first["lease_until"])

    second = store.claim("w2", LONG)
    assert (second["id"], second["lease_owner"], second["attempts"]) == (job, "w2", 2)
    assert second["started_at"] == first["started_at"]
    assert store.info(job).attempts == 2

    assert store.renew(job, "w1", LONG) is False
    assert store.save_page(job, "w1", 0, False, b'{"from": "w1"}', 2) is False
    assert store.save_final(job, "w1", {"numPages": 2}) is False
    assert store.retry_later(job, "w1", 0, JobError(code=503, message="busy")) is False
    assert store.finish(job, "w1", JobStatus.SUCCEEDED, None, 60) is False
    assert store.pages(job) == [] and store.info(job).pagesDone == 0

    assert store.save_page(job, "w2", 0, False, b'{"from": "w2"}', 2) is True
    assert store.renew(job, "w2", LONG) is True
    assert store.finish(job, "w2", JobStatus.SUCCEEDED, None, 60) is True
    assert store.info(job).status is JobStatus.SUCCEEDED


def test_a_renewed_lease_is_not_taken_over(store: JobStore):
    job = submit(store)
    first = store.claim("w1", SHORT)
    assert store.renew(job, "w1", LONG) is True
    wait_past(first["lease_until"])
    assert store.claim("w2", LONG) is None
    assert store.record(job)["lease_owner"] == "w1"


# --- pages ------------------------------------------------------------------------------


def test_save_page_replaces_an_earlier_try_and_keeps_counts(store: JobStore):
    job = submit(store)
    store.claim("w", LONG)

    assert store.save_page(job, "w", 0, False, b'{"page": 0}', 3)
    assert store.save_page(job, "w", 1, True, b'{"page": 1, "try": 1}', 3)
    info = store.info(job)
    assert (info.pagesDone, info.pagesFailed, info.pagesTotal) == (2, 1, 3)
    seen = store.pages(job)
    assert [(p.page_index, p.failed) for p in seen] == [(0, False), (1, True)]
    assert seen[0].seq < seen[1].seq

    assert store.save_page(job, "w", 1, False, b'{"page": 1, "try": 2}', 5)  # the retry of page 1
    info = store.info(job)
    assert (info.pagesDone, info.pagesFailed, info.pagesTotal) == (2, 0, 3)  # total: the first page's
    final = store.pages(job)
    assert [(p.page_index, p.failed, p.data) for p in final] == [
        (0, False, b'{"page": 0}'), (1, False, b'{"page": 1, "try": 2}'),
    ]
    # A follower that saw every page so far sees the new try as a newer page.
    assert [(p.page_index, p.data) for p in store.pages(job, after_seq=seen[-1].seq)] == [
        (1, b'{"page": 1, "try": 2}'),
    ]


def test_pages_after_a_seq_are_only_the_newer_ones(store: JobStore):
    job = submit(store)
    store.claim("w", LONG)
    for index in (2, 0, 1):
        store.save_page(job, "w", index, index == 1, orjson.dumps({"page": index}), 3)

    every = store.pages(job)
    assert [p.page_index for p in every] == [2, 0, 1]  # the order they were stored in
    assert [p.seq for p in every] == sorted(p.seq for p in every)
    assert [p.page_index for p in store.pages(job, after_seq=every[0].seq)] == [0, 1]
    assert store.pages(job, after_seq=every[-1].seq) == []
    assert store.pages(submit(store, "other")) == []


# --- finishing, expiry, cancelling ------------------------------------------------------


def test_finish_deletes_the_document_and_sets_expiry(store: JobStore):
    job = submit(store)
    store.claim("w", LONG)
    store.save_page(job, "w", 0, False, b"{}", 1)
    assert store.save_final(job, "w", {"numPages": 1})

    before = time.time()
    assert store.finish(job, "w", JobStatus.SUCCEEDED, None, ttl=60) is True
    info = store.info(job)
    assert info.status is JobStatus.SUCCEEDED and info.error is None
    assert info.finishedAt.timestamp() >= before
    assert info.expiresAt.timestamp() == pytest.approx(info.finishedAt.timestamp() + 60)
    assert store.document(job) is None
    assert len(store.pages(job)) == 1 and orjson.loads(store.record(job)["final"]) == {"numPages": 1}
    assert store.finish(job, "w", JobStatus.FAILED, None, ttl=60) is False  # once only
    assert store.finish(job, None, JobStatus.FAILED, None, ttl=60) is False


def test_delete_expired_removes_jobs_and_pages_past_their_ttl(store: JobStore):
    kept, gone, waiting = submit(store), submit(store), submit(store)
    for job, ttl in ((kept, 60), (gone, 0.1)):
        assert store.claim("w", LONG)["id"] == job
        store.save_page(job, "w", 0, False, b"{}", 1)
        store.finish(job, "w", JobStatus.PARTIAL, JobError(code=500, message="region failed"), ttl)
    assert store.info(gone).error == JobError(code=500, message="region failed")
    wait_past(store.record(gone)["expires_at"])

    assert store.delete_expired() == 1
    assert store.info(gone) is None and store.record(gone) is None and store.pages(gone) == []
    assert store.info(kept).status is JobStatus.PARTIAL and len(store.pages(kept)) == 1
    assert store.info(waiting).status is JobStatus.QUEUED and store.document(waiting) is not None
    assert store.delete_expired() == 0


def test_cancel_a_queued_job(store: JobStore):
    job = submit(store)
    assert store.cancel(job, "bob", ttl=60) is None  # not bob's
    assert store.cancel("no-such-job", None, ttl=60) is None

    info = store.cancel(job, "alice", ttl=60)
    assert info.status is JobStatus.CANCELLED and info.error.code == 409
    assert info.queuePosition is None and info.expiresAt is not None
    assert store.document(job) is None
    assert store.claim("w", LONG) is None


def test_cancel_a_running_job_stops_its_worker(store: JobStore):
    job = submit(store)
    store.claim("w", LONG)
    assert store.save_page(job, "w", 0, False, b"{}", 2)

    assert store.cancel(job, None, ttl=60).status is JobStatus.CANCELLED
    assert store.renew(job, "w", LONG) is False
    assert store.save_page(job, "w", 1, False, b"{}", 2) is False
    assert store.finish(job, "w", JobStatus.SUCCEEDED, None, 60) is False
    info = store.info(job)
    assert info.status is JobStatus.CANCELLED and info.pagesDone == 1
    assert store.claim("w2", LONG) is None


def test_cancel_leaves_a_finished_job_as_it_is(store: JobStore):
    job = submit(store)
    store.claim("w", LONG)
    store.finish(job, "w", JobStatus.SUCCEEDED, None, 60)
    assert store.cancel(job, "alice", ttl=1).status is JobStatus.SUCCEEDED
    assert store.info(job).error is None


# --- listing ----------------------------------------------------------------------------


def walk_list(store: JobStore, owner: str, limit: int) -> list[list[str]]:
    """Every page of ``owner``'s list, following the cursor to its end."""
    pages, cursor = [], None
    while True:
        infos, cursor = store.list(owner, limit, cursor)
        pages.append([info.jobId for info in infos])
        if cursor is None:
            return pages
        assert len(pages) < 20, "the cursor does not end"


def test_list_pages_through_the_owners_jobs_newest_first(store: JobStore):
    alices = []
    for n in range(7):
        alices.append(submit(store, "alice"))
        if n % 2:
            submit(store, "bob")

    pages = walk_list(store, "alice", 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [job for page in pages for job in page] == alices[::-1]
    assert walk_list(store, "alice", 7) == [alices[::-1]]
    assert [len(page) for page in walk_list(store, "alice", 1)] == [1] * 7
    assert len([job for page in walk_list(store, "bob", 2) for job in page]) == 3
    assert store.list("nobody", 5) == ([], None)
    assert store.list("alice", 3)[0][0] == store.info(alices[-1])


def test_list_pages_through_jobs_created_at_the_same_moment(store: JobStore, monkeypatch):
    monkeypatch.setattr("docparse.jobs.store.time", SimpleNamespace(time=lambda: 1_700_000_000.123456))
    jobs = [submit(store) for _ in range(5)]

    listed = [job for page in walk_list(store, "alice", 2) for job in page]
    assert sorted(listed) == sorted(jobs) and len(set(listed)) == 5


# --- retries and callbacks --------------------------------------------------------------


def test_retry_later_makes_the_job_claimable_only_after_the_delay(store: JobStore):
    job = submit(store)
    store.claim("w1", LONG)
    assert store.retry_later(job, "w1", SHORT, JobError(code=503, message="VLM busy")) is True

    info = store.info(job)
    assert info.status is JobStatus.QUEUED and info.error == JobError(code=503, message="VLM busy")
    assert store.renew(job, "w1", LONG) is False
    assert store.claim("w2", LONG) is None
    wait_past(store.record(job)["retry_at"])

    row = store.claim("w2", LONG)
    assert (row["id"], row["attempts"], row["retry_at"]) == (job, 2, None)


def test_a_retry_waits_without_holding_up_other_jobs(store: JobStore):
    first, second = submit(store), submit(store, "bob")
    store.claim("w", LONG)
    store.retry_later(first, "w", LONG, JobError(code=503, message="busy"))
    assert store.claim("w", LONG)["id"] == second
    assert store.claim("w", LONG) is None


def test_claim_callback_and_callback_tried(store: JobStore):
    hooked, plain = submit(store, callback_url="http://hook/done"), submit(store)
    assert store.claim_callback(LONG) is None  # not due before the job ends
    for job in (hooked, plain):
        store.claim("w", LONG)
        store.finish(job, "w", JobStatus.SUCCEEDED, None, 60)
    assert store.info(hooked).callback.state == "pending" and store.info(plain).callback is None

    row = store.claim_callback(SHORT)
    assert (row["id"], row["callback_url"]) == (hooked, "http://hook/done")
    assert store.claim_callback(LONG) is None  # held by the first deliverer
    wait_past(store.record(hooked)["callback_at"])
    assert store.claim_callback(LONG)["id"] == hooked  # that deliverer died: taken over

    store.callback_tried(hooked, "pending", "connection refused", next_at=time.time() + SHORT)
    callback = store.info(hooked).callback
    assert (callback.state, callback.attempts, callback.error) == ("pending", 1, "connection refused")
    assert store.claim_callback(LONG) is None
    wait_past(store.record(hooked)["callback_at"])
    assert store.claim_callback(LONG)["id"] == hooked

    store.callback_tried(hooked, "delivered", None, None)
    callback = store.info(hooked).callback
    assert (callback.state, callback.attempts, callback.error) == ("delivered", 2, None)
    assert store.claim_callback(0) is None


# --- concurrency ------------------------------------------------------------------------


def test_concurrent_claims_never_share_a_job(store: JobStore):
    jobs = {submit(store, f"owner{n % 3}") for n in range(20)}
    start = threading.Barrier(4)
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        mine = claimed.setdefault(worker, [])
        try:
            start.wait(timeout=10)
            while (row := store.claim(worker, LONG)) is not None:
                assert row["lease_owner"] == worker
                mine.append(row["id"])
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads) and not errors, errors

    every = [job for mine in claimed.values() for job in mine]
    assert len(every) == len(set(every)) == 20 and set(every) == jobs
    for worker, mine in claimed.items():
        assert all(store.record(job)["lease_owner"] == worker for job in mine)
        assert all(store.record(job)["attempts"] == 1 for job in mine)


# --- a full SQLite file -----------------------------------------------------------------


def test_a_full_sqlite_store_fails_clearly_and_stays_readable(tmp_path):
    store = JobStore.open(f"sqlite:///{tmp_path / 'jobs.db'}", max_mb=1)
    try:
        stored = []
        with pytest.raises(JobStoreError) as raised:
            for _ in range(50):  # 50 x 100 kB: twice the cap
                stored.append(submit(store, document=bytes(100_000)))
        assert "full" in str(raised.value)
        assert 0 < len(stored) < 10

        assert store.info(stored[0]).status is JobStatus.QUEUED
        assert [info.jobId for info in store.list("alice", 50)[0]] == stored[::-1]
        assert store.document(stored[-1]) == bytes(100_000)

        job = store.claim("w", LONG)["id"]
        with pytest.raises(JobStoreError, match="full"):
            store.save_page(job, "w", 0, False, b"x" * 1_000_000, 1)
        assert store.pages(job) == [] and store.info(job).pagesDone == 0  # nothing half-written
        assert store.finish(job, "w", JobStatus.FAILED, JobError(code=500, message="disk full"), 60)
        assert store.document(job) is None
        assert store.submit(new_job(document=bytes(50_000)), 1000).status is JobStatus.QUEUED  # room again
    finally:
        store.close()


def test_concurrent_submits_never_pass_the_queue_limit(store: JobStore):
    accepted: list[str] = []
    refused: list[OverloadedError] = []

    def submit_one(index: int) -> None:
        try:
            accepted.append(store.submit(new_job(owner=f"caller-{index % 3}"), max_queued=5).jobId)
        except OverloadedError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=submit_one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(accepted) == 5 and len(refused) == 11
    positions = sorted(store.info(job_id).queuePosition for job_id in accepted)
    assert positions == [0, 1, 2, 3, 4]
