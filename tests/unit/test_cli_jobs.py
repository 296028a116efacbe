"""The jobs commands' side of the wire without a gateway: no server on the port, a
scripted server in its place (what ``submit`` sends, what it makes of odd answers).
The commands against a real gateway: tests/e2e/test_cli_jobs.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docparse import cli
from scripts.processes import free_port
from tests.support.event_stream import EventStreamServer, Stream
from testkit.documents import sample_pdf

JOB_ID = "5f0c3d9be1f84b0c9a7e2d6f4b1a8c37"
QUEUED = {
    "jobId": JOB_ID, "status": "queued", "logId": "t", "pagesDone": 0, "pagesFailed": 0, "pagesTotal": None,
    "queuePosition": 0, "attempts": 0, "createdAt": "2025-01-01T00:00:00Z", "startedAt": None,
    "finishedAt": None, "expiresAt": None,
}


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "doc.pdf"
    path.write_bytes(sample_pdf(pages=1))
    return path


@pytest.mark.parametrize("command", [["status", JOB_ID], ["result", JOB_ID, "--wait"], ["cancel", JOB_ID], ["jobs"]])
def test_with_no_gateway_every_command_says_it_cannot_reach_it(command, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main([*command, "--url", url]) == 1
    assert capsys.readouterr().err == f"cannot reach the gateway at {url}: is it running? (make run)\n"


def test_submit_of_a_missing_file_is_a_readable_error(tmp_path, capsys):
    assert cli.main(["submit", str(tmp_path / "nope.pdf")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.pdf'}: no such file\n"


def test_submit_uploads_the_file_with_its_options_and_prints_only_the_id_on_a_pipe(document, capsys):
    answer = Stream((json.dumps(QUEUED).encode(),), 202, "application/json")
    with EventStreamServer(answer) as server:
        code = cli.main(["submit", str(document), "--url", server.url, "--pages", "1", "--dpi", "150",
                         "--callback-url", "https://example.com/done"])

    assert code == 0
    assert capsys.readouterr().out == f"{JOB_ID}\n"
    body = server.bodies[0]
    assert b'filename="doc.pdf"' in body and b"%PDF" in body
    for name, value in (("pages", b"1"), ("dpi", b"150"), ("callbackUrl", b"https://example.com/done")):
        assert f'name="{name}"'.encode() + b"\r\n\r\n" + value + b"\r\n" in body


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (Stream((b"<html>a proxy's page</html>",), 200, "text/html"), "sent a JobInfo this client cannot read"),
        (Stream((json.dumps({**QUEUED, "status": "lost"}).encode(),), 202, "application/json"), "(status: Input should be"),
        (
            Stream((b'{"logId": "t", "errorCode": 503, "errorMsg": "1000 jobs queued, at most 1000"}',), 503,
                   "application/json"),
            "error 503: 1000 jobs queued, at most 1000",
        ),
    ],
)
def test_an_answer_that_is_no_job_is_one_line(document, capsys, answer, says):
    with EventStreamServer(answer) as server:
        assert cli.main(["submit", str(document), "--url", server.url]) == 1
    captured = capsys.readouterr()
    assert says in captured.err and len(captured.err.splitlines()) == 1 and captured.out == ""
