"""Per-key quotas, one count for all gateway workers: parsing requests in progress at once,
and token buckets for requests and pages per minute.

Every gunicorn worker is its own process, and a count per process would give a key
``UVICORN_WORKERS`` times its limit. So the counts live in one SQLite file that every
worker opens: ``gunicorn.conf.py`` makes it before the workers start and names it in
``DOCPARSE_QUOTA_STORE`` (as it does ``PROMETHEUS_MULTIPROC_DIR``), and removes what a
dead worker held. Each admission is one write transaction (``BEGIN IMMEDIATE``: one
worker at a time), so two workers never both take the last token; it takes tens of
microseconds, on the event loop (a thread hop would cost more). The libraries that share
limits between processes do it through Redis or memcached (``limits``), or keep a row per
request in the window and no count of requests in progress (``pyrate-limiter``); this
needs nothing more than the standard library.

Requests are charged when admitted, whatever their answer. Pages are known only as a
document is parsed, so they are charged when the request ends, from the pages it
returned: a document may take the page bucket below zero, and the key's next request
waits until it has refilled to one page.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from docparse.errors import QuotaExceededError
from gateway.keys import ApiKey, Limits, job_owner
from gateway.limits import HOLD_SMOOTHING

STORE_ENV = "DOCPARSE_QUOTA_STORE"
SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (key TEXT, kind TEXT, tokens REAL, updated REAL, PRIMARY KEY (key, kind));
CREATE TABLE IF NOT EXISTS in_flight (key TEXT, pid INTEGER, count INTEGER, PRIMARY KEY (key, pid));
CREATE TABLE IF NOT EXISTS holds (key TEXT PRIMARY KEY, mean REAL);
"""


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``per_minute`` tokens a minute, at most ``burst`` saved up."""

    per_minute: float
    burst: float

    def refilled(self, tokens: float, seconds: float) -> float:
        return min(self.burst, tokens + max(0.0, seconds) * self.per_minute / 60)

    def seconds_until(self, tokens: float, wanted: float = 1.0) -> float:
        """Seconds until the bucket holds ``wanted`` tokens."""
        return max(0.0, (wanted - tokens) * 60 / self.per_minute)


@dataclass(frozen=True)
class Quota:
    """A key's limits as the store applies them; 0 or ``None``: no limit."""

    concurrent: int = 0
    requests: Rate | None = None
    pages: Rate | None = None

    @classmethod
    def of(cls, limits: Limits) -> "Quota":
        requests = pages = None
        if limits.requests_per_minute:
            burst = limits.requests_burst or max(1.0, limits.requests_per_minute)
            requests = Rate(limits.requests_per_minute, burst)
        if limits.pages_per_minute:
            pages = Rate(limits.pages_per_minute, max(1.0, limits.pages_per_minute))
        return cls(limits.concurrent_requests or 0, requests, pages)

    @property
    def active(self) -> bool:
        return bool(self.concurrent or self.requests or self.pages)


_STORES: dict[int, "QuotaStore"] = {}


def process_store() -> "QuotaStore":
    """This process's one handle on the shared counts, made on first use (so in the
    worker, after the fork): the key check and the job runner charge the same buckets."""
    store = _STORES.get(os.getpid())
    if store is None:
        store = _STORES[os.getpid()] = QuotaStore(store_path())
    return store


class JobPageCharges:
    """Charges a job's pages to its API key's pages-per-minute bucket as each is stored,
    as a synchronous request's are charged when it ends: a key in debt then waits
    before its next request or job (429)."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        quotas = ((key.name, Quota.of(key.limits)) for key in keys)
        self.quotas = {job_owner(name): (name, quota) for name, quota in quotas if quota.pages}

    def __bool__(self) -> bool:
        return bool(self.quotas)

    def __call__(self, owner: str, pages: int) -> None:
        entry = self.quotas.get(owner)
        if entry is not None:
            process_store().charge_pages(entry[0], entry[1], pages)


def store_path() -> str:
    """The store all workers share; outside gunicorn, one process, its own in memory."""
    return os.environ.get(STORE_ENV) or ":memory:"


class QuotaStore:
    """The shared counts. ``admit`` before a request, ``release`` after it."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        # CLOCK_MONOTONIC is one clock for every process of the machine.
        self._clock = clock
        self._pid = os.getpid()
        # Used on the event loop (the key check) and from the job runner's threads: one
        # transaction at a time under a lock.
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # counts for this run only; no need to survive a crash
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def admit(self, name: str, quota: Quota) -> None:
        """Count a request of key ``name`` in, or raise QuotaExceededError (429) naming
        every limit it is over, with the seconds until all of them allow it."""
        now = self._clock()
        with self._transaction() as db:
            requests = self._tokens(db, name, "requests", quota.requests, now)
            refusals = self._refusals(db, name, quota, requests, now)
            if refusals:
                raise over_quota(name, refusals)
            if quota.requests:
                self._save(db, name, "requests", requests - 1, now)
            if quota.concurrent:
                db.execute(
                    "INSERT INTO in_flight VALUES (?, ?, 1) ON CONFLICT DO UPDATE SET count = count + 1",
                    (name, self._pid),
                )

    def _refusals(
        self, db: sqlite3.Connection, name: str, quota: Quota, requests: float, now: float
    ) -> list[tuple[str, float]]:
        """Each limit the request is over, with the seconds until it allows it."""
        refusals = []
        if quota.concurrent:
            query = "SELECT COALESCE(SUM(count), 0) FROM in_flight WHERE key = ?"
            in_progress = db.execute(query, (name,)).fetchone()[0]
            if in_progress >= quota.concurrent:
                limit = f"requests at once: {quota.concurrent} ({in_progress} in progress)"
                refusals.append((limit, self._hold(db, name, quota)))
        pages = self._tokens(db, name, "pages", quota.pages, now)
        for kind, rate, tokens in (("requests", quota.requests, requests), ("pages", quota.pages, pages)):
            if rate is not None and tokens < 1:
                refusals.append((f"{kind} per minute: {rate.per_minute:g}", rate.seconds_until(tokens)))
        return refusals

    def charge_pages(self, name: str, quota: Quota, pages: int) -> None:
        """Take ``pages`` from the key's page bucket (a job's pages, as they are stored)."""
        if quota.pages and pages:
            with self._transaction() as db:
                now = self._clock()
                self._save(db, name, "pages", self._tokens(db, name, "pages", quota.pages, now) - pages, now)

    def release(self, name: str, quota: Quota, held: float, pages: int) -> None:
        """Count the request out after ``held`` seconds, charging the ``pages`` it returned."""
        now = self._clock()
        with self._transaction() as db:
            if quota.concurrent:
                db.execute("UPDATE in_flight SET count = count - 1 WHERE key = ? AND pid = ?", (name, self._pid))
                db.execute(
                    "INSERT INTO holds VALUES (?, ?) ON CONFLICT DO UPDATE "
                    "SET mean = (1 - ?) * mean + ? * excluded.mean",
                    (name, held, HOLD_SMOOTHING, HOLD_SMOOTHING),
                )
            if quota.pages and pages:
                tokens = self._tokens(db, name, "pages", quota.pages, now)
                self._save(db, name, "pages", tokens - pages, now)

    @staticmethod
    def forget_process(path: str, pid: int) -> None:
        """Free what a worker that died held (gunicorn's ``child_exit``)."""
        if os.path.exists(path):
            with sqlite3.connect(path, timeout=5.0) as db:
                db.execute("DELETE FROM in_flight WHERE pid = ?", (pid,))
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _tokens(self, db: sqlite3.Connection, name: str, kind: str, rate: Rate | None, now: float) -> float:
        """The bucket's tokens now (full when the key has not used it yet)."""
        if rate is None:
            return math.inf
        row = db.execute("SELECT tokens, updated FROM buckets WHERE key = ? AND kind = ?", (name, kind)).fetchone()
        return rate.burst if row is None else rate.refilled(row[0], now - row[1])

    @staticmethod
    def _save(db: sqlite3.Connection, name: str, kind: str, tokens: float, now: float) -> None:
        db.execute(
            "INSERT INTO buckets VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE "
            "SET tokens = excluded.tokens, updated = excluded.updated",
            (name, kind, tokens, now),
        )

    @staticmethod
    def _hold(db: sqlite3.Connection, name: str, quota: Quota) -> float:
        """Seconds until one of the key's requests in progress is likely to end: the
        mean time its requests held their place, shared by the places."""
        row = db.execute("SELECT mean FROM holds WHERE key = ?", (name,)).fetchone()
        return 1.0 if row is None else row[0] / quota.concurrent


def over_quota(name: str, refusals: list[tuple[str, float]]) -> QuotaExceededError:
    retry_after = max(1, math.ceil(max(seconds for _, seconds in refusals)))
    limits = "; ".join(limit for limit, _ in refusals)
    return QuotaExceededError(
        f"the API key {name!r} has used up its quota ({limits}); retry in {retry_after} s", retry_after=retry_after
    )
