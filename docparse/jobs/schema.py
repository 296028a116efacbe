"""The job store's tables, one definition for SQLite and PostgreSQL (SQLAlchemy Core).

Times are Unix seconds. A job's document lives in its own table so that reading a job's
state never loads it, and it is deleted as soon as the job ends."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),  # API key name, or the client's address
    Column("status", String(16), nullable=False),
    Column("rank", Integer, nullable=False),  # fair order between owners (store.submit)
    Column("log_id", String(200), nullable=False),
    Column("options", Text, nullable=False),  # the request as JSON, without its file
    Column("document_kind", String(16), nullable=False),  # pdf or image
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("expires_at", Float),
    Column("lease_owner", String(200)),
    Column("lease_until", Float),
    Column("attempts", Integer, nullable=False, default=0),  # runs that count against HPS_JOB_MAX_ATTEMPTS
    Column("runs", Integer, nullable=False, default=0),  # every run, a clean stop's too (names its logId)
    Column("retry_at", Float),  # a queued retry is not claimed before this
    Column("pages_total", Integer),  # pages selected, known once the first page came
    Column("pages_done", Integer, nullable=False, default=0),
    Column("pages_failed", Integer, nullable=False, default=0),
    Column("final", Text),  # JSON: {type, numPages, timings} gathered over the runs
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("callback_url", Text),
    Column("callback_state", String(16)),  # pending, delivered, failed
    Column("callback_attempts", Integer, nullable=False, default=0),
    Column("callback_at", Float),  # next delivery not before this (also its lease)
    Column("callback_error", Text),
)
Index("jobs_claim", jobs.c.status, jobs.c.rank, jobs.c.created_at)
Index("jobs_owner", jobs.c.owner, jobs.c.created_at)
Index("jobs_expiry", jobs.c.expires_at)
Index("jobs_callback", jobs.c.callback_state, jobs.c.callback_at)

documents = Table(
    "documents",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

pages = Table(
    "pages",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("page_index", Integer, primary_key=True),  # 0-based, in the document
    Column("seq", Integer, nullable=False),  # order of storing, for following a job live
    Column("failed", Boolean, nullable=False),
    Column("data", Text, nullable=False),  # the PageResult as JSON
)
Index("pages_seq", pages.c.job_id, pages.c.seq)
