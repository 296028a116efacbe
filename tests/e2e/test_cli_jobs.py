"""The jobs commands of ``docparse`` as a script runs them, against real gunicorn
workers, tritonserver and the VLM stand-in: submit, status, result, cancel, jobs. The
main paths run the real command in a subprocess (stdout and stderr pipes, not a
terminal); the other options run ``docparse.cli.main`` in this process, which is the
same code without a Python start each (about a second on a busy machine)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from docparse import cli
from docparse.cli_jobs import EXIT_NOT_FINISHED
from docparse.jobs.model import JobInfo, JobList, JobStatus
from scripts.gateway_local import GatewayServer
from testkit.documents import corrupt_pdf, sample_pdf
from vlmsim import SimulatorProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "0123456789abcdef0123456789abcdef"

pytestmark = pytest.mark.usefixtures("vlm")


@pytest.fixture
def docparse(gateway: GatewayServer):
    """``docparse ARGS…`` against the test gateway (DOCPARSE_URL): the finished process."""

    def run(*args: object) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCPARSE_URL": gateway.url}
        return subprocess.run(
            [sys.executable, "-m", "docparse.cli", *map(str, args)],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )

    return run


@pytest.fixture
def docparse_here(gateway: GatewayServer, capsys: pytest.CaptureFixture[str]):
    """The same as ``docparse``, through ``docparse.cli.main`` in this process."""

    def run(*args: object) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = cli.main([*map(str, args), "--url", gateway.url])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def submitted(run: subprocess.CompletedProcess[str]) -> str:
    """The job id ``docparse submit`` printed: on a pipe, the id and nothing else."""
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"[0-9a-f]{32}\n", run.stdout), run.stdout
    return run.stdout.strip()


def one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    return run.stderr.strip()


def test_submit_status_then_result_wait_write_what_the_job_answers(
    docparse, docparse_here, http: httpx.Client, tmp_path: Path
) -> None:
    document = tmp_path / "report.pdf"
    document.write_bytes(sample_pdf(3))
    job_id = submitted(docparse("submit", document, "--pages", "1-2"))

    status = docparse("status", job_id)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"job       {job_id}\nstatus    ")
    assert re.search(r"^pages     \d/(2|\? \(not known yet\)) done", status.stdout, re.MULTILINE), status.stdout

    out = tmp_path / "out"
    result = docparse("result", job_id, "--wait", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out / f'{job_id}.md'} and {out / f'{job_id}.json'}")
    assert result.stderr.splitlines()[-1].startswith("2 page(s) parsed in ")
    answer = http.get(f"/jobs/{job_id}/result").json()
    assert json.loads((out / f"{job_id}.json").read_text()) == answer["result"]
    figures = {name for page in answer["result"]["layoutParsingResults"] for name in page["markdown"]["images"]}
    assert all((out / name).is_file() for name in figures)
    markdown = http.get(f"/jobs/{job_id}/result", params={"format": "markdown"}).text
    assert (out / f"{job_id}.md").read_text() == markdown and markdown.strip()

    only_markdown = docparse_here("result", job_id, "--format", "markdown", "--out", tmp_path / "md")
    assert only_markdown.returncode == 0, only_markdown.stderr
    assert [p.name for p in (tmp_path / "md").iterdir()] == [f"{job_id}.md"]
    assert (tmp_path / "md" / f"{job_id}.md").read_text() == markdown

    info = JobInfo.model_validate_json(docparse_here("status", job_id, "--json").stdout)
    assert info.status is JobStatus.SUCCEEDED and (info.pagesDone, info.pagesTotal) == (2, 2)
    listing = JobList.model_validate_json(docparse_here("jobs", "--json", "--limit", "50").stdout)
    assert job_id in [job.jobId for job in listing.jobs]
    assert docparse_here("cancel", job_id).stdout == f"job {job_id} had already ended (succeeded); left as it is\n"


def test_submit_wait_follows_the_job_and_names_the_files_after_the_document(docparse, tmp_path: Path) -> None:
    document = tmp_path / "memo.pdf"
    document.write_bytes(sample_pdf(2))
    out = tmp_path / "out"

    run = docparse("submit", document, "--wait", "--out", out)

    assert run.returncode == 0, run.stderr
    job_id, wrote = run.stdout.splitlines()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    assert wrote.startswith(f"wrote {out / 'memo.md'} and {out / 'memo.json'}")
    lines = run.stderr.splitlines()
    assert lines[0].startswith("page 1/2 done (") and lines[1].startswith("page 2/2 done (")
    assert lines[-1].startswith("2 page(s) parsed in ")
    assert len(json.loads((out / "memo.json").read_text())["layoutParsingResults"]) == 2


def test_an_unknown_job_is_a_one_line_error(docparse, docparse_here) -> None:
    assert one_line_error(docparse("status", UNKNOWN)).startswith(f"error 404: no job '{UNKNOWN}'")
    for command in (("result", UNKNOWN, "--wait"), ("cancel", UNKNOWN)):
        assert one_line_error(docparse_here(*command)).startswith(f"error 404: no job '{UNKNOWN}'")


def test_a_failed_job_gives_its_error(docparse, docparse_here, http: httpx.Client, tmp_path: Path) -> None:
    document = tmp_path / "broken.pdf"
    document.write_bytes(corrupt_pdf())
    job_id = submitted(docparse("submit", document))

    waited = one_line_error(docparse("result", job_id, "--wait", "--out", tmp_path / "out"))

    error = http.get(f"/jobs/{job_id}").json()["error"]
    assert waited == f"error {error['code']}: {error['message']}" and error["code"] == 422
    assert one_line_error(docparse_here("result", job_id, "--out", tmp_path / "out")) == waited
    assert f"error     422: {error['message']}" in docparse_here("status", job_id).stdout
    assert not (tmp_path / "out").exists()


def test_a_running_job_has_no_result_until_asked_for_its_pages_so_far(
    docparse_here, vlm: SimulatorProcess, tmp_path: Path
) -> None:
    vlm.configure(latency=5.0)  # the job outlasts the commands below; cancelling it ends it
    document = tmp_path / "long.pdf"
    document.write_bytes(sample_pdf(6))
    job_id = submitted(docparse_here("submit", document))

    early = docparse_here("result", job_id, "--out", tmp_path / "out")
    assert early.returncode == EXIT_NOT_FINISHED, early.stderr
    assert re.match(rf"job {job_id} is (queued|running), .*--wait waits for it", early.stderr)
    assert not (tmp_path / "out").exists()

    partial = docparse_here("result", job_id, "--partial", "--out", tmp_path / "out")
    assert partial.returncode == 0, partial.stderr
    assert "the pages done so far" in partial.stderr and (tmp_path / "out" / f"{job_id}.json").exists()

    cancelled = docparse_here("cancel", job_id)
    assert cancelled.returncode == 0 and cancelled.stdout.startswith(f"job {job_id} cancelled"), cancelled.stderr
    assert one_line_error(docparse_here("result", job_id, "--wait")) == f"error: job {job_id} was cancelled; it has no result"
