"""What POST /jobs refuses rather than silently ignores."""

import pytest

from docparse.errors import InvalidRequestError
from docparse.jobs.model import JobRequest
from docparse.protocol import parse_request


def test_a_job_refuses_to_restructure_and_says_where_to_do_it():
    with pytest.raises(InvalidRequestError, match="field 'restructurePages'.*POST /restructure-pages"):
        parse_request({"file": "aGk=", "restructurePages": True}, JobRequest)
    assert parse_request({"file": "aGk=", "restructurePages": False}, JobRequest).restructurePages is False
