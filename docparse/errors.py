"""The one error table, and the exceptions that carry its rows.

Every error the system can answer with is a row of ``ErrorKind``: the HTTP status the
gateway answers (also PaddleX's ``errorCode``), the Triton error code our models answer
with, whether retrying later can help (then the answer carries ``Retry-After``), and what
the API documentation says about it. The Triton models, the Python client and the gateway
all translate through this table; nothing else maps errors to codes.

Messages are written for the person who sent the request: they name the problem.
"""

from __future__ import annotations

import asyncio
import enum
import re
from typing import NamedTuple


class ErrorKind(enum.Enum):
    """What went wrong → HTTP status → Triton error code (``pb_utils.TritonError``)."""

    #                   HTTP  Triton code     retry  what the API documentation says
    MALFORMED_BODY = (400, "INVALID_ARG", False, "The body is not JSON or not a readable multipart form.")
    # 401 and 429 are the gateway's own (API keys, their quotas); their Triton codes are
    # for completeness: a request that reaches Triton has passed both.
    UNAUTHENTICATED = (
        401, "INVALID_ARG", False, "No API key, or not a valid one; WWW-Authenticate says how to send one."
    )
    INVALID_REQUEST = (422, "INVALID_ARG", False, "A field is wrong, or the file is not a readable PDF or image.")
    NOT_FOUND = (404, "NOT_FOUND", False, "No such job (or its result expired, HPS_JOB_TTL).")
    CONFLICT = (409, "INVALID_ARG", False, "The job cannot give that: it was cancelled.")
    LIMIT_EXCEEDED = (413, "UNSUPPORTED", False, "The body, the document or its page count is over a limit.")
    QUOTA_EXCEEDED = (
        429, "UNAVAILABLE", True,
        "The API key's quota (requests at once, per minute, pages per minute) is used up; "
        "Retry-After says in how many seconds to retry.",
    )
    CLIENT_GONE = (499, "CANCELLED", False, "The client went away; the work was cancelled.")
    INTERNAL = (500, "INTERNAL", False, "An internal error; the message and the server log say which.")
    NOT_SUPPORTED = (501, "UNSUPPORTED", False, "This server cannot do that: information extraction needs a VLM.")
    RECOGNITION_FAILED = (502, "UNAVAILABLE", False, "The recognition model (VLM) failed after its retries.")
    RECOGNITION_UNAVAILABLE = (
        503, "UNAVAILABLE", True, "The recognition model (VLM) cannot be reached; Retry-After says when to retry."
    )
    BACKEND_UNAVAILABLE = (503, "UNAVAILABLE", False, "A backend (Triton) cannot be reached; /health/ready names it.")
    OVERLOADED = (503, "UNAVAILABLE", True, "The server is busy; Retry-After says in how many seconds to retry.")
    DEADLINE_EXCEEDED = (504, "UNAVAILABLE", False, "HPS_INFERENCE_TIMEOUT passed; the work was cancelled.")

    def __init__(self, status: int, triton_code: str, retry: bool, meaning: str) -> None:
        self.status = status
        self.triton_code = triton_code
        self.retry = retry
        self.meaning = meaning


#: The kind an error becomes when all that crossed a hop is a Triton or gRPC code (an
#: error raised by Triton itself, not by our models, carries no status tag).
_KIND_FOR_CODE = {
    "INVALID_ARG": ErrorKind.INVALID_REQUEST,
    "UNSUPPORTED": ErrorKind.LIMIT_EXCEEDED,
    "CANCELLED": ErrorKind.CLIENT_GONE,
    "UNAVAILABLE": ErrorKind.BACKEND_UNAVAILABLE,
    "INTERNAL": ErrorKind.INTERNAL,
}
#: gRPC status names (what tritonclient reports) of the Triton codes above; Triton maps
#: its codes to these, and a client's own deadline is gRPC's DEADLINE_EXCEEDED.
_TRITON_CODE_FOR_GRPC = {
    "INVALID_ARGUMENT": "INVALID_ARG",
    "UNIMPLEMENTED": "UNSUPPORTED",
    "CANCELLED": "CANCELLED",
    "UNAVAILABLE": "UNAVAILABLE",
    "INTERNAL": "INTERNAL",
}


class DocParseError(Exception):
    """Base class: an error with its row of the table. ``status`` may differ from the
    kind's only for an error that crossed a hop with a status we have no row for."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = self.kind.status
        #: Seconds after which a retry can succeed; only for kinds where retrying helps.
        self.retry_after = retry_after if self.kind.retry else None


class MalformedBodyError(DocParseError):
    """The body cannot be read at all (not JSON, bad multipart)."""

    kind = ErrorKind.MALFORMED_BODY


class InvalidRequestError(DocParseError):
    """The request itself is wrong: a bad field, a bad page range."""

    kind = ErrorKind.INVALID_REQUEST


class InvalidDocumentError(InvalidRequestError):
    """The file is not a document we can read: unknown type, corrupt, encrypted."""


class UnauthenticatedError(DocParseError):
    """No API key, or one that is not valid."""

    kind = ErrorKind.UNAUTHENTICATED


class NotFoundError(DocParseError):
    """The job asked for does not exist (any more)."""

    kind = ErrorKind.NOT_FOUND


class ConflictError(DocParseError):
    """The job is in a state that cannot give what was asked (a cancelled job's result)."""

    kind = ErrorKind.CONFLICT


class LimitExceededError(DocParseError):
    """The document is readable but over a configured limit (pages, pixels, bytes)."""

    kind = ErrorKind.LIMIT_EXCEEDED


class QuotaExceededError(DocParseError):
    """The API key's quota is used up for now; ``retry_after`` says when it is not."""

    kind = ErrorKind.QUOTA_EXCEEDED


class NotSupportedError(DocParseError):
    """What was asked needs an engine this server does not run (extraction on the CPU
    recognizer)."""

    kind = ErrorKind.NOT_SUPPORTED


class ClientGoneError(DocParseError):
    """The client disconnected or cancelled; its work was cancelled (nginx's 499)."""

    kind = ErrorKind.CLIENT_GONE


class InternalError(DocParseError):
    """Something failed that is not the request's fault."""

    kind = ErrorKind.INTERNAL


class ModelSetupError(InternalError):
    """A model could not be loaded: missing files, wrong name. Raised at start-up."""


class RecognitionError(DocParseError):
    """The recognition backend failed for a region after all retries."""

    kind = ErrorKind.RECOGNITION_FAILED


class RecognitionUnavailableError(RecognitionError):
    """The VLM cannot be reached (refused, timed out, known to be down); retrying later
    can succeed."""

    kind = ErrorKind.RECOGNITION_UNAVAILABLE


class BackendUnavailableError(DocParseError):
    """A service we depend on (Triton) cannot be reached."""

    kind = ErrorKind.BACKEND_UNAVAILABLE


class OverloadedError(DocParseError):
    """No capacity for the request right now; ``retry_after`` says when to try again."""

    kind = ErrorKind.OVERLOADED


class DeadlineExceededError(DocParseError):
    """The request did not finish within its deadline; its work was cancelled."""

    kind = ErrorKind.DEADLINE_EXCEEDED


def _classes(base: type[DocParseError]) -> list[type[DocParseError]]:
    return [base] + [cls for sub in base.__subclasses__() for cls in _classes(sub)]


#: Each kind's class: the one that declares it (subclasses such as InvalidDocumentError
#: share their parent's row).
_CLASS_FOR_KIND: dict[ErrorKind, type[DocParseError]] = {
    cls.__dict__["kind"]: cls for cls in _classes(DocParseError) if "kind" in cls.__dict__ and cls is not DocParseError
}



def _kind_for(status: int, retry_after: int | None) -> ErrorKind | None:
    """The first row with ``status`` whose retry matches whether a Retry-After came
    along (a 503 without one is BACKEND_UNAVAILABLE, with one OVERLOADED or alike),
    else the first row with ``status``."""
    rows = [kind for kind in ErrorKind if kind.status == status]
    return next((kind for kind in rows if kind.retry == (retry_after is not None)), rows[0] if rows else None)


def describe(exc: BaseException) -> str:
    """The one way an exception becomes a message: ours say what is wrong; anything
    else is named by its type, since its text alone is often empty or cryptic."""
    if isinstance(exc, DocParseError):
        return exc.message
    if isinstance(exc, asyncio.CancelledError):
        return "the request was cancelled"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def clip(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters, for a message that echoes what a request
    sent: a field name or a page range can be megabytes long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_error(exc: BaseException) -> DocParseError:
    """``exc`` as one of ours: cancellation is CLIENT_GONE, anything unknown INTERNAL."""
    if isinstance(exc, DocParseError):
        return exc
    if isinstance(exc, asyncio.CancelledError):
        return ClientGoneError(describe(exc))
    return InternalError(f"internal error: {describe(exc)}")


def error_for_status(status: int, message: str, retry_after: int | None = None) -> DocParseError:
    """The error of the table's row for ``status``, for an error crossing a process hop
    (a status with no row keeps its number on a plain ``DocParseError``)."""
    kind = _kind_for(status, retry_after)
    if kind is None:
        error = DocParseError(message)
        error.status = status
        return error
    return _CLASS_FOR_KIND[kind](message, retry_after=retry_after)


def error_for_code(code_name: str, message: str) -> DocParseError:
    """Our error for an error that crossed a hop: the status tag at the start of its
    message when our model put one there, else its Triton code (``INVALID_ARG``) or gRPC
    status name (``INVALID_ARGUMENT``, ``StatusCode.INVALID_ARGUMENT``)."""
    tag = split_status(message)
    if tag.status is not None:
        return error_for_status(tag.status, tag.message, tag.retry_after)
    text = tag.message
    name = code_name.rsplit(".", 1)[-1]
    if name == "DEADLINE_EXCEEDED":
        return DeadlineExceededError(text)
    kind = _KIND_FOR_CODE.get(_TRITON_CODE_FOR_GRPC.get(name, name), ErrorKind.INTERNAL)
    return _CLASS_FOR_KIND[kind](text)


# Triton's streaming gRPC API carries only an error's message, not its code, so our
# models put the status at the start of the message: "[422] field 'file': not valid
# base64", and a Retry-After with it where retrying helps: "[503 retry-after=10] …".
_STATUS_TAG = re.compile(r"^\[(\d{3})(?: retry-after=(\d+))?\] ")


class StatusTag(NamedTuple):
    status: int | None
    retry_after: int | None
    message: str


def tag_status(error: DocParseError) -> str:
    retry = f" retry-after={error.retry_after}" if error.retry_after is not None else ""
    return f"[{error.status}{retry}] {error.message}"


def split_status(message: str) -> StatusTag:
    """The status (and Retry-After) of a tagged message; ``None`` when untagged."""
    match = _STATUS_TAG.match(message)
    if match is None:
        return StatusTag(None, None, message)
    retry_after = int(match.group(2)) if match.group(2) else None
    return StatusTag(int(match.group(1)), retry_after, message[match.end():])
