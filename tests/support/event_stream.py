"""A real HTTP server on 127.0.0.1 (a port of its own) that answers every POST with one
scripted body, written piece by piece: for the project's two Server-Sent Events clients
(the CLI on httpx, the load generator on aiohttp) without a gateway, including streams
the gateway never sends (an event cut off, a body that is not an event stream).

It runs in a thread, so a synchronous client can call it as well as an asynchronous one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Stream:
    """The answer: ``pieces`` are written and flushed one after the other, then the
    connection closes (HTTP/1.0: the end of the body is the end of the connection)."""

    pieces: tuple[bytes, ...]
    status: int = 200
    content_type: str = "text/event-stream"


def sse(name: str, *data_lines: str) -> bytes:
    """One event as a server writes it: its name, each data line, the blank line."""
    return "".join([f"event: {name}\n", *(f"data: {line}\n" for line in data_lines), "\n"]).encode()


class EventStreamServer:
    """Serves ``stream`` to every POST and keeps the bodies it was sent.

        with EventStreamServer(Stream((sse("page", "{}"),))) as server:
            server.url, server.bodies
    """

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.bodies: list[bytes] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll: shutdown() waits for it, and the default half second would be most of a test.
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, name="event-stream-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> EventStreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(server.stream.status)
                self.send_header("Content-Type", server.stream.content_type)
                self.end_headers()
                for piece in server.stream.pieces:
                    self.wfile.write(piece)
                    self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass  # the tests read what the clients make of the answer, not a request log

        return Handler


_LONG_TEXT = "x" * 300_000  # a page with its figures: one data line longer than any one read
#: What an SSE decoder must get right, in one stream: named and unnamed events, data over
#: several lines, a comment, an event cut across writes with CRLF line ends, a line longer
#: than aiohttp's line reader takes, an event without data, and a last event the stream
#: ends inside (dropped: WHATWG's rule for an event without its blank line).
AWKWARD = Stream((
    sse("page", '{"pageIndex": 0,', '"lines": [1,', "2]}"),
    b": a comment, as a keep-alive\n\n",
    b"data: {}\n\n",
    b"event: pa",
    b'ge\r\ndata: {"text": "' + _LONG_TEXT.encode() + b'"}\r\n\r\n',
    b"retry: 5\n\n",
    b'event: final\ndata: {"type": "final"}',
))
#: (event name, data) of each whole event in AWKWARD.
AWKWARD_EVENTS = [("page", {"pageIndex": 0, "lines": [1, 2]}), ("message", {}), ("page", {"text": _LONG_TEXT})]
