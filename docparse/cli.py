"""The command-line client of the gateway.

    docparse parse report.pdf --pages 1-3 --out out/    # out/report.md, out/report.json, figures
    docparse health                                     # the gateway's /health/ready

The gateway is DOCPARSE_URL (default http://127.0.0.1:8080) or --url. Only the standard
library and httpx.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import httpx

from docparse.responses import collect_events, parse_event

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = httpx.Timeout(connect=10.0, read=900.0, write=300.0, pool=10.0)


class CliError(Exception):
    """A failure to report as one line on stderr (exit code 1)."""


def gateway_url(given: str | None) -> str:
    return (given or os.environ.get("DOCPARSE_URL") or DEFAULT_URL).rstrip("/")


def unreachable(url: str) -> CliError:
    return CliError(f"cannot reach the gateway at {url}: is it running? (make run)")


def error_from_envelope(body: Any, status: int) -> CliError:
    if isinstance(body, dict) and "errorMsg" in body:
        return CliError(f"error {body.get('errorCode', status)}: {body['errorMsg']}")
    return CliError(f"error {status}: {str(body)[:500]}")


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event name, data) of each Server-Sent Event as it arrives."""
    name, data = "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield name, json.loads("\n".join(data))
            name, data = "message", []
    if data:
        yield name, json.loads("\n".join(data))


class Progress:
    """Pages done and seconds elapsed on stderr: one rewritten line on a terminal."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.drawn = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def page(self, done: int, total: int | None = None) -> None:
        of = f"/{total}" if total else ""
        if self.tty:
            width = 20
            if total:
                filled = int(width * done / total)
                bar = "#" * filled + "." * (width - filled)
            else:
                bar = ("#" * (done % (width + 1))).ljust(width, ".")
            sys.stderr.write(f"\r{self.name} [{bar}] page {done}{of} done  {self.elapsed():.1f} s")
            self.drawn = True
        else:
            sys.stderr.write(f"page {done}{of} done ({self.elapsed():.1f} s)\n")
        sys.stderr.flush()

    def finish(self, total: int) -> None:
        if self.tty:
            self.page(total, total)
            sys.stderr.write("\n")
        else:
            sys.stderr.write(f"{total} page(s) parsed in {self.elapsed():.1f} s\n")
        sys.stderr.flush()

    def abandon(self) -> None:
        if self.tty and self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


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


def parse_command(args: argparse.Namespace) -> int:
    source = Path(args.file)
    if not source.is_file():
        raise CliError(f"{source}: no such file")
    url = gateway_url(args.url)
    out = Path(args.out) if args.out else source.resolve().parent
    form: dict[str, str] = {}
    if args.pages:
        form["pages"] = args.pages
    if args.dpi:
        form["dpi"] = str(args.dpi)
    progress = Progress(source.name)
    pages: list[dict] = []
    final: dict | None = None
    try:
        with open(source, "rb") as handle, httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
            with client.stream(
                "POST",
                f"{url}/layout-parsing/stream",
                files={"file": (source.name, handle)},
                data=form,
            ) as response:
                if response.status_code != 200:
                    response.read()
                    try:
                        body: Any = response.json()
                    except ValueError:
                        body = response.text
                    raise error_from_envelope(body, response.status_code)
                for name, event in sse_events(response):
                    if name == "page" or event.get("type") == "page":
                        pages.append(event)
                        progress.page(len(pages))
                    elif name == "final" or event.get("type") == "final":
                        final = event
                        break
                    else:
                        raise error_from_envelope(event, 500)
    except httpx.ConnectError:
        progress.abandon()
        raise unreachable(url) from None
    except httpx.TimeoutException as exc:
        progress.abandon()
        raise CliError(f"the gateway at {url} did not answer in time ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        progress.abandon()
        raise CliError(f"the connection to {url} failed: {exc}") from None
    except CliError:
        progress.abandon()
        raise
    if final is None:
        progress.abandon()
        raise CliError("the stream ended before its final event (the gateway stopped?)")
    events = [parse_event(event) for event in (*pages, final)]
    result = collect_events(final.get("logId", ""), events).result.model_dump()
    progress.finish(len(result["layoutParsingResults"]))
    written = write_outputs(source, out, result)
    figures = len(written) - 2
    print(f"wrote {written[0]} and {written[1]}" + (f" and {figures} figure(s)" if figures else ""))
    return 0


def health_command(args: argparse.Namespace) -> int:
    url = gateway_url(args.url)
    try:
        response = httpx.get(f"{url}/health/ready", timeout=30, trust_env=False)
    except httpx.ConnectError:
        raise unreachable(url) from None
    except httpx.HTTPError as exc:
        raise CliError(f"the connection to {url} failed: {exc}") from None
    try:
        print(json.dumps(response.json(), ensure_ascii=False, indent=2))
    except ValueError:
        print(response.text)
    return 0 if response.status_code == 200 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docparse", description="DocParse HPS command-line client.")
    commands = parser.add_subparsers(dest="command", required=True)
    url_help = f"the gateway (default: DOCPARSE_URL or {DEFAULT_URL})"

    parse = commands.add_parser("parse", help="parse a PDF or image into Markdown and JSON")
    parse.add_argument("file", help="the PDF or image")
    parse.add_argument("--pages", help="pages to parse, e.g. 1-3,5 (default: all)")
    parse.add_argument("--out", help="output folder (default: the file's folder)")
    parse.add_argument("--url", help=url_help)
    parse.add_argument("--dpi", type=int, help="render PDF pages at this DPI")
    parse.set_defaults(run=parse_command)

    health = commands.add_parser("health", help="print the gateway's readiness; exit 0 when ready")
    health.add_argument("--url", help=url_help)
    health.set_defaults(run=health_command)
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
    sys.exit(main())
