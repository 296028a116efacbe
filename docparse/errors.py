"""One exception hierarchy for everything the core can refuse or fail at.

Each error carries the HTTP status a gateway should answer with, so that adapters
(Triton models, gateway routes) map errors in one place instead of guessing.
Messages are written for the person who sent the request: they name the problem.
"""

from __future__ import annotations


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
