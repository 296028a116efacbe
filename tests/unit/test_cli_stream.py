"""The CLI's side of /layout-parsing/stream over real HTTP (a scripted server in place of
the gateway): how it reads Server-Sent Events, what it shows while pages arrive, and
what it says when the stream goes wrong."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import httpx
import pytest
from rich.console import Console

from docparse import cli
from tests.support.event_stream import AWKWARD, AWKWARD_EVENTS, EventStreamServer, Stream, sse
from testkit.documents import sample_pdf


def page_event(index: int, total: int | None = None) -> str:
    event = {"type": "page", "logId": "t", "pageIndex": index, "result": {}}
    if total is not None:
        event["totalPages"] = total
    return json.dumps(event)


def test_events_are_named_their_data_may_span_lines_and_an_unfinished_last_one_is_dropped():
    with EventStreamServer(AWKWARD) as server, httpx.stream("POST", server.url, content=b"") as response:
        assert list(cli.sse_events(response)) == AWKWARD_EVENTS


@pytest.fixture
def parse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, list[bytes]]]:
    """``docparse parse`` of a one-page PDF against a server answering ``pieces``: the
    exit code, stderr (not a terminal here) and the request bodies the server read."""
    document = tmp_path / "doc.pdf"
    document.write_bytes(sample_pdf(pages=1))

    def run(*pieces: bytes, status: int = 200, content_type: str = "text/event-stream") -> tuple[int, str, list[bytes]]:
        with EventStreamServer(Stream(pieces, status, content_type)) as server:
            code = cli.main(["parse", str(document), "--url", server.url, "--out", str(tmp_path / "out")])
        return code, capsys.readouterr().err, server.bodies

    return run


def test_pages_are_shown_with_the_total_and_an_error_event_ends_the_parse(parse, tmp_path):
    error = json.dumps({"logId": "t", "errorCode": 504, "errorMsg": "inference took longer than 600 s"})

    code, err, bodies = parse(
        sse("page", page_event(0, total=3)), sse("page", page_event(1, total=3)), sse("error", error)
    )

    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("page 1/3 done (") and lines[0].endswith(" s)")
    assert lines[1].startswith("page 2/3 done (")
    assert lines[2] == "error 504: inference took longer than 600 s"
    assert b'filename="doc.pdf"' in bodies[0]
    assert not (tmp_path / "out").exists()


def test_without_a_total_pages_are_counted_until_the_stream_ends_early(parse):
    code, err, _ = parse(sse("page", page_event(0)), b'event: final\ndata: {"type": "final"')

    assert code == 1
    assert err.splitlines()[0].startswith("page 1 done (")
    assert "error: the stream ended before its final event (the gateway stopped?)" in err


@pytest.mark.parametrize(
    ("pieces", "content_type", "says"),
    [
        ((b"<html>a proxy's page</html>",), "text/html", "did not answer with Server-Sent Events"),
        ((b"event: page\ndata: {not json\n\n",), "text/event-stream", "sent an event that is not JSON"),
    ],
)
def test_an_answer_that_is_not_an_event_stream_is_one_line(parse, pieces, content_type, says):
    code, err, _ = parse(*pieces, content_type=content_type)

    assert code == 1
    assert says in err and "Traceback" not in err


def test_a_refused_request_shows_the_envelope(parse):
    envelope = json.dumps({"logId": "t", "errorCode": 413, "errorMsg": "5 pages, at most 2"}).encode()

    code, err, _ = parse(envelope, status=413, content_type="application/json")

    assert (code, err) == (1, "error 413: 5 pages, at most 2\n")


def test_plain_lines_when_stderr_is_not_a_terminal():
    out = io.StringIO()
    with cli.page_progress("doc.pdf", Console(file=out)) as progress:
        progress.page(1, None)
        progress.page(2, 3)
        progress.finish(3)

    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines[:2]] == ["page 1 done", "page 2/3 done"]
    assert lines[2].startswith("3 page(s) parsed in ") and lines[2].endswith(" s")


def terminal(out: io.StringIO) -> Console:
    return Console(file=out, force_terminal=True, force_interactive=True, width=120)


def test_a_bar_with_done_of_total_and_the_rate_on_a_terminal():
    out = io.StringIO()
    with cli.page_progress("doc.pdf", terminal(out)) as progress:
        progress.page(1, None)
        first = out.getvalue()
        progress.page(2, 3)
        progress.finish(3)

    drawn = out.getvalue()
    assert "doc.pdf" in first and "1/?" in first  # before the total is known
    assert "2/3" in drawn and "3/3" in drawn and "pages/s" in drawn
    assert "page 2/3 done" not in drawn  # the bar, not the plain lines


def test_the_bar_gives_the_cursor_back_when_interrupted():
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with cli.page_progress("doc.pdf", terminal(out)):
            raise KeyboardInterrupt

    assert out.getvalue().endswith("\x1b[?25h")  # rich hid the cursor while drawing
