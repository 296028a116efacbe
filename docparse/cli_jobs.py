"""The jobs commands of ``docparse``: a document parsed in the background by the gateway
(``/jobs``), so that the work outlives the connection and the command.

    id=$(docparse submit report.pdf --pages 1-3)   # the job id (only the id when piped)
    docparse status "$id"                           # status, pages done/total, queue, times
    docparse result "$id" --wait --out out/         # out/<id>.md, out/<id>.json, figures
    docparse submit report.pdf --wait --out out/    # both at once: out/report.md, …
    docparse cancel "$id"; docparse jobs            # stop it; the caller's jobs

Registered by ``docparse.cli.build_parser``; the same gateway URL, progress display,
output files and one-line errors as ``docparse parse``. Answers are read into the
jobs API's models (``docparse.jobs.model``, ``docparse.responses``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from docparse.cli import (
    CliError,
    add_request_options,
    error_from_envelope,
    error_from_response,
    gateway_client,
    gateway_url,
    page_progress,
    request_form,
    say_written,
    sse_events,
    talking_to,
    write_outputs,
)
from docparse.jobs.model import JobInfo, JobList, JobStatus
from docparse.responses import FINAL_EVENT, PAGE_EVENT, ErrorEnvelope, LayoutParsingResponse, PageEvent

M = TypeVar("M", bound=BaseModel)

#: ``result`` of a job that has not finished (sysexits' EX_TEMPFAIL: try again later).
EXIT_NOT_FINISHED = 75
STATUS_EVENT, ERROR_EVENT = "status", "error"


def job_path(job_id: str) -> str:
    return f"/jobs/{quote(job_id, safe='')}"


def read(model: type[M], data: bytes | dict, url: str) -> M:
    """An answer of the gateway as ``model``; one that is not is a CliError."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the answer"
        problem_text = f"{where}: {problem['msg']}"
        raise CliError(f"the gateway at {url} sent a {model.__name__} this client cannot read ({problem_text})") from None


def call(url: str, method: str, path: str, **request: Any) -> httpx.Response:
    """One request to the gateway; a refusal (not 2xx) is the CliError of its envelope."""
    with talking_to(url), gateway_client() as client:
        response = client.request(method, f"{url}{path}", **request)
    if not response.is_success:
        raise error_from_response(response)
    return response


def job_info(url: str, job_id: str) -> JobInfo:
    return read(JobInfo, call(url, "GET", job_path(job_id)).content, url)


def follow(url: str, job_id: str, name: str) -> JobInfo:
    """Follow ``/jobs/{id}/events`` until the job ends, its pages shown as they are
    stored (a page retried after a failure counts once); the job's last status."""
    info: JobInfo | None = None
    done: set[int] = set()
    with page_progress(name) as progress, talking_to(url), gateway_client() as client:
        with client.stream("GET", f"{url}{job_path(job_id)}/events") as response:
            if response.status_code != 200:
                raise error_from_response(response)
            for event, data in sse_events(response):
                if event == STATUS_EVENT:
                    info = read(JobInfo, data, url)
                elif event == PAGE_EVENT:
                    page = read(PageEvent, data, url)
                    done.add(page.pageIndex)
                    progress.page(len(done), page.totalPages or None)
                elif event == FINAL_EVENT:
                    progress.finish(len(done))
                    return info if info is not None and info.status.finished else job_info(url, job_id)
                elif event == ERROR_EVENT:
                    if info is not None and info.status.finished:
                        return info  # failed or cancelled: the caller says which, from its status
                    envelope = read(ErrorEnvelope, data, url)
                    raise error_from_envelope(envelope.model_dump(), envelope.errorCode)
    raise CliError(f"the events of job {job_id} ended before the job did (the gateway stopped, or the job expired?)")


def no_result(info: JobInfo) -> CliError:
    """Why a failed or cancelled job has no result."""
    if info.status is JobStatus.CANCELLED:
        return CliError(f"job {info.jobId} was cancelled; it has no result")
    error = info.error
    return error_from_envelope({"errorCode": error.code, "errorMsg": error.message} if error else info.status.value, 500)


def write_result(url: str, info: JobInfo, out: Path, format: str, name: Path) -> None:
    """The job's result (the pages stored so far while it runs) into ``out``, as
    ``docparse parse`` writes it, named after ``name``'s stem."""
    path = f"{job_path(info.jobId)}/result"
    if format == "markdown":
        markdown = call(url, "GET", path, params={"format": "markdown"}).text
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{name.stem}.md"
        target.write_text(markdown, encoding="utf-8")
        print(f"wrote {target}")
        return
    envelope = read(LayoutParsingResponse, call(url, "GET", path).content, url)
    say_written(write_outputs(name, out, envelope.result.model_dump()))


def deliver(url: str, info: JobInfo, args: argparse.Namespace, out: Path, name: Path) -> int:
    """What ``result`` and ``submit --wait`` do with the job as it is now."""
    if info.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise no_result(info)
    if not info.status.finished and not getattr(args, "partial", False):
        print(f"job {info.jobId} is {progress_of(info)}: no result yet; --wait waits for it, "
              "--partial writes the pages done so far", file=sys.stderr)
        return EXIT_NOT_FINISHED
    write_result(url, info, out, args.format, name)
    if not info.status.finished:
        print(f"job {info.jobId} is {progress_of(info)}: these are the pages done so far", file=sys.stderr)
    elif info.status is JobStatus.PARTIAL:
        print(f"job {info.jobId} finished with {info.pagesFailed} failed page(s) (marked in the result)", file=sys.stderr)
    return 0


def progress_of(info: JobInfo) -> str:
    """``running, 2/5 pages done`` or ``queued, 3 job(s) ahead``."""
    if info.status is JobStatus.QUEUED and info.queuePosition is not None:
        return f"queued, {info.queuePosition} job(s) ahead"
    total = f"/{info.pagesTotal}" if info.pagesTotal is not None else ""
    return f"{info.status.value}, {info.pagesDone}{total} pages done"


def submit_command(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if not source.is_file():
        raise CliError(f"{source}: no such file")
    url = gateway_url(args.url)
    form = request_form(args)
    if args.callback_url:
        form["callbackUrl"] = args.callback_url
    with open(source, "rb") as handle:
        info = read(JobInfo, call(url, "POST", "/jobs", files={"file": (source.name, handle)}, data=form).content, url)
    if not sys.stdout.isatty():
        print(info.jobId, flush=True)  # only the id: id=$(docparse submit report.pdf)
    elif not args.wait:
        print(f"submitted {source.name} as job {info.jobId} ({progress_of(info)})")
        print(f"follow it: docparse status {info.jobId}, docparse result {info.jobId} --wait --out DIR")
    else:
        print(f"submitted {source.name} as job {info.jobId}", flush=True)
    if not args.wait:
        return 0
    try:
        info = follow(url, info.jobId, source.name)
    except KeyboardInterrupt:
        print(f"the job goes on: docparse result {info.jobId} --wait (or docparse cancel {info.jobId})", file=sys.stderr)
        raise
    out = Path(args.out) if args.out else source.resolve().parent
    return deliver(url, info, args, out, source)


def result_command(args: argparse.Namespace) -> int:
    url = gateway_url(args.url)
    info = follow(url, args.id, f"job {args.id[:8]}") if args.wait else job_info(url, args.id)
    return deliver(url, info, args, Path(args.out), Path(info.jobId))


def when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "-"


def describe(info: JobInfo) -> list[str]:
    """The lines of ``docparse status``."""
    total = str(info.pagesTotal) if info.pagesTotal is not None else "? (not known yet)"
    lines = [
        f"job       {info.jobId}",
        f"status    {info.status.value}" + (f" (attempt {info.attempts})" if info.attempts > 1 else ""),
        f"pages     {info.pagesDone}/{total} done" + (f", {info.pagesFailed} failed" if info.pagesFailed else ""),
    ]
    if info.queuePosition is not None:
        lines.append(f"queue     {info.queuePosition} job(s) ahead")
    lines.append(f"created   {when(info.createdAt)}")
    lines += [f"{label:<10}{when(moment)}" for label, moment in
              (("started", info.startedAt), ("finished", info.finishedAt), ("expires", info.expiresAt)) if moment]
    if info.error is not None:
        label = "error" if info.status.finished else "last error"
        lines.append(f"{label:<10}{info.error.code}: {info.error.message}")
    if info.callback is not None:
        lines.append(f"callback  {info.callback.url}: {info.callback.state} after {info.callback.attempts} attempt(s)"
                     + (f" ({info.callback.error})" if info.callback.error else ""))
    lines.append(f"log id    {info.logId}")
    return lines


def status_command(args: argparse.Namespace) -> int:
    info = job_info(gateway_url(args.url), args.id)
    print(info.model_dump_json(indent=2) if args.json else "\n".join(describe(info)))
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    url = gateway_url(args.url)
    info = read(JobInfo, call(url, "DELETE", job_path(args.id)).content, url)
    if info.status is JobStatus.CANCELLED:
        print(f"job {info.jobId} cancelled ({info.pagesDone} page(s) were done)")
    else:
        print(f"job {info.jobId} had already ended ({info.status.value}); left as it is")
    return 0


def jobs_command(args: argparse.Namespace) -> int:
    url = gateway_url(args.url)
    params = {"limit": args.limit, **({"cursor": args.cursor} if args.cursor else {})}
    listing = read(JobList, call(url, "GET", "/jobs", params=params).content, url)
    if args.json:
        print(listing.model_dump_json(indent=2))
        return 0
    for info in listing.jobs:
        pages = f"{info.pagesDone}/{info.pagesTotal if info.pagesTotal is not None else '?'} pages"
        ahead = f"  {info.queuePosition} ahead" if info.queuePosition is not None else ""
        print(f"{info.jobId}  {info.status.value:<9}  {pages:<13}  {when(info.createdAt)}{ahead}")
    if listing.nextCursor:
        print(f"more: docparse jobs --cursor {listing.nextCursor}", file=sys.stderr)
    return 0


RESULT_HELP = (
    "Write a job's result into --out as `docparse parse` writes it: <id>.md, <id>.json and "
    "the figures (--format markdown: <id>.md only). Exit codes: 0 written; 1 an error, a "
    f"failed job (its error) or a cancelled one; {EXIT_NOT_FINISHED} the job has not finished "
    "(without --wait or --partial)."
)


def add_output_options(parser: argparse.ArgumentParser, out: str | None, out_help: str) -> None:
    parser.add_argument("--out", default=out, help=f"output folder (default: {out_help})")
    parser.add_argument("--format", choices=("json", "markdown"), default="json",
                        help="json: .md, .json and figures, as parse writes them (default); markdown: the .md only")


def add_job_commands(commands: Any, url_help: str) -> None:
    """``submit``, ``status``, ``result``, ``cancel`` and ``jobs`` on ``commands``
    (the subparsers of ``docparse.cli.build_parser``)."""
    submit = commands.add_parser(
        "submit", help="parse a document in the background: print its job id",
        description="Upload a document as a job (POST /jobs) and print its id; on a pipe, only the id. "
        "With --wait, follow it and write its result as `result --wait` does (and with its exit codes).",
    )
    submit.add_argument("file", help="the PDF or image")
    add_request_options(submit)
    submit.add_argument("--callback-url", help="http(s) URL the gateway POSTs the job's status to when it ends")
    submit.add_argument("--wait", action="store_true", help="follow the job and write its result like `result`")
    add_output_options(submit, None, "the file's folder")
    submit.set_defaults(run=submit_command)

    result = commands.add_parser("result", help="write a job's result (Markdown, JSON, figures)", description=RESULT_HELP)
    result.add_argument("id", help="the job id")
    add_output_options(result, ".", "the current folder")
    result.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
    result.add_argument("--partial", action="store_true", help="write the pages done so far of a job still running")
    result.set_defaults(run=result_command)

    status = commands.add_parser("status", help="a job's status, pages done/total, queue position, times, error")
    status.add_argument("id", help="the job id")
    status.add_argument("--json", action="store_true", help="print the JobInfo JSON")
    status.set_defaults(run=status_command)

    cancel = commands.add_parser("cancel", help="cancel a job (a finished one is left as it is)")
    cancel.add_argument("id", help="the job id")
    cancel.set_defaults(run=cancel_command)

    jobs = commands.add_parser("jobs", help="your jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20, help="jobs to list (1-200, default 20)")
    jobs.add_argument("--cursor", help="where the previous listing stopped (it prints it)")
    jobs.add_argument("--json", action="store_true", help="print the JobList JSON")
    jobs.set_defaults(run=jobs_command)
    for command in (submit, result, status, cancel, jobs):
        command.add_argument("--url", help=url_help)
