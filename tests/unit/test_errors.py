"""Errors keep their HTTP-like status across process hops (Triton streams carry only text)."""

from docparse.errors import (
    DocParseError,
    InvalidRequestError,
    LimitExceededError,
    error_for_status,
    split_status,
    tag_status,
)


def test_a_tagged_message_gives_back_its_status_and_text():
    assert split_status(tag_status(413, "the document has 2000 pages")) == (
        413,
        "the document has 2000 pages",
    )


def test_an_untagged_message_has_no_status():
    assert split_status("[oops] something") == (None, "[oops] something")


def test_the_status_picks_the_error_class():
    assert isinstance(error_for_status(422, "bad"), InvalidRequestError)
    assert isinstance(error_for_status(413, "big"), LimitExceededError)
    other = error_for_status(418, "teapot")
    assert type(other) is DocParseError and other.status == 418 and other.message == "teapot"
