"""A real HTTP/1.1 server on 127.0.0.1 that answers each request with the next scripted
outcome: for the VLM client's tests of retries and errors that the VLM simulator does not
produce (Retry-After, cut connections, bodies that are not JSON)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable


@dataclass(frozen=True)
class Reply:
    """An answer: ``json`` (encoded) or ``text`` as the body."""

    status: int = 200
    json: Any = None
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without answering."""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic()


Outcome = Reply | Disconnect | Callable[[Received], Awaitable[Reply]]
REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}


class ScriptedServer:
    """Plays the outcomes in turn (the last repeats) and keeps every request.

        async with ScriptedServer(Reply(429, headers={"Retry-After": "1"}), Reply(json=...)) as server:
            server.url, server.requests
    """

    def __init__(self, *outcomes: Outcome, host: str = "127.0.0.1", port: int = 0) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[Received] = []
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}/v1/"

    async def __aenter__(self) -> "ScriptedServer":
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(method, path, headers, body, time.monotonic())
                self.requests.append(received)
                outcome = self.outcomes[min(len(self.requests), len(self.outcomes)) - 1]
                if isinstance(outcome, Disconnect):
                    return
                reply = outcome if isinstance(outcome, Reply) else await outcome(received)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                writer.write(encode(reply))
                await writer.drain()
        finally:
            writer.close()


def encode(reply: Reply) -> bytes:
    if reply.json is not None:
        body, kind = json.dumps(reply.json).encode(), "application/json"
    else:
        body, kind = reply.text.encode(), "text/plain"
    lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}", f"Content-Type: {kind}",
             f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in reply.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
