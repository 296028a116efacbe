"""The command-line client of the gateway.

    docparse parse report.pdf --pages 1-3 --out out/    # out/report.md, out/report.json, figures
    docparse health                                     # the gateway's /health/ready
    docparse submit report.pdf --wait --out out/        # a background job (docparse/cli_jobs.py)
    docparse compare a.pdf --models m1,m2 --out cmp/    # two VLM profiles side by side (docparse/compare/)

The gateway is DOCPARSE_URL (default http://127.0.0.1:8080) or --url; with API keys on,
DOCPARSE_API_KEY is sent as the bearer token (never an option: a command line is seen by
every user of the machine in ps). The standard
library, httpx with httpx-sse for the event stream, and rich for the progress bar.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any, Iterator

import httpx
from httpx_sse import EventSource, SSEError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from docparse.responses import collect_events, parse_event

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = httpx.Timeout(connect=10.0, read=900.0, write=300.0, pool=10.0)


class CliError(Exception):
    """A failure to report as one line on stderr (exit code 1)."""


def gateway_url(given: str | None) -> str:
    return (given or os.environ.get("DOCPARSE_URL") or DEFAULT_URL).rstrip("/")


def gateway_client() -> httpx.Client:
    """The client of every call to the gateway: its timeouts, and the API key of
    DOCPARSE_API_KEY when set."""
    key = os.environ.get("DOCPARSE_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(timeout=TIMEOUT, trust_env=False, headers=headers)


def unreachable(url: str) -> CliError:
    return CliError(f"cannot reach the gateway at {url}: is it running? (make run)")


def error_from_envelope(body: Any, status: int) -> CliError:
    if isinstance(body, dict) and "errorMsg" in body:
        return CliError(f"error {body.get('errorCode', status)}: {body['errorMsg']}")
    return CliError(f"error {status}: {str(body)[:500]}")


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event name, JSON data) of each Server-Sent Event as it arrives. httpx-sse decodes
    the stream by the WHATWG rules: data over several lines, comments, and an event cut
    off by the end of the stream dropped rather than half read."""
    for event in EventSource(response).iter_sse():
        if event.data:  # an event without data (a bare ``retry:``) carries nothing to read
            yield event.event, json.loads(event.data)


class PagesPerSecond(ProgressColumn):
    """The rate in pages: rich's own speed columns count bytes or "it"."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} pages/s" if speed else "- pages/s", style="progress.data.speed")


class BarProgress:
    """rich's bar, for a person at a terminal: pages done/total, pages per second and
    time left; it pulses until the gateway says how many pages there are."""

    def __init__(self, name: str, console: Console) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            PagesPerSecond(),
            TimeRemainingColumn(elapsed_when_finished=True),
            console=console,
        )
        self.task = self.bar.add_task(name, total=None)
        self.done = 0

    def __enter__(self) -> BarProgress:
        self.bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and not self.done:
            self.bar.update(self.task, visible=False)  # no empty bar above the error message
        self.bar.stop()

    def page(self, done: int, total: int | None) -> None:
        self.done = done
        self.bar.update(self.task, completed=done, total=total, refresh=True)

    def finish(self, total: int) -> None:
        self.bar.update(self.task, completed=total, total=total, refresh=True)


class LineProgress:
    """One line per page, for a log or a pipe, where a redrawn bar would be noise."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self.started = time.monotonic()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def say(self, line: str) -> None:
        self.file.write(f"{line}\n")
        self.file.flush()

    def page(self, done: int, total: int | None) -> None:
        of = f"/{total}" if total else ""
        self.say(f"page {done}{of} done ({time.monotonic() - self.started:.1f} s)")

    def finish(self, total: int) -> None:
        self.say(f"{total} page(s) parsed in {time.monotonic() - self.started:.1f} s")


PageProgress = BarProgress | LineProgress


def page_progress(name: str, console: Console | None = None) -> PageProgress:
    """Where pages done are shown: a bar when stderr (or ``console``) is a terminal that
    can redraw a line (not TERM=dumb), plain lines elsewhere."""
    console = console or Console(stderr=True)
    return BarProgress(name, console) if console.is_interactive else LineProgress(console.file)


def safe_relative(path: str) -> PurePosixPath:
    """A figure's path from the gateway, refused if it could leave the output folder."""
    relative = PurePosixPath(path.replace("\\", "/"))
    if not path or relative.is_absolute() or ".." in relative.parts or ":" in relative.parts[0]:
        raise CliError(f"refusing to write the figure {path!r}: not a relative path inside the output folder")
    return relative


def write_outputs(source: Path, out: Path, result: dict) -> list[Path]:
    """``result`` is the unary response's ``result``: layoutParsingResults, dataInfo."""
    out.mkdir(parents=True, exist_ok=True)
    stem = source.stem
    pages = result["layoutParsingResults"]
    markdown = "\n\n".join((page.get("markdown") or {}).get("text", "") for page in pages)
    written = [out / f"{stem}.md", out / f"{stem}.json"]
    written[0].write_text(markdown + ("\n" if markdown and not markdown.endswith("\n") else ""), encoding="utf-8")
    written[1].write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for page in pages:
        images = (page.get("markdown") or {}).get("images") or {}
        for name, data in images.items():
            target = out.joinpath(*safe_relative(name).parts)
            try:
                content = base64.b64decode(data, validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise CliError(f"the figure {name!r} is not valid base64: {exc}") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            if target not in written:
                written.append(target)
    return written


def error_from_response(response: httpx.Response) -> CliError:
    """The error of a refused request (before any event): its envelope, or its text."""
    response.read()
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return error_from_envelope(body, response.status_code)


@contextmanager
def talking_to(url: str) -> Iterator[None]:
    """Every failure of a request to the gateway at ``url`` (its connection, a timeout,
    an event stream that is not one) as a CliError that says what happened."""
    try:
        yield
    except httpx.ConnectError:
        raise unreachable(url) from None
    except httpx.TimeoutException as exc:
        raise CliError(f"the gateway at {url} did not answer in time ({type(exc).__name__})") from None
    except SSEError as exc:
        raise CliError(f"{url} did not answer with Server-Sent Events: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"the gateway at {url} sent an event that is not JSON: {exc}") from None
    except httpx.HTTPError as exc:
        raise CliError(f"the connection to {url} failed: {exc}") from None


def stream_pages(url: str, source: Path, form: dict[str, str], progress: PageProgress) -> tuple[list[dict], dict]:
    """The page events and the final one of /layout-parsing/stream, each page shown as it
    arrives; every failure as a CliError that says what happened."""
    pages: list[dict] = []
    with talking_to(url), open(source, "rb") as handle, gateway_client() as client:
        files = {"file": (source.name, handle)}
        with client.stream("POST", f"{url}/layout-parsing/stream", files=files, data=form) as response:
            if response.status_code != 200:
                raise error_from_response(response)
            for name, event in sse_events(response):
                if name == "page" or event.get("type") == "page":
                    pages.append(event)
                    progress.page(len(pages), event.get("totalPages"))
                elif name == "final" or event.get("type") == "final":
                    return pages, event
                else:
                    raise error_from_envelope(event, 500)
    raise CliError("the stream ended before its final event (the gateway stopped?)")


def parse_command(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if not source.is_file():
        raise CliError(f"{source}: no such file")
    url = gateway_url(args.url)
    out = Path(args.out) if args.out else source.resolve().parent
    with page_progress(source.name) as progress:
        pages, final = stream_pages(url, source, request_form(args), progress)
        events = [parse_event(event) for event in (*pages, final)]
        result = collect_events(final.get("logId", ""), events).result.model_dump()
        progress.finish(len(result["layoutParsingResults"]))
    say_written(write_outputs(source, out, result))
    return 0


def request_form(args: argparse.Namespace) -> dict[str, str]:
    """The form fields of the options ``add_request_options`` declares."""
    form: dict[str, str] = {}
    if args.pages:
        form["pages"] = args.pages
    if args.dpi:
        form["dpi"] = str(args.dpi)
    return form


def say_written(written: list[Path]) -> None:
    """What ``write_outputs`` wrote, on stdout."""
    figures = len(written) - 2
    print(f"wrote {written[0]} and {written[1]}" + (f" and {figures} figure(s)" if figures else ""))


def health_command(args: argparse.Namespace) -> int:
    url = gateway_url(args.url)
    try:
        with gateway_client() as client:
            response = client.get(f"{url}/health/ready", timeout=30)
    except httpx.ConnectError:
        raise unreachable(url) from None
    except httpx.HTTPError as exc:
        raise CliError(f"the connection to {url} failed: {exc}") from None
    try:
        print(json.dumps(response.json(), ensure_ascii=False, indent=2))
    except ValueError:
        print(response.text)
    return 0 if response.status_code == 200 else 1


def add_request_options(parser: argparse.ArgumentParser) -> None:
    """How to parse the document (parse and submit); ``request_form`` sends them."""
    parser.add_argument("--pages", help="pages to parse, e.g. 1-3,5 (default: all)")
    parser.add_argument("--dpi", type=int, help="render PDF pages at this DPI")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docparse", description="DocParse HPS command-line client.")
    commands = parser.add_subparsers(dest="command", required=True)
    url_help = f"the gateway (default: DOCPARSE_URL or {DEFAULT_URL})"

    parse = commands.add_parser("parse", help="parse a PDF or image into Markdown and JSON")
    parse.add_argument("file", help="the PDF or image")
    add_request_options(parse)
    parse.add_argument("--out", help="output folder (default: the file's folder)")
    parse.add_argument("--url", help=url_help)
    parse.set_defaults(run=parse_command)

    health = commands.add_parser("health", help="print the gateway's readiness; exit 0 when ready")
    health.add_argument("--url", help=url_help)
    health.set_defaults(run=health_command)

    from docparse.cli_jobs import add_job_commands  # imported here: it imports this module

    add_job_commands(commands, url_help)
    from docparse.compare.command import add_compare_command

    add_compare_command(commands, url_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as exc:
        print(str(exc) if str(exc).startswith(("error ", "cannot reach")) else f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # As docparse.cli, not __main__: the jobs commands raise docparse.cli's CliError.
    from docparse.cli import main as package_main

    sys.exit(package_main())
