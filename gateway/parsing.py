"""What every parsing route needs, written once: the request read and validated, its
logId, one end-to-end deadline, a slot in this worker, and the work cancelled when the
client goes away. Routes get a ``ParsingCall`` from the ``parsing_call`` dependency and
only shape the answer."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, TypeVar

from fastapi import Depends, Request

from docparse import tracing
from docparse.errors import DeadlineExceededError, MalformedBodyError
from docparse.merge import restructured
from docparse.protocol import MAX_JSON_ENTRIES, M, json_object, log_id_for, new_log_id, parse_request
from docparse.responses import FinalEvent, LayoutParsingResponse, PageEvent, StreamEvent, collect_events
from gateway import metrics
from gateway.disconnect import unless_disconnected
from gateway.inputs import Form, multipart_form, read_body, request_body, validated_request
from gateway.resources import Gateway, get_gateway

T = TypeVar("T")


@dataclass
class ParsingCall:
    gateway: Gateway
    request: Request
    log_id: str
    body: dict[str, Any]  # the validated request, as Triton gets it
    deadline: float  # event-loop time

    async def within(self, work: Awaitable[T]) -> T:
        """``await work`` unless the request's deadline passes first (then 504)."""
        try:
            async with asyncio.timeout_at(self.deadline):
                return await work
        except TimeoutError:
            metrics.TIMEOUTS.inc()
            raise DeadlineExceededError(
                f"the request did not finish within {self.gateway.settings.gateway.inference_timeout:g} s "
                "(HPS_INFERENCE_TIMEOUT); its work was cancelled"
            ) from None

    async def validate(self, body: dict[str, Any]) -> None:
        """Check ``body`` as a /layout-parsing request (fetching a URL input) and make it
        this call's, within the deadline."""
        self.body = await self.within(
            validated_request(body, self.gateway.settings.gateway, self.log_id, models=self.gateway.models)
        )

    async def _events(self) -> AsyncIterator[StreamEvent]:
        """The document's events from Triton, holding a slot; closing it early frees the
        slot and cancels the work."""
        async with self.gateway.inference_slots.hold():
            async with aclosing(self.document_events(self.body, self.log_id)) as events:
                async for event in events:
                    yield event

    async def document_events(self, body: dict[str, Any], log_id: str) -> AsyncIterator[StreamEvent]:
        """One document's events from Triton, its pages counted (no slot taken: for a
        route that sends several documents under its one slot)."""
        async with aclosing(self.gateway.triton.events(body, log_id)) as events:
            async for event in events:
                if isinstance(event, PageEvent):
                    self.request.state.pages += 1
                    metrics.PAGES.inc()
                yield event

    async def collect_document(self, body: dict[str, Any], log_id: str) -> LayoutParsingResponse:
        """One document's whole answer (no slot taken, no deadline: the caller's)."""
        async with aclosing(self.document_events(body, log_id)) as events:
            return collect_events(log_id, [event async for event in events])

    async def collect(self) -> LayoutParsingResponse:
        """The whole document at once (unary routes)."""

        async def read_all() -> list[StreamEvent]:
            async with aclosing(self._events()) as events:
                return [event async for event in events]

        events = await self.within(unless_disconnected(self.request, read_all()))
        # Off the loop: restructuring a long document takes CPU (as is, it costs nothing).
        return await asyncio.to_thread(restructured, collect_events(self.log_id, events), self.body)

    async def stream(self) -> AsyncIterator[StreamEvent]:
        """The document's events for a streaming answer. The slot and the first event
        are awaited before this returns, so a bad document is an error status rather
        than a 200 stream; each later event must come within the deadline."""
        events = self._events()
        try:
            first = await self.within(unless_disconnected(self.request, anext(events)))
        except BaseException:
            await events.aclose()
            raise
        return self._following(first, events)

    async def _following(self, event: StreamEvent, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        async with aclosing(events):
            while True:
                yield event
                if isinstance(event, FinalEvent):
                    return
                event = await self.within(anext(events))


def open_call(request: Request, gateway: Gateway, log_id: str | None = None) -> ParsingCall:
    """A call whose deadline starts now; its request is read and validated next."""
    deadline = asyncio.get_running_loop().time() + gateway.settings.gateway.inference_timeout
    request.state.pages = 0
    return ParsingCall(gateway, request, log_id or request.state.log_id, {}, deadline)


def name_call(call: ParsingCall, log_id: str, received: float) -> None:
    """The call's logId, once the request that may carry one has been read."""
    call.log_id = call.request.state.log_id = log_id
    tracing.mark("gateway.received", log_id, at=received)


async def form_call(
    request: Request, gateway: Gateway, files: dict[str, int], fields_model: type[M]
) -> tuple[ParsingCall, Form, M]:
    """A call from a multipart form (the GLM-OCR and OCRFlux routes): the call (its
    deadline starts now), the form, and its text fields checked as ``fields_model``
    (whose ``logId``, if any, names the call)."""
    received = time.time()
    call = open_call(request, gateway)
    form = await call.within(multipart_form(request, gateway.settings.gateway, files))
    fields = parse_request(form.fields, fields_model)
    name_call(call, getattr(fields, "logId", None) or new_log_id(), received)
    return call, form, fields


async def json_call(request: Request, gateway: Gateway, max_entries: int = MAX_JSON_ENTRIES) -> tuple[ParsingCall, dict]:
    """A call from a JSON object body, named by its ``logId`` (or a new one)."""
    received = time.time()
    call = open_call(request, gateway)
    raw = await read_body(request, gateway.settings.gateway.max_body_bytes)
    if not raw.strip():
        raise MalformedBodyError("the request body is empty; send a JSON object")
    body = json_object(raw, MalformedBodyError, max_entries=max_entries)
    name_call(call, log_id_for(body), received)
    return call, body


async def parsing_call(request: Request, gateway: Gateway = Depends(get_gateway)) -> ParsingCall:
    """Read and validate the request; the deadline covers everything from here on."""
    received = time.time()
    call = open_call(request, gateway)
    data = await request_body(request, gateway.settings.gateway)
    name_call(call, log_id_for(data), received)
    call.body = await call.within(validated_request(data, gateway.settings.gateway, call.log_id, models=gateway.models))
    tracing.mark("gateway.validated", call.log_id)
    return call
