"""Sending one fuzz input and judging what came back.

An answer is a failure when it is a 5xx (the stack is healthy and loaded below its slots
all run long, so a 502, 503 or 504 would be a bug as much as a 500: a VLM stand-in that
never errs, a slot that should have been free, a deadline that should not have passed),
when it is late (past ``bound`` seconds: a hang), when an error is not the error envelope,
when a successful parse is not the success envelope or has no page (a document always
has one: a 200 without is an error lost on the way), or when a stream does not end with
``final`` or ``error`` (or ends with an ``error`` event that is a 5xx)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from bench.fuzz.probes import UNARY, Probe


@dataclass(frozen=True)
class Outcome:
    """``status`` is None when nothing came back; ``problem`` is None for a good answer."""

    status: int | None
    seconds: float
    problem: str | None = None
    last_event: str | None = None  # a stream's last event name


def send(client: httpx.Client, probe: Probe, bound: float) -> Outcome:
    """Send ``probe`` and read the whole answer (a stream to its end), timed."""
    start = time.monotonic()
    status, problem, last_event = None, None, None
    try:
        with client.stream(probe.method, probe.path, headers=probe.headers, content=probe.body) as response:
            status = response.status_code
            if probe.streams and status == 200:
                last_event, problem = read_stream(response)
            else:
                problem = judge(probe, status, response.read())
    except httpx.TimeoutException:
        problem = f"no answer within {bound:g} s (a hang)"
    except httpx.HTTPError as exc:
        problem = f"the answer broke off: {type(exc).__name__}: {exc}"
    seconds = time.monotonic() - start
    if problem is None and seconds > bound:
        problem = f"answered after {seconds:.1f} s, past the {bound:g} s bound"
    return Outcome(status, seconds, problem, last_event)


def judge(probe: Probe, status: int, body: bytes) -> str | None:
    """What is wrong with a whole (non-stream) answer, if anything."""
    if status >= 500:
        return f"HTTP {status}: {message(body)}"
    if probe.method == "HEAD":
        return None  # no body to judge
    if status >= 400:
        return envelope_problem(json_of(body), status)
    if probe.method == "POST" and probe.path.split("?")[0] == UNARY and status == 200:
        answer = json_of(body)
        if not (isinstance(answer, dict) and answer.get("errorCode") == 0 and "result" in answer):
            return f"a 200 that is not the success envelope: {body[:200]!r}"
        if not answer["result"].get("layoutParsingResults"):
            return f"a success without a page: {str(answer['result'])[:200]}"
    return None


def read_stream(response: httpx.Response) -> tuple[str | None, str | None]:
    """(last event name, problem) of a 200 event stream read to its end."""
    last, pages = None, 0
    try:
        for event in EventSource(response).iter_sse():
            if last in ("final", "error"):
                return event.event, f"an event after '{last}': {event.event}"
            last = event.event
            pages += last == "page"
            if last == "final" and not pages:
                return last, f"a final event without a page: {event.data[:200]}"
            if event.event == "error":
                problem = envelope_problem(json_of(event.data.encode()), None)
                if problem:
                    return last, f"error event: {problem}"
    except SSEError as exc:
        return last, f"not an event stream: {exc}"
    if last not in ("final", "error"):
        return last, f"the stream ended after '{last}', without 'final' or 'error'"
    return last, None


def envelope_problem(answer: Any, status: int | None) -> str | None:
    """Why ``answer`` is not the error envelope of ``status`` (None: any status that is
    not a server error, for a stream's error event), if it is not."""
    if not (isinstance(answer, dict) and isinstance(answer.get("errorMsg"), str)
            and isinstance(answer.get("logId"), str) and isinstance(answer.get("errorCode"), int)):
        return f"not the error envelope: {str(answer)[:200]}"
    code = answer["errorCode"]
    if code >= 500:
        return f"errorCode {code}: {answer['errorMsg'][:300]}"
    if status is not None and code != status:
        return f"errorCode {code} in an answer of status {status}"
    return None


def json_of(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body[:200]


def message(body: bytes) -> str:
    answer = json_of(body)
    return str(answer.get("errorMsg") if isinstance(answer, dict) else answer)[:300]
