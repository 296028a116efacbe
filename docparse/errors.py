"""One exception hierarchy for everything the core can refuse or fail at.

Each error carries the HTTP status a gateway should answer with, so that adapters
(Triton models, gateway routes) map errors in one place instead of guessing.
Messages are written for the person who sent the request: they name the problem.
"""

from __future__ import annotations

import re


class DocParseError(Exception):
    """Base class. ``status`` is the HTTP status that fits the error."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(DocParseError):
    """The request itself is malformed: bad JSON, a wrong field, a bad page range."""

    status = 422


class InvalidDocumentError(DocParseError):
    """The file is not a document we can read: unknown type, corrupt, encrypted."""

    status = 422


class LimitExceededError(DocParseError):
    """The document is readable but over a configured limit (pages, pixels, bytes)."""

    status = 413


class ModelSetupError(DocParseError):
    """A model could not be loaded: missing files, wrong name. Raised at start-up."""

    status = 500


class RecognitionError(DocParseError):
    """The recognition backend failed for a region after all retries."""

    status = 502


class OverloadedError(DocParseError):
    """No capacity for the request right now; the caller should retry later."""

    status = 503


class DeadlineExceededError(DocParseError):
    """The request did not finish within its deadline; its work was cancelled."""

    status = 504


_ERROR_CLASSES: dict[int, type[DocParseError]] = {
    cls.status: cls
    for cls in (InvalidRequestError, LimitExceededError, RecognitionError, OverloadedError, DeadlineExceededError)
}


def error_for_status(status: int, message: str) -> DocParseError:
    """The error class that fits an HTTP-like status, for errors crossing a process hop."""
    error = _ERROR_CLASSES.get(status, DocParseError)(message)
    error.status = status
    return error


# Triton's streaming gRPC API carries only an error's message, not its code, so our
# models put the status at the start of the message: "[422] field 'file': not valid base64".
_STATUS_TAG = re.compile(r"^\[(\d{3})\] ")


def tag_status(status: int, message: str) -> str:
    return f"[{status}] {message}"


def split_status(message: str) -> tuple[int | None, str]:
    """``(status, message)`` from a tagged message; ``(None, message)`` when untagged."""
    match = _STATUS_TAG.match(message)
    if match is None:
        return None, message
    return int(match.group(1)), message[match.end():]
