"""The durable job store: jobs, their documents and each finished page, in SQLite (the
embedded default, WAL) or PostgreSQL (several gateway hosts), one code path for both.

Workers claim jobs with a lease and renew it while they run; every write of a running
job checks that the writer still holds the lease, so a worker that was thought dead and
taken over can never overwrite its successor's work. Calls block: async callers run them
in a thread (``JobRunner`` and the gateway do).
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson
from sqlalchemy import Connection, Select, and_, case, create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from docparse.errors import InternalError, InvalidRequestError, OverloadedError
from docparse.jobs.model import FINISHED, CallbackState, JobError, JobInfo, JobStatus, timestamp
from docparse.jobs.schema import documents, jobs, metadata, pages

ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_STORED_PAGES = select(pages.c.seq, pages.c.page_index, pages.c.failed, pages.c.data)
SUBMIT_LOCK = 0x4A4F4253  # PostgreSQL advisory lock key of submits ("JOBS")


class JobStoreError(InternalError):
    """The store could not be read or written (disk full, database down)."""


@dataclass(frozen=True)
class NewJob:
    owner: str
    log_id: str
    options: dict[str, Any]  # the validated request without its file
    document: bytes
    document_kind: str
    callback_url: str | None = None


@dataclass(frozen=True)
class StoredPage:
    seq: int
    page_index: int
    failed: bool
    data: bytes  # PageResult JSON


class JobStore:
    """One store, shared by every worker thread of a process."""

    def __init__(self, engine: Engine, reader: Engine | None = None, durable: Engine | None = None) -> None:
        self.engine = engine  # writes
        self.reader = reader or engine  # reads: SQLite's take no write lock
        self.durable = durable or engine  # submissions: SQLite syncs them to disk before the 202

    @classmethod
    def open(cls, url: str, max_mb: int | None = None) -> "JobStore":
        """The store at ``url`` (sqlite:///PATH or postgresql://…), tables created."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            store = cls(
                _sqlite_engine(url, max_mb, begin="BEGIN IMMEDIATE", synchronous="NORMAL"),
                reader=_sqlite_engine(url, max_mb, begin="BEGIN", synchronous="NORMAL"),
                durable=_sqlite_engine(url, max_mb, begin="BEGIN IMMEDIATE", synchronous="FULL"),
            )
        elif parsed.get_backend_name() == "postgresql":
            store = cls(create_engine(parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True))
        else:
            raise JobStoreError(f"HPS_JOB_STORE: {url!r} is neither sqlite:///PATH nor postgresql://HOST/DB")
        with store._write() as conn:
            metadata.create_all(conn)
        return store

    def close(self) -> None:
        for engine in {self.engine, self.reader, self.durable}:
            engine.dispose()

    @contextmanager
    def _transaction(self, engine: Engine) -> Iterator[Connection]:
        """One transaction; store failures become ``JobStoreError`` naming the cause."""
        try:
            with engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise JobStoreError(f"the job store failed: {_cause(exc)}") from exc

    def _write(self) -> Any:
        return self._transaction(self.engine)

    def _read(self) -> Any:
        return self._transaction(self.reader)

    # --- submitting and reading -------------------------------------------------------

    def submit(self, new: NewJob, max_queued: int) -> JobInfo:
        """Store a job and its document, queued; 503 when ``max_queued`` wait already.

        Fair order: a job's rank is one past its owner's last waiting job, but never
        below the rank now being served, so every owner's next job comes before
        anyone's second (round robin), however many one owner has queued."""
        now = time.time()
        job_id = uuid.uuid4().hex
        with self._transaction(self.durable) as conn:
            self._serialise_submits(conn)
            queued = conn.scalar(select(func.count()).where(jobs.c.status == JobStatus.QUEUED.value))
            if queued >= max_queued:
                raise OverloadedError(
                    f"{queued} jobs are waiting, the most this server keeps (HPS_MAX_QUEUED_JOBS); "
                    "retry later"
                )
            serving = conn.scalar(select(func.min(jobs.c.rank)).where(jobs.c.status == JobStatus.QUEUED.value))
            own_last = conn.scalar(
                select(func.max(jobs.c.rank)).where(jobs.c.owner == new.owner, jobs.c.status.in_(ACTIVE))
            )
            rank = max(serving or 0, -1 if own_last is None else own_last + 1)
            conn.execute(
                insert(jobs).values(
                    id=job_id, owner=new.owner, status=JobStatus.QUEUED.value, rank=rank, log_id=new.log_id,
                    options=orjson.dumps(new.options).decode(), document_kind=new.document_kind, created_at=now,
                    attempts=0, runs=0, pages_done=0, pages_failed=0, callback_url=new.callback_url,
                    callback_attempts=0,
                )
            )
            conn.execute(insert(documents).values(job_id=job_id, data=new.document))
        info = self.info(job_id)
        assert info is not None
        return info

    def _serialise_submits(self, conn: Connection) -> None:
        """One submit at a time, so the queue limit and the ranks are read and written
        together: SQLite's transactions already take the write lock at their start;
        PostgreSQL takes a transaction-scoped advisory lock."""
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(SUBMIT_LOCK)))

    def record(self, job_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return dict(row) if row else None

    def info(self, job_id: str, owner: str | None = None) -> JobInfo | None:
        """The job's state; None when there is no such job (or it is ``owner``'s not)."""
        with self._read() as conn:
            query = select(jobs).where(jobs.c.id == job_id)
            if owner is not None:
                query = query.where(jobs.c.owner == owner)
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            return _info(row, self._position(conn, row))

    def list(self, owner: str, limit: int, cursor: str | None = None) -> tuple[list[JobInfo], str | None]:
        """``owner``'s jobs, newest first, ``limit`` at a time after ``cursor``."""
        with self._read() as conn:
            query = select(jobs).where(jobs.c.owner == owner)
            if cursor:
                created, last_id = _cursor(cursor)
                query = query.where(
                    or_(jobs.c.created_at < created, and_(jobs.c.created_at == created, jobs.c.id < last_id))
                )
            rows = conn.execute(query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)).mappings().all()
            infos = [_info(row, self._position(conn, row)) for row in rows[:limit]]
        next_cursor = f"{rows[limit - 1]['created_at']!r}:{rows[limit - 1]['id']}" if len(rows) > limit else None
        return infos, next_cursor

    def _position(self, conn: Connection, row: Any) -> int | None:
        """Queued jobs that will be claimed before this one."""
        if row["status"] != JobStatus.QUEUED.value:
            return None
        ahead = or_(jobs.c.rank < row["rank"], and_(jobs.c.rank == row["rank"], jobs.c.created_at < row["created_at"]))
        return conn.scalar(select(func.count()).where(jobs.c.status == JobStatus.QUEUED.value, ahead))

    def document(self, job_id: str) -> bytes | None:
        with self._read() as conn:
            return conn.scalar(select(documents.c.data).where(documents.c.job_id == job_id))

    def pages(self, job_id: str, after_seq: int = 0) -> list[StoredPage]:
        """The job's stored pages stored after ``after_seq``, in the order they were stored."""
        return self._stored_pages(
            _STORED_PAGES.where(pages.c.job_id == job_id, pages.c.seq > after_seq).order_by(pages.c.seq)
        )

    def pages_in_order(self, job_id: str, batch: int = 50) -> Iterator[StoredPage]:
        """The job's stored pages in document order, read ``batch`` at a time (each batch
        a short read of its own: a slow reader holds nothing)."""
        after = -1
        while True:
            found = self._stored_pages(
                _STORED_PAGES.where(pages.c.job_id == job_id, pages.c.page_index > after)
                .order_by(pages.c.page_index)
                .limit(batch)
            )
            yield from found
            if len(found) < batch:
                return
            after = found[-1].page_index

    def _stored_pages(self, query: Select[Any]) -> list[StoredPage]:
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [StoredPage(row.seq, row.page_index, bool(row.failed), row.data.encode()) for row in rows]

    def page_states(self, job_id: str) -> dict[int, bool]:
        """page index -> failed, for every stored page (without their data)."""
        with self._read() as conn:
            rows = conn.execute(select(pages.c.page_index, pages.c.failed).where(pages.c.job_id == job_id)).all()
        return {row.page_index: bool(row.failed) for row in rows}

    def release(self, job_id: str, worker: str) -> bool:
        """Give a running job back to the queue at once (a worker stopping cleanly), this
        run not counted as an attempt."""
        with self._write() as conn:
            result = conn.execute(
                update(jobs)
                .where(self._held(job_id, worker))
                .values(status=JobStatus.QUEUED.value, lease_owner=None, lease_until=None, attempts=jobs.c.attempts - 1)
            )
        return result.rowcount == 1

    def mean_duration(self, recent: int = 20) -> float | None:
        """Mean run time of the last ``recent`` finished jobs, for Retry-After."""
        with self._read() as conn:
            last = (
                select((jobs.c.finished_at - jobs.c.started_at).label("took"))
                .where(jobs.c.started_at.is_not(None), jobs.c.finished_at.is_not(None))
                .order_by(jobs.c.finished_at.desc())
                .limit(recent)
                .subquery()
            )
            return conn.scalar(select(func.avg(last.c.took)))

    # --- running ------------------------------------------------------------------------

    def claim(self, worker: str, lease: float) -> dict[str, Any] | None:
        """Take the next job: one whose worker's lease ran out first (it continues), else
        the queued job first in fair order. Its attempts count this run."""
        now = time.time()
        claimable = or_(
            and_(jobs.c.status == JobStatus.QUEUED.value, or_(jobs.c.retry_at.is_(None), jobs.c.retry_at <= now)),
            and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_until < now),
        )
        with self._write() as conn:
            candidate = (
                select(jobs.c.id)
                .where(claimable)
                .order_by(case((jobs.c.status == JobStatus.RUNNING.value, 0), else_=1), jobs.c.rank, jobs.c.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            job_id = conn.scalar(candidate)
            if job_id is None:
                return None
            claimed = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, claimable)
                .values(
                    status=JobStatus.RUNNING.value, lease_owner=worker, lease_until=now + lease,
                    attempts=jobs.c.attempts + 1, runs=jobs.c.runs + 1, started_at=func.coalesce(jobs.c.started_at, now), retry_at=None,
                )
            )
            if claimed.rowcount != 1:
                return None
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return dict(row) if row else None

    def _held(self, job_id: str, worker: str) -> Any:
        return and_(jobs.c.id == job_id, jobs.c.lease_owner == worker, jobs.c.status == JobStatus.RUNNING.value)

    def renew(self, job_id: str, worker: str, lease: float) -> bool:
        """Extend the lease; False when the job is no longer this worker's to run
        (cancelled, or taken over after the lease ran out)."""
        with self._write() as conn:
            result = conn.execute(update(jobs).where(self._held(job_id, worker)).values(lease_until=time.time() + lease))
        return result.rowcount == 1

    def save_page(self, job_id: str, worker: str, page_index: int, failed: bool, data: bytes, total: int) -> bool:
        """Store one finished page (replacing an earlier try of it); False when the job is
        no longer this worker's. The job's counts move by this page alone."""
        this_page = and_(pages.c.job_id == job_id, pages.c.page_index == page_index)
        with self._write() as conn:
            earlier = conn.scalar(select(pages.c.failed).where(this_page))  # None: a first try
            # The seq is taken before the earlier try is deleted: a new try of the last
            # stored page gets a newer one, so followers (pages(after_seq)) see it.
            seq = conn.scalar(select(func.coalesce(func.max(pages.c.seq), 0)).where(pages.c.job_id == job_id)) + 1
            held = conn.execute(
                update(jobs)
                .where(self._held(job_id, worker))
                .values(
                    pages_total=func.coalesce(jobs.c.pages_total, total),
                    pages_done=jobs.c.pages_done + (0 if earlier is not None else 1),
                    pages_failed=jobs.c.pages_failed + int(failed) - int(bool(earlier)),
                )
            )
            if held.rowcount != 1:
                return False
            if earlier is not None:
                conn.execute(delete(pages).where(this_page))
            conn.execute(
                insert(pages).values(job_id=job_id, page_index=page_index, seq=seq, failed=failed, data=data.decode())
            )
        return True

    def save_final(self, job_id: str, worker: str, final: dict[str, Any]) -> bool:
        with self._write() as conn:
            result = conn.execute(update(jobs).where(self._held(job_id, worker)).values(final=orjson.dumps(final).decode()))
        return result.rowcount == 1

    def retry_later(self, job_id: str, worker: str, delay: float, error: JobError) -> bool:
        """Queue the job again, claimable after ``delay`` s; ``error`` is why."""
        with self._write() as conn:
            result = conn.execute(
                update(jobs)
                .where(self._held(job_id, worker))
                .values(
                    status=JobStatus.QUEUED.value, lease_owner=None, lease_until=None, retry_at=time.time() + delay,
                    error_code=error.code, error_message=error.message,
                )
            )
        return result.rowcount == 1

    def finish(self, job_id: str, worker: str | None, status: JobStatus, error: JobError | None, ttl: float) -> bool:
        """End the job (``worker`` None: whoever holds it, or none); its document is
        deleted, its result kept ``ttl`` s, its callback (if any) becomes due."""
        now = time.time()
        where = self._held(job_id, worker) if worker else and_(jobs.c.id == job_id, jobs.c.status.in_(ACTIVE))
        with self._write() as conn:
            result = conn.execute(
                update(jobs)
                .where(where)
                .values(
                    status=status.value, finished_at=now, expires_at=now + ttl, lease_owner=None, lease_until=None,
                    retry_at=None, error_code=error.code if error else None,
                    error_message=error.message if error else None,
                    callback_state=case((jobs.c.callback_url.is_not(None), "pending"), else_=None), callback_at=now,
                )
            )
            if result.rowcount == 1:
                conn.execute(delete(documents).where(documents.c.job_id == job_id))
        return result.rowcount == 1

    def cancel(self, job_id: str, owner: str | None, ttl: float) -> JobInfo | None:
        """Cancel a queued or running job (its worker sees it at its next look); a
        finished job is left as it is. None: no such job."""
        info = self.info(job_id, owner)
        if info is None:
            return None
        if not info.status.finished:
            self.finish(job_id, None, JobStatus.CANCELLED, JobError(code=409, message="the job was cancelled"), ttl)
        return self.info(job_id, owner)

    def delete_expired(self) -> int:
        """Delete finished jobs past their time to live, with their pages."""
        now = time.time()
        with self._write() as conn:
            expired = select(jobs.c.id).where(jobs.c.expires_at < now, jobs.c.status.in_([s.value for s in FINISHED]))
            ids = list(conn.scalars(expired.limit(500)))
            if ids:
                conn.execute(delete(pages).where(pages.c.job_id.in_(ids)))
                conn.execute(delete(documents).where(documents.c.job_id.in_(ids)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
        return len(ids)

    # --- callbacks ----------------------------------------------------------------------

    def claim_callback(self, lease: float) -> dict[str, Any] | None:
        """A job whose callback is due, held for ``lease`` s (its next try time moves on)."""
        now = time.time()
        due = and_(jobs.c.callback_state == "pending", jobs.c.callback_at <= now)
        with self._write() as conn:
            job_id = conn.scalar(select(jobs.c.id).where(due).order_by(jobs.c.callback_at).limit(1).with_for_update(skip_locked=True))
            if job_id is None:
                return None
            taken = conn.execute(update(jobs).where(jobs.c.id == job_id, due).values(callback_at=now + lease))
            if taken.rowcount != 1:
                return None
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return dict(row) if row else None

    def callback_tried(self, job_id: str, state: str, error: str | None, next_at: float | None) -> None:
        with self._write() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    callback_state=state, callback_error=error, callback_attempts=jobs.c.callback_attempts + 1,
                    callback_at=next_at,
                )
            )


def _cursor(cursor: str) -> tuple[float, str]:
    created, _, last_id = cursor.partition(":")
    try:
        return float(created), last_id
    except ValueError:
        raise InvalidRequestError(f"cursor {cursor[:50]!r} is not a nextCursor this server gave") from None


def _info(row: Any, position: int | None) -> JobInfo:
    status = JobStatus(row["status"])
    error = None
    if row["error_code"] is not None and (status.finished or status is JobStatus.QUEUED):
        error = JobError(code=row["error_code"], message=row["error_message"] or "")
    callback = None
    if row["callback_url"]:
        callback = CallbackState(
            url=row["callback_url"], state=row["callback_state"] or "waiting",
            attempts=row["callback_attempts"], error=row["callback_error"],
        )
    return JobInfo(
        jobId=row["id"], status=status, logId=row["log_id"], pagesDone=row["pages_done"],
        pagesFailed=row["pages_failed"], pagesTotal=row["pages_total"], queuePosition=position,
        attempts=row["attempts"], createdAt=timestamp(row["created_at"]), startedAt=timestamp(row["started_at"]),
        finishedAt=timestamp(row["finished_at"]), expiresAt=timestamp(row["expires_at"]), error=error,
        callback=callback,
    )


def _sqlite_engine(url: str, max_mb: int | None, begin: str, synchronous: str) -> Engine:
    """SQLite in WAL mode. Writers begin with ``BEGIN IMMEDIATE`` (the write lock at
    the start, so two workers never deadlock upgrading a read), readers with ``BEGIN``
    (no lock: WAL readers never wait); both wait up to 30 s for a lock. ``synchronous``
    FULL syncs each commit to disk (submissions: a 202 means the document is on disk),
    NORMAL leaves it to the next checkpoint (pages, leases: a crash of the process loses
    nothing, a power cut at most the last pages, which are parsed again). ``max_mb`` caps
    the file's size."""
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, not by the driver
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        if max_mb is not None:
            page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count={max(1, max_mb * 1024 * 1024 // page_size)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _cause(exc: SQLAlchemyError) -> str:
    """The driver's own words (``database or disk is full``), without SQLAlchemy's SQL."""
    original = getattr(exc, "orig", None)
    return str(original or exc).strip().splitlines()[0]
