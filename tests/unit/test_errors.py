"""The one error table: every hop (Triton models, clients, the gateway) translates through
it, so an error keeps its status whichever way it travels."""

import asyncio

import pytest

from docparse.errors import (
    BackendUnavailableError,
    ClientGoneError,
    DeadlineExceededError,
    DocParseError,
    ErrorKind,
    InternalError,
    InvalidDocumentError,
    InvalidRequestError,
    LimitExceededError,
    OverloadedError,
    as_error,
    describe,
    error_for_code,
    error_for_status,
    split_status,
    tag_status,
)


def test_a_tagged_message_gives_back_its_status_and_text():
    assert split_status(tag_status(LimitExceededError("the document has 2000 pages"))) == (
        413, None, "the document has 2000 pages"
    )
    busy = split_status(tag_status(OverloadedError("busy", retry_after=12)))
    assert busy == (503, 12, "busy")


def test_an_untagged_message_has_no_status():
    assert split_status("[oops] something") == (None, None, "[oops] something")


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_kind_survives_a_hop_with_its_status_and_message(kind):
    """What our models send (status tag + Triton code) comes back as the same status."""
    retry_after = 7 if kind.retry else None
    sent = error_for_status(kind.status, "what went wrong", retry_after)
    error = error_for_code(kind.triton_code, tag_status(sent))
    assert (error.status, error.message, error.retry_after) == (kind.status, "what went wrong", retry_after)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("INVALID_ARG", InvalidRequestError),
        ("StatusCode.INVALID_ARGUMENT", InvalidRequestError),
        ("StatusCode.UNIMPLEMENTED", LimitExceededError),
        ("UNAVAILABLE", BackendUnavailableError),
        ("StatusCode.UNAVAILABLE", BackendUnavailableError),
        ("StatusCode.CANCELLED", ClientGoneError),
        ("StatusCode.DEADLINE_EXCEEDED", DeadlineExceededError),
        ("StatusCode.INTERNAL", InternalError),
        ("StatusCode.RESOURCE_EXHAUSTED", InternalError),
    ],
)
def test_an_error_from_triton_itself_is_translated_by_its_code(code, expected):
    error = error_for_code(code, "model 'x' is not ready")
    assert type(error) is expected and error.message == "model 'x' is not ready"


def test_the_status_picks_the_error_class():
    assert isinstance(error_for_status(422, "bad"), InvalidRequestError)
    assert isinstance(error_for_status(413, "big"), LimitExceededError)
    # A 503 that crossed a hop has lost its Retry-After: it is not "busy, retry in N s".
    assert type(error_for_status(503, "down")) is BackendUnavailableError
    other = error_for_status(418, "teapot")
    assert type(other) is DocParseError and other.status == 418 and other.message == "teapot"


def test_retry_after_is_kept_only_where_retrying_helps():
    assert OverloadedError("busy", retry_after=7).retry_after == 7
    assert BackendUnavailableError("down", retry_after=7).retry_after is None


def test_one_way_to_describe_and_wrap_any_exception():
    assert describe(InvalidDocumentError("the PDF is encrypted")) == "the PDF is encrypted"
    assert describe(KeyError("page")) == "KeyError: 'page'"
    assert describe(TimeoutError()) == "TimeoutError"
    wrapped = as_error(ValueError("bad pixel"))
    assert (wrapped.status, wrapped.message) == (500, "internal error: ValueError: bad pixel")
    assert as_error(asyncio.CancelledError()).status == 499
    ours = InvalidRequestError("x")
    assert as_error(ours) is ours
