"""The jobs API's contract: a job's statuses and the pydantic models its answers are
built from (``/jobs`` answers and documents them; the CLI reads them back)."""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator

from docparse.protocol import LayoutParsingRequest


class JobStatus(str, enum.Enum):
    QUEUED = "queued"  # stored, waiting for a worker (or for its next retry)
    RUNNING = "running"  # a worker holds its lease
    SUCCEEDED = "succeeded"  # every selected page parsed
    PARTIAL = "partial"  # finished, some pages or regions failed (marked in the result)
    FAILED = "failed"  # nothing usable: a bad document, or retries used up (see error)
    CANCELLED = "cancelled"  # DELETE /jobs/{id}

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED})


class JobRequest(LayoutParsingRequest):
    """Body of ``POST /jobs``: a ``/layout-parsing`` request, and where to say it ended."""

    callbackUrl: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL that receives a POST of the job's JobInfo when it ends, "
        "signed with HMAC-SHA256 (X-DocParse-Signature) when HPS_WEBHOOK_SECRET is set.",
    )

    @field_validator("restructurePages")
    @classmethod
    def _not_restructured(cls, value: bool | None) -> bool | None:
        """A job's pages are stored as they are parsed, and a resumed job parses only the
        pages left: the document is not restructured here (rather than silently not)."""
        if value:
            raise ValueError(
                "jobs do not restructure documents yet: restructure the pages of the job's result "
                "with POST /restructure-pages, or use /layout-parsing or /convert/file"
            )
        return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobError(_Model):
    """Why a job failed or stopped: the status and message ``/layout-parsing`` would have
    answered with."""

    code: int = Field(description="HTTP status of the error (as errorCode in error envelopes).", examples=[422])
    message: str


class CallbackState(_Model):
    url: str = Field(description="The callbackUrl given at submission.")
    state: str = Field(description="pending, delivered or failed.")
    attempts: int = Field(description="Deliveries tried so far.")
    error: str | None = Field(None, description="Why the last delivery failed.")


class JobInfo(_Model):
    """A job's state: the answer of ``POST /jobs`` (202), ``GET /jobs/{id}`` and each
    ``status`` event of ``/jobs/{id}/events``."""

    jobId: str
    status: JobStatus
    logId: str = Field(description="The logId of the job's work in the server logs.")
    pagesDone: int = Field(description="Pages parsed and stored so far (failed ones included).")
    pagesFailed: int = Field(description="Stored pages with a failed region or a page error.")
    pagesTotal: int | None = Field(description="Pages the request selected; null until the document was opened.")
    queuePosition: int | None = Field(description="Jobs ahead of it while queued (0: next); else null.")
    attempts: int = Field(description="Runs so far (retries and takeovers by another worker count).")
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None
    expiresAt: datetime | None = Field(description="When a finished job and its result are deleted (HPS_JOB_TTL).")
    error: JobError | None = Field(None, description="Set when the job failed or was cancelled.")
    callback: CallbackState | None = Field(None, description="The callbackUrl and its delivery, when one was given.")


class JobList(_Model):
    """``GET /jobs``: the caller's jobs, newest first."""

    jobs: list[JobInfo]
    nextCursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


def timestamp(seconds: float | None) -> datetime | None:
    """A stored time (Unix seconds) as an aware UTC datetime."""
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
